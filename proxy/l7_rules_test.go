package proxy

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func parseRespHeadFH(t testing.TB, raw string) *fasthttp.ResponseHeader {
	t.Helper()
	var h fasthttp.ResponseHeader
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return &h
}

func TestHeaderRulesRequest(t *testing.T) {
	rules, err := NewHeaderRules([]HeaderRule{
		{Op: HeaderSet, Name: "X-Forwarded-Port", Value: "443"},
		{Op: HeaderAdd, Name: "via", Value: "1.1 halb"},
		{Op: HeaderDel, Name: "x-debug"},
		{Op: HeaderSet, Name: "Host", Value: "backend.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := reqHead(t, "GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Port: 80\r\nx-forwarded-port: 81\r\nVia: 1.0 other\r\nX-Debug: 1\r\nX-Debug: 2\r\n\r\n")
	rules.Request(h)
	if got := h.PeekAll("X-Forwarded-Port"); len(got) != 1 || string(got[0]) != "443" {
		t.Errorf("set: %q", got)
	}
	if got := h.PeekAll("Via"); len(got) != 2 || string(got[0]) != "1.0 other" || string(got[1]) != "1.1 halb" {
		t.Errorf("add: %q", got)
	}
	if got := h.PeekAll("X-Debug"); len(got) != 0 {
		t.Errorf("del: %q", got)
	}
	if string(h.Host()) != "backend.test" {
		t.Errorf("host: %q", h.Host())
	}
}

// TestHeaderRulesKeepOrder: deleting a header keeps the order of the lines of every other
// repeated header (fasthttp's Del alone would move the last line into the hole).
func TestHeaderRulesKeepOrder(t *testing.T) {
	rules, err := NewHeaderRules([]HeaderRule{{Op: HeaderDel, Name: "X-Debug"}, {Op: HeaderSet, Name: "X-A", Value: "set"}})
	if err != nil {
		t.Fatal(err)
	}
	h := reqHead(t, "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-Debug: 1\r\nX-Forwarded-For: 198.18.0.1\r\nVia: v1\r\n"+
		"X-Debug: 2\r\nX-Forwarded-For: 198.18.0.2\r\nVia: v2\r\nX-A: 2\r\nX-Forwarded-For: 198.18.0.3\r\n\r\n")
	rules.Request(h)
	for name, want := range map[string]string{"X-Forwarded-For": "198.18.0.1,198.18.0.2,198.18.0.3", "Via": "v1,v2", "X-A": "set", "X-Debug": ""} {
		if got := string(bytes.Join(h.PeekAll(name), []byte(","))); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	resp := parseRespHeadFH(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Debug: 1\r\nLink: <a>\r\nX-Debug: 2\r\nLink: <b>\r\nX-Other: o\r\nLink: <c>\r\n\r\n")
	rules.Response(resp)
	if got := string(bytes.Join(resp.PeekAll("Link"), []byte(","))); got != "<a>,<b>,<c>" {
		t.Errorf("Link = %q", got)
	}
}

func TestHeaderRulesResponse(t *testing.T) {
	rules, err := NewHeaderRules([]HeaderRule{
		{Op: HeaderSet, Name: "Strict-Transport-Security", Value: "max-age=31536000"},
		{Op: HeaderDel, Name: "Server"},
		{Op: HeaderAdd, Name: "X-Served-By", Value: "halb"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := parseRespHeadFH(t, "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\nX-Served-By: app\r\nStrict-Transport-Security: a\r\nstrict-transport-security: b\r\n\r\n")
	rules.Response(h)
	out := h.String()
	for _, want := range []string{"Strict-Transport-Security: max-age=31536000\r\n", "X-Served-By: app\r\n", "X-Served-By: halb\r\n", "Content-Length: 2\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("response head lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "nginx") || strings.Count(out, "Strict-Transport-Security") != 1 {
		t.Errorf("Server not removed:\n%s", out)
	}
}

func TestHeaderRulesRefused(t *testing.T) {
	for _, r := range []HeaderRule{
		{Op: HeaderSet, Name: "content-length", Value: "0"},
		{Op: HeaderDel, Name: "Transfer-Encoding"},
		{Op: HeaderAdd, Name: "Connection", Value: "close"},
		{Op: HeaderSet, Name: "a b", Value: "x"},
		{Op: HeaderSet, Name: "X", Value: "a\r\nInjected: 1"},
		{Op: HeaderDel + 1, Name: "X"},
	} {
		if _, err := NewHeaderRules([]HeaderRule{r}); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}

func TestWriteRedirect(t *testing.T) {
	var h fasthttp.ResponseHeader
	WriteRedirect(&h, &Redirect{Code: 301, Location: "https://www.example.com/new/"})
	if got := h.String(); !strings.HasPrefix(got, "HTTP/1.1 301 Moved Permanently\r\n") ||
		!strings.Contains(got, "\r\nLocation: https://www.example.com/new/\r\n") || !strings.Contains(got, "Content-Length: 0\r\n") {
		t.Errorf("redirect head:\n%s", got)
	}
}

func TestSchemeRedirect(t *testing.T) {
	s := &SchemeRedirect{Scheme: "https", Code: 301}
	for raw, want := range map[string]string{
		"GET /a/b?x=1 HTTP/1.1\r\nHost: www.Example.com\r\n\r\n":           "https://www.example.com/a/b?x=1",
		"GET / HTTP/1.1\r\nHost: www.example.com:80\r\n\r\n":               "https://www.example.com/",
		"GET /p HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n":                "https://[2001:db8::1]/p",
		"GET /p HTTP/1.1\r\nHost: 198.18.0.10\r\n\r\n":                     "https://198.18.0.10/p",
		"GET http://www.example.com/p?q HTTP/1.1\r\nHost: x.test\r\n\r\n":  "https://x.test/p?q",
		"GET http://www.example.com?q HTTP/1.1\r\nHost: x.test\r\n\r\n":    "https://x.test/?q",
		"GET /%0d%0aSet-Cookie:x HTTP/1.1\r\nHost: a.test\r\n\r\n":         "https://a.test/%0d%0aSet-Cookie:x",
		"GET / HTTP/1.1\r\nHost: evil.test@a.test\r\n\r\n":                 "",
		"GET / HTTP/1.1\r\nHost: a.test/evil\r\n\r\n":                      "",
		"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n":                             "",
		"OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n":                       "",
		"GET / HTTP/1.1\r\nHost: a_b.test\r\n\r\n":                         "",
		"GET / HTTP/1.1\r\nHost: a.test:80:80\r\n\r\n":                     "",
		"GET / HTTP/1.1\r\nHost: " + strings.Repeat("a", 300) + "\r\n\r\n": "",
	} {
		got, ok := s.AppendLocation(nil, reqHead(t, raw))
		if string(got) != want || ok != (want != "") {
			t.Errorf("%q: got %q %v, want %q", raw, got, ok, want)
		}
	}
}

func TestRequestIDs(t *testing.T) {
	g, err := NewRequestIDs()
	if err != nil {
		t.Fatal(err)
	}
	h := reqHead(t, "GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: abc-123\r\n\r\n")
	if got := g.Ensure(h, "X-Request-ID"); string(got) != "abc-123" {
		t.Errorf("passed-through id = %q", got)
	}
	seen := map[string]bool{}
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: \r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: has space\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: " + strings.Repeat("x", 129) + "\r\n\r\n",
	} {
		h := reqHead(t, raw)
		id := string(g.Ensure(h, "X-Request-ID"))
		if len(id) != 33 || id[16] != '-' || seen[id] || string(h.Peek("X-Request-ID")) != id {
			t.Errorf("%q: id %q (header %q)", raw, id, h.Peek("X-Request-ID"))
		}
		seen[id] = true
		if n := len(h.PeekAll("X-Request-ID")); n != 1 {
			t.Errorf("%d X-Request-ID headers", n)
		}
	}
	h = reqHead(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if n := testing.AllocsPerRun(100, func() { h.Del("X-Request-ID"); g.Ensure(h, "X-Request-ID") }); n != 0 {
		t.Errorf("%v allocations per generated id", n)
	}
}

func TestErrorPages(t *testing.T) {
	dir := t.TempDir()
	body := []byte("<html>\r\n\x00busy \xff</html>") // any bytes, served as they are
	os.WriteFile(filepath.Join(dir, "503.html"), body, 0o644)
	os.WriteFile(filepath.Join(dir, "429.json"), []byte(`{"error":"slow down"}`), 0o644)
	pages, err := LoadErrorPages(map[int]string{503: filepath.Join(dir, "503.html"), 429: filepath.Join(dir, "429.json")})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := pages.Lookup(503)
	if !ok || !bytes.Equal(p.Body, body) {
		t.Fatalf("503 page = %+v", p)
	}
	var h fasthttp.ResponseHeader
	p.WriteHeader(&h)
	if got := h.String(); !strings.HasPrefix(got, "HTTP/1.1 503 Service Unavailable\r\n") ||
		!strings.Contains(got, "Content-Type: text/html; charset=utf-8\r\n") || !strings.Contains(got, "Content-Length: 22\r\n") {
		t.Errorf("head:\n%s", got)
	}
	if p, _ := pages.Lookup(429); p.ContentType != "application/json" {
		t.Errorf("429 type %q", p.ContentType)
	}
	if _, ok := pages.Lookup(502); ok {
		t.Error("502 found")
	}
	for _, files := range []map[int]string{{503: filepath.Join(dir, "none")}, {200: filepath.Join(dir, "503.html")}, {503: dir}} {
		if _, err := LoadErrorPages(files); err == nil {
			t.Errorf("%v loaded", files)
		}
	}
}

func TestBodyLimits(t *testing.T) {
	for raw, want := range map[string]bool{
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n":                true,
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n":                false,
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n":        false,
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n":                                       false,
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999\r\n\r\n": true,
	} {
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			continue // fasthttp refuses an absurd length itself
		}
		if got := BodyTooLarge(&h, 10); got != want {
			t.Errorf("%q: %v", raw, got)
		}
		if BodyTooLarge(&h, 0) {
			t.Errorf("%q: limit 0 refused", raw)
		}
	}
	l := BodyLimit{Max: 10}
	if !l.Add(6) || !l.Add(4) || l.Add(1) {
		t.Error("BodyLimit counts wrong")
	}
}

// FuzzSchemeRedirect: whatever the head, a Location is the scheme, "://", a host made of name
// characters, and the request's path; never a control byte or a space.
func FuzzSchemeRedirect(f *testing.F) {
	f.Add([]byte("GET /a?b HTTP/1.1\r\nHost: a.test:80\r\n\r\n"))
	f.Add([]byte("GET http://x/y HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"))
	s := &SchemeRedirect{Scheme: "https", Code: 308}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var h fasthttp.RequestHeader
		if h.Read(bufio.NewReader(bytes.NewReader(raw))) != nil {
			return
		}
		loc, ok := s.AppendLocation(nil, &h)
		if !ok {
			if len(loc) != 0 {
				t.Fatalf("not ok with %q", loc)
			}
			return
		}
		rest, found := bytes.CutPrefix(loc, []byte("https://"))
		if !found {
			t.Fatalf("location %q", loc)
		}
		i := bytes.IndexByte(rest, '/')
		if i <= 0 || strings.Trim(string(rest[:i]), "abcdefghijklmnopqrstuvwxyz0123456789-.[]:") != "" {
			t.Fatalf("host part of %q", loc)
		}
		for _, c := range loc {
			if c <= ' ' || c == 0x7f {
				t.Fatalf("byte %#x in %q", c, loc)
			}
		}
	})
}

// FuzzHeaderRules applies rules to arbitrary request heads: the deleted header is gone, the set
// one has exactly its value, and every other header keeps its lines in order.
func FuzzHeaderRules(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-Debug: 1\r\nVia: v1\r\nX-Debug: 2\r\nVia: v2\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nx-debug: 1\r\nCookie: b=2\r\nX-Set: old\r\nx-set: old2\r\n\r\n"))
	rules, err := NewHeaderRules([]HeaderRule{{Op: HeaderDel, Name: "X-Debug"}, {Op: HeaderSet, Name: "X-Set", Value: "new"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var h fasthttp.RequestHeader
		if h.Read(bufio.NewReader(bytes.NewReader(raw))) != nil {
			return
		}
		before := map[string][]string{}
		for k := range h.All() {
			name := string(k)
			if _, ok := before[name]; ok || keptApart(k) || strings.EqualFold(name, "X-Debug") || strings.EqualFold(name, "X-Set") {
				continue
			}
			for _, v := range h.PeekAll(name) {
				before[name] = append(before[name], string(v))
			}
		}
		rules.Request(&h)
		if got := h.PeekAll("X-Debug"); len(got) != 0 {
			t.Fatalf("X-Debug left: %q", got)
		}
		if got := h.PeekAll("X-Set"); len(got) != 1 || string(got[0]) != "new" {
			t.Fatalf("X-Set = %q", got)
		}
		for name, want := range before {
			var got []string
			for _, v := range h.PeekAll(name) {
				got = append(got, string(v))
			}
			if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
				t.Fatalf("%s: %q, was %q", name, got, want)
			}
		}
	})
}
