package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// Layer-7 rules on message heads: header rules (http_request / http_response), redirects,
// request ids, error pages and the body-size limit. Each works on a fasthttp head in place and
// is built once per configuration.

// HeaderOp is what a header rule does.
type HeaderOp uint8

// Header operations.
const (
	HeaderSet HeaderOp = iota // replace every value of the header by Value
	HeaderAdd                 // append one more header line
	HeaderDel                 // remove every value
)

// HeaderRule is one http_request / http_response line.
type HeaderRule struct {
	Op          HeaderOp
	Name, Value string
}

// framingHeaders decide where a message ends and what becomes of the connection: the proxy alone
// sets them, so header rules may not touch them (config refuses them at load with the same list).
var framingHeaders = []string{"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
	"Proxy-Connection", "Te", "Trailer", "Upgrade"}

// IsFramingHeader reports whether name is one of the headers rules may not change.
func IsFramingHeader(name string) bool {
	for _, f := range framingHeaders {
		if strings.EqualFold(name, f) {
			return true
		}
	}
	return false
}

// HeaderRules is a checked list of rules, applied in order.
//
// set_header and del_header remove lines with delStable, not fasthttp's Del alone: Del fills the
// hole with the last header line, which can swap two lines of another name, and RFC 9110 §5.3
// makes that order meaningful (Via, X-Forwarded-For lists).
type HeaderRules struct {
	rules []HeaderRule
}

