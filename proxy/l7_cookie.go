package proxy

import (
	"bytes"
	"encoding/hex"
	"hash/fnv"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// Cookie persistence (persistence_cookie NAME insert|rewrite|prefix), HAProxy's three modes:
//
//   - insert: halb adds "Set-Cookie: NAME=ID; Path=/" to a response when the client did not
//     present this server's ID, and removes NAME from requests: the server never sees it.
//   - rewrite: the server sets NAME itself; halb replaces its value by ID. Requests keep NAME=ID
//     (the server's own value is lost, as in HAProxy).
//   - prefix: the server sets NAME=V; the client gets NAME=ID~V; requests carry NAME=ID~V and
//     the server gets NAME=V back.
//
// ID is ServerCookieID of the real server: stable across restarts, reloads and nodes (a client
// keeps its server when the VIP moves), and it reveals nothing but a hash.
//
// The engine's use: id := c.Request(h, buf) before forwarding; if id names a live server of the
// chosen pool, send the request there, else balance; then c.Response(resp, chosenID, id).

// CookieMode is persistence_cookie's mode.
type CookieMode uint8

// Cookie modes.
const (
	CookieInsert CookieMode = iota
	CookieRewrite
	CookiePrefix
)

// CookiePersistence is a service's persistence cookie.
type CookiePersistence struct {
	Name string
	Mode CookieMode
}

// cookieSep separates the server ID from the server's value in prefix mode.
const cookieSep = '~'

// ServerCookieID is the persistence ID of a real server: 12 hex digits of FNV-1a over its
// address and port.
func ServerCookieID(addr netip.AddrPort) string {
	var id [12]byte
	return string(appendCookieID(id[:0], addr))
}

// appendCookieID appends addr's persistence ID to dst (no allocation when dst has room).
func appendCookieID(dst []byte, addr netip.AddrPort) []byte {
	h := fnv.New64a()
	var b [32]byte
	bin, _ := addr.AppendBinary(b[:0])
	h.Write(bin)
	var sum [8]byte
	return hex.AppendEncode(dst, h.Sum(sum[:0])[:6])
}

// Request returns the server ID the request's cookie names, appended to dst (empty: none), and
// rewrites the request's Cookie header for the server: insert removes NAME, prefix leaves NAME=V.
func (c *CookiePersistence) Request(h *fasthttp.RequestHeader, dst []byte) []byte {
	v := h.Cookie(c.Name)
	if v == nil {
		return dst
	}
	switch c.Mode {
	case CookieInsert:
		dst = append(dst, v...)
		h.DelCookie(c.Name)
	case CookieRewrite:
		dst = append(dst, v...)
	case CookiePrefix:
		id, rest, ok := splitCookiePrefix(v)
		if !ok {
			return dst // not ours: the server's own value, passed as is
		}
		dst = append(dst, id...)
		h.SetCookie(c.Name, string(rest))
	}
	return dst
}

// Response sets the client's cookie for the server id that answered; had is the ID the request
// carried (from Request). insert adds a Set-Cookie unless the client already had this id;
// rewrite and prefix change the server's own Set-Cookie NAME, if it sent one.
func (c *CookiePersistence) Response(h *fasthttp.ResponseHeader, id string, had []byte) {
	switch c.Mode {
	case CookieInsert:
		if string(had) == id {
			return
		}
		h.Add("Set-Cookie", c.Name+"="+id+"; Path=/")
	case CookieRewrite, CookiePrefix:
		raw := h.PeekCookie(c.Name)
		if raw == nil {
			return
		}
		if out, ok := rewriteSetCookie(nil, raw, c.Name, id, c.Mode == CookiePrefix); ok {
			h.Set("Set-Cookie", string(out))
		}
	}
}

// splitCookiePrefix splits a prefix-mode value "ID~V" into ID and V.
func splitCookiePrefix(v []byte) (id, rest []byte, ok bool) {
	i := bytes.IndexByte(v, cookieSep)
	if i <= 0 {
		return nil, nil, false
	}
	return v[:i], v[i+1:], true
}

// rewriteSetCookie appends to dst the Set-Cookie value raw ("NAME=VALUE; attributes") with its
// value replaced by id (prefix false) or by id~VALUE (prefix true); the attributes are kept byte
// for byte. ok is false when raw's cookie is not name.
func rewriteSetCookie(dst, raw []byte, name, id string, prefix bool) ([]byte, bool) {
	pair, attrs := raw, []byte(nil)
	if i := bytes.IndexByte(raw, ';'); i >= 0 {
		pair, attrs = raw[:i], raw[i:]
	}
	k, v, found := bytes.Cut(pair, []byte("="))
	if !found || string(bytes.TrimSpace(k)) != name {
		return dst, false
	}
	v = bytes.TrimSpace(v)
	quoted := len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"'
	if quoted {
		v = v[1 : len(v)-1]
	}
	dst = append(append(dst, name...), '=')
	if quoted {
		dst = append(dst, '"')
	}
	dst = append(dst, id...)
	if prefix {
		dst = append(append(dst, cookieSep), v...)
	}
	if quoted {
		dst = append(dst, '"')
	}
	return append(dst, attrs...), true
}
