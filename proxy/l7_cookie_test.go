package proxy

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestServerCookieID(t *testing.T) {
	a := ServerCookieID(netip.MustParseAddrPort("198.18.0.11:80"))
	if len(a) != 12 || a != ServerCookieID(netip.MustParseAddrPort("198.18.0.11:80")) {
		t.Errorf("id %q not stable", a)
	}
	seen := map[string]bool{}
	for i := range 1000 {
		id := ServerCookieID(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 80))
		if seen[id] {
			t.Fatalf("collision at %d", i)
		}
		seen[id] = true
	}
	if ServerCookieID(netip.MustParseAddrPort("198.18.0.11:81")) == a {
		t.Error("port not in the id")
	}
}

func reqCookieLine(h *fasthttp.RequestHeader) string {
	for _, l := range strings.Split(h.String(), "\r\n") {
		if strings.HasPrefix(l, "Cookie: ") {
			return strings.TrimPrefix(l, "Cookie: ")
		}
	}
	return ""
}

func TestCookieInsert(t *testing.T) {
	c := &CookiePersistence{Name: "SRVID", Mode: CookieInsert}
	id := ServerCookieID(netip.MustParseAddrPort("198.18.0.11:80"))

	// First visit: no id; the answer sets one.
	h := reqHead(t, "GET / HTTP/1.1\r\nHost: a\r\nCookie: session=42\r\n\r\n")
	had := c.Request(h, nil)
	if len(had) != 0 {
		t.Fatalf("id %q from a request without it", had)
	}
	resp := parseRespHeadFH(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: session=43; Path=/app\r\n\r\n")
	c.Response(resp, id, had)
	out := resp.String()
	if !strings.Contains(out, "Set-Cookie: SRVID="+id+"; Path=/\r\n") || !strings.Contains(out, "Set-Cookie: session=43; Path=/app\r\n") {
		t.Errorf("response:\n%s", out)
	}

	// Return visit: the id is found and the server does not see the cookie; no new Set-Cookie.
	h = reqHead(t, "GET / HTTP/1.1\r\nHost: a\r\nCookie: session=42; SRVID="+id+"; lang=fr\r\n\r\n")
	had = c.Request(h, nil)
	if string(had) != id {
		t.Fatalf("id %q, want %q", had, id)
	}
	if got := reqCookieLine(h); got != "session=42; lang=fr" {
		t.Errorf("forwarded cookie %q", got)
	}
	resp = parseRespHeadFH(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	c.Response(resp, id, had)
	if strings.Contains(resp.String(), "Set-Cookie") {
		t.Errorf("cookie set again:\n%s", resp.String())
	}
	// The server went down: another one answers and the client gets its id.
	other := ServerCookieID(netip.MustParseAddrPort("198.18.0.12:80"))
	c.Response(resp, other, had)
	if !strings.Contains(resp.String(), "Set-Cookie: SRVID="+other+"; Path=/\r\n") {
		t.Errorf("no new cookie after a move:\n%s", resp.String())
	}
}

func TestCookieRewrite(t *testing.T) {
	c := &CookiePersistence{Name: "SRVID", Mode: CookieRewrite}
	h := reqHead(t, "GET / HTTP/1.1\r\nHost: a\r\nCookie: SRVID=abc\r\n\r\n")
	if got := c.Request(h, nil); string(got) != "abc" || reqCookieLine(h) != "SRVID=abc" {
		t.Errorf("request: id %q cookie %q", got, reqCookieLine(h))
	}
	resp := parseRespHeadFH(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: SRVID=server-value; Path=/app; HttpOnly; SameSite=Lax\r\n\r\n")
	c.Response(resp, "0123456789ab", nil)
	if got := resp.String(); !strings.Contains(got, "Set-Cookie: SRVID=0123456789ab; Path=/app; HttpOnly; SameSite=Lax\r\n") {
		t.Errorf("response:\n%s", got)
	}
	resp = parseRespHeadFH(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: other=1\r\n\r\n")
	c.Response(resp, "0123456789ab", nil)
	if got := resp.String(); strings.Contains(got, "SRVID") {
		t.Errorf("rewrite mode inserted a cookie:\n%s", got)
	}
}

func TestCookiePrefix(t *testing.T) {
	c := &CookiePersistence{Name: "JSESSIONID", Mode: CookiePrefix}
	resp := parseRespHeadFH(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: JSESSIONID=s42; Path=/; Secure\r\n\r\n")
	c.Response(resp, "0123456789ab", nil)
	if got := resp.String(); !strings.Contains(got, "Set-Cookie: JSESSIONID=0123456789ab~s42; Path=/; Secure\r\n") {
		t.Errorf("response:\n%s", got)
	}
	h := reqHead(t, "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; JSESSIONID=0123456789ab~s42\r\n\r\n")
	if got := c.Request(h, nil); string(got) != "0123456789ab" {
		t.Errorf("id %q", got)
	}
	if got := reqCookieLine(h); got != "a=1; JSESSIONID=s42" {
		t.Errorf("forwarded cookie %q", got)
	}
	// A value without our prefix is the server's, passed as is.
	h = reqHead(t, "GET / HTTP/1.1\r\nHost: a\r\nCookie: JSESSIONID=s42\r\n\r\n")
	if got := c.Request(h, nil); len(got) != 0 || reqCookieLine(h) != "JSESSIONID=s42" {
		t.Errorf("unprefixed: id %q cookie %q", got, reqCookieLine(h))
	}
}

func TestRewriteSetCookie(t *testing.T) {
	for _, tt := range []struct {
		raw    string
		prefix bool
		want   string
		ok     bool
	}{
		{"S=v", false, "S=ID", true},
		{"S=v", true, "S=ID~v", true},
		{` S = "v" ; Path=/`, true, `S="ID~v"; Path=/`, true},
		{"S=", true, "S=ID~", true},
		{"T=v; S=x", false, "", false},
		{"S", false, "", false},
	} {
		got, ok := rewriteSetCookie(nil, []byte(tt.raw), "S", "ID", tt.prefix)
		if string(got) != tt.want || ok != tt.ok {
			t.Errorf("%q prefix=%v: %q %v, want %q %v", tt.raw, tt.prefix, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzCookie: a rewritten Set-Cookie keeps its name and attributes, and in prefix mode the
// request side gets the id and the server's value back.
func FuzzCookie(f *testing.F) {
	f.Add([]byte("S=v; Path=/; HttpOnly"), "0123456789ab")
	f.Add([]byte(`S="quoted"`), "id")
	f.Add([]byte("S=a~b~c"), "x")
	f.Fuzz(func(t *testing.T, raw []byte, id string) {
		if id == "" || strings.ContainsAny(id, "~;=\" \t\r\n,") {
			return
		}
		for _, c := range []byte(id) {
			if c < 0x21 || c > 0x7e {
				return
			}
		}
		out, ok := rewriteSetCookie(nil, raw, "S", id, true)
		if !ok {
			return
		}
		if !bytes.HasPrefix(out, []byte("S=")) {
			t.Fatalf("%q -> %q", raw, out)
		}
		if i := bytes.IndexByte(raw, ';'); i >= 0 && !bytes.HasSuffix(out, raw[i:]) {
			t.Fatalf("attributes lost: %q -> %q", raw, out)
		}
		pair := out
		if i := bytes.IndexByte(out, ';'); i >= 0 {
			pair = out[:i]
		}
		v := bytes.Trim(pair[2:], `"`)
		gotID, rest, ok := splitCookiePrefix(v)
		if !ok || string(gotID) != id {
			t.Fatalf("%q: split %q -> %q %q %v", raw, v, gotID, rest, ok)
		}
	})
}