// NewHeaderRules checks rules: a token name that is not a framing header, a value without
// control characters.
func NewHeaderRules(rules []HeaderRule) (HeaderRules, error) {
	var errs []error
	for i, r := range rules {
		switch {
		case !l7IsToken(r.Name):
			errs = append(errs, fmt.Errorf("rule %d: %q is not a header name", i, r.Name))
		case IsFramingHeader(r.Name):
			errs = append(errs, fmt.Errorf("rule %d: %s is a framing header", i, r.Name))
		case r.Op > HeaderDel:
			errs = append(errs, fmt.Errorf("rule %d: unknown operation %d", i, r.Op))
		case !l7ValidValue(r.Value):
			errs = append(errs, fmt.Errorf("rule %d: %q is not a header value", i, r.Value))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return HeaderRules{}, fmt.Errorf("proxy: header rules: %w", err)
	}
	return HeaderRules{rules: append([]HeaderRule(nil), rules...)}, nil
}

// Len returns the number of rules.
func (r HeaderRules) Len() int { return len(r.rules) }

// Request applies the rules to a request head.
func (r HeaderRules) Request(h *fasthttp.RequestHeader) { r.apply(h) }

// Response applies the rules to a response head.
func (r HeaderRules) Response(h *fasthttp.ResponseHeader) { r.apply(h) }

// headerSetter is what the rules need of a fasthttp head, request or response.
type headerSetter interface {
	headerLines
	Set(key, value string)
}

func (r HeaderRules) apply(h headerSetter) {
	for _, x := range r.rules {
		switch x.Op {
		case HeaderSet: // fasthttp's Set replaces the first of several lines only
			delStable(h, x.Name)
			h.Set(x.Name, x.Value)
		case HeaderAdd:
			h.Add(x.Name, x.Value)
		case HeaderDel:
			delStable(h, x.Name)
		}
	}
}

// headerLines is what delStable needs of a fasthttp request or response head.
type headerLines interface {
	All() iter.Seq2[[]byte, []byte]
	PeekAll(key string) [][]byte
	Del(key string)
	Add(key, value string)
}

// delStable removes every line named name and keeps the order of the lines of every other name
// that has several: those are taken out and put back in their order (only when a head has such
// names, so the common head costs one pass over its lines). Names fasthttp keeps apart (Host,
// Content-Type, Cookie, Set-Cookie...) are not moved by Del and are left alone.
func delStable(h headerLines, name string) {
	names := make([][]byte, 0, 64) // the head's line names
	for k := range h.All() {
		names = append(names, k)
	}
	n := len(names)
	var repeated []string
	for i := range n {
		k := names[i]
		if strings.EqualFold(string(k), name) || keptApart(k) || slices.ContainsFunc(repeated, func(r string) bool { return strings.EqualFold(r, string(k)) }) {
			continue
		}
		for j := i + 1; j < n; j++ {
			if strings.EqualFold(string(names[j]), string(k)) {
				repeated = append(repeated, string(k))
				break
			}
		}
	}
	if len(repeated) == 0 {
		h.Del(name)
		return
	}
	saved := make([][]string, len(repeated))
	for i, r := range repeated {
		for _, v := range h.PeekAll(r) {
			saved[i] = append(saved[i], string(v))
		}
	}
	h.Del(name)
	for _, r := range repeated {
		h.Del(r)
	}
	for i, r := range repeated {
		for _, v := range saved[i] {
			h.Add(r, v)
		}
	}
}

// keptApart reports the names fasthttp stores outside its list of lines.
func keptApart(k []byte) bool {
	switch strings.ToLower(string(k)) {
	case "host", "content-type", "content-length", "user-agent", "cookie", "set-cookie", "trailer", "connection",
		"transfer-encoding", "server", "date", "content-encoding":
		return true
	}
	return false
}

func l7IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func l7ValidValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// WriteRedirect makes h a redirect answer: r's status, its Location, no body.
func WriteRedirect(h *fasthttp.ResponseHeader, r *Redirect) {
	h.SetStatusCode(r.Code)
	h.Set("Location", r.Location)
	h.SetContentLength(0)
}

// SchemeRedirect answers every request with a redirect to the same host and URI under Scheme
// (redirect_scheme https 301: the port-80 front of an HTTPS site).
type SchemeRedirect struct {
	Scheme string // "https" or "http"
	Code   int
}

// AppendLocation appends the redirect's Location for the request to dst: Scheme://HOST/URI, HOST
// being the request's Host without its port (the scheme's default port applies). ok is false
// when the request has no usable Host (empty, or with a byte no host name has: a Location must
// never carry what an attacker put there besides a name) or its target is not a path (the caller
// answers 400).
func (s *SchemeRedirect) AppendLocation(dst []byte, h *fasthttp.RequestHeader) ([]byte, bool) {
	var hb [maxHost]byte
	host := hostForLocation(hb[:0], h.Host())
	if len(host) == 0 {
		return dst, false
	}
	uri := h.RequestURI()
	if len(uri) > 0 && uri[0] != '/' { // absolute form: keep the path and query
		i := strings.Index(string(uri), "://")
		if i < 0 {
			return dst, false
		}
		rest := uri[i+3:]
		j := strings.IndexAny(string(rest), "/?")
		if j < 0 {
			uri = []byte("/")
		} else {
			uri = rest[j:]
			if uri[0] == '?' {
				dst = append(append(append(append(dst, s.Scheme...), "://"...), host...), '/')
				return append(dst, uri...), true
			}
		}
	}
	if len(uri) == 0 || uri[0] != '/' {
		return dst, false
	}
	dst = append(append(append(dst, s.Scheme...), "://"...), host...)
	return append(dst, uri...), true
}

// hostForLocation appends host without its port, lowercased, to dst; empty when it is not a
// plain DNS name, IPv4 address or bracketed IPv6 address.
func hostForLocation(dst, host []byte) []byte {
	n := normalizeHost(dst, host)
	if len(n) == 0 {
		return n
	}
	if n[0] == '[' {
		if n[len(n)-1] != ']' || strings.Trim(string(n[1:len(n)-1]), "0123456789abcdef:.") != "" {
			return n[:0]
		}
		return n
	}
	for _, c := range n {
		if c == ':' || c == '[' || c == ']' || c == '_' {
			return n[:0]
		}
	}
	return n
}

// RequestIDs makes request ids: a random per-process prefix and a counter, unique without a
// lock or a random read per request.
type RequestIDs struct {
	prefix [16]byte // hex of 8 random bytes
	n      atomic.Uint64
}

// maxRequestID bounds an id accepted from a client (longer ones are replaced).
const maxRequestID = 128

// NewRequestIDs returns a generator with a fresh random prefix.
func NewRequestIDs() (*RequestIDs, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("proxy: request id: %w", err)
	}
	g := &RequestIDs{}
	hex.Encode(g.prefix[:], r[:])
	return g, nil
}

// Ensure returns the request's id under header name: the client's value when it is 1 to 128
// visible ASCII characters (passed through unchanged), else a new id set on h (replacing an
// unusable one, so that logs never carry control bytes from a client).
func (g *RequestIDs) Ensure(h *fasthttp.RequestHeader, name string) []byte {
	if v := h.Peek(name); validRequestID(v) {
		return v
	}
	var buf [16 + 1 + 16]byte
	copy(buf[:], g.prefix[:])
	buf[16] = '-'
	n := g.n.Add(1)
	for i := len(buf) - 1; i > 16; i-- {
		buf[i] = "0123456789abcdef"[n&0xf]
		n >>= 4
	}
	h.SetBytesV(name, buf[:])
	return h.Peek(name)
}

func validRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > maxRequestID {
		return false
	}
	for _, c := range v {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// ErrorPage is a status's answer body, loaded from a file and served byte for byte.
type ErrorPage struct {
	Code        int
	ContentType string
	Body        []byte
}

// ErrorPages are a service's error pages by status code.
type ErrorPages map[int]*ErrorPage

// maxErrorPage bounds an error page: it is held in memory and sent whole.
const maxErrorPage = 1 << 20

// LoadErrorPages reads files (status code → file name).
func LoadErrorPages(files map[int]string) (ErrorPages, error) {
	pages := ErrorPages{}
	for code, name := range files {
		if code < 400 || code > 599 {
			return nil, fmt.Errorf("proxy: error page: %d is not a 4xx or 5xx status", code)
		}
		fi, err := os.Stat(name)
		if err != nil {
			return nil, fmt.Errorf("proxy: error page: %w", err)
		}
		if !fi.Mode().IsRegular() || fi.Size() > maxErrorPage {
			return nil, fmt.Errorf("proxy: error page: %s: not a regular file of at most 1 MiB", name)
		}
		body, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("proxy: error page: %w", err)
		}
		pages[code] = &ErrorPage{Code: code, ContentType: contentTypeOf(name), Body: body}
	}
	return pages, nil
}

// contentTypeOf maps an error page's extension to its Content-Type (a fixed table: the host's
// MIME database must not change what is served).
func contentTypeOf(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".json":
		return "application/json"
	case ".xml":
		return "application/xml"
	}
	return "text/plain; charset=utf-8"
}

// Lookup returns the page for code.
func (p ErrorPages) Lookup(code int) (*ErrorPage, bool) {
	e, ok := p[code]
	return e, ok
}

// WriteHeader makes h the head of the page's answer; the caller sends e.Body after it.
func (e *ErrorPage) WriteHeader(h *fasthttp.ResponseHeader) {
	h.SetStatusCode(e.Code)
	h.SetContentType(e.ContentType)
	h.SetContentLength(len(e.Body))
	h.Set("Cache-Control", "no-store")
}

// BodyTooLarge reports whether a request declares a body over max bytes (max 0: no limit). A
// request with Content-Length is answered 413 before any byte goes to a server. A chunked body
// has no declared size: count it with a BodyLimit, and to keep the promise that the server
// receives nothing, hold the first max bytes before forwarding.
func BodyTooLarge(h *fasthttp.RequestHeader, max int64) bool {
	return max > 0 && int64(h.ContentLength()) > max
}

// BodyLimit counts the bytes of a streamed (chunked) request body against a limit.
type BodyLimit struct {
	Max, n int64
}

// Add counts n more body bytes and reports whether the body is still within the limit.
func (l *BodyLimit) Add(n int) bool {
	l.n += int64(n)
	return l.Max <= 0 || l.n <= l.Max
}
