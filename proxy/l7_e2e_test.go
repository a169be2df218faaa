package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"halb/proxy/balance"
)

// namedBackend answers "NAME METHOD PATH" and records the request heads it got.
type namedBackend struct {
	*httpBackend
	heads atomic.Pointer[[]string]
	hits  atomic.Int64
}

func newNamedBackend(t *testing.T, name string) *namedBackend {
	nb := &namedBackend{}
	nb.heads.Store(new([]string))
	nb.httpBackend = newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		nb.hits.Add(1)
		var sb strings.Builder
		r.Header.Write(&sb)
		h := append(append([]string(nil), *nb.heads.Load()...), sb.String())
		nb.heads.Store(&h)
		w.Header().Set("Server", "app")
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.Path)
	})
	return nb
}

func (nb *namedBackend) lastHead() string {
	h := *nb.heads.Load()
	if len(h) == 0 {
		return ""
	}
	return h[len(h)-1]
}

func mustRouter(t *testing.T, specs ...RouteSpec) *Router {
	t.Helper()
	r, err := NewRouter(specs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustRules(t *testing.T, rules ...HeaderRule) HeaderRules {
	t.Helper()
	r, err := NewHeaderRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Host, path, method and header routes send each request to its pool;
// redirects answer with their code and Location; header rules show at the
// server and at the client; a body over max_body_size gets 413 and the
// server gets nothing; an error page is served byte for byte.
func TestL7RoutesRulesRedirects(t *testing.T) {
	def, api, img, adm := newNamedBackend(t, "def"), newNamedBackend(t, "api"), newNamedBackend(t, "img"), newNamedBackend(t, "adm")
	dir := t.TempDir()
	page := []byte("<h1>we are busy</h1>\n")
	os.WriteFile(filepath.Join(dir, "404.html"), page, 0o644)
	pages, err := LoadErrorPages(map[int]string{404: filepath.Join(dir, "404.html")})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := NewRequestIDs()
	l7 := &L7Spec{
		Pools:     []*balance.Pool{pool(api.addr()), pool(img.addr()), pool(adm.addr())},
		PoolNames: []string{"api", "img", "adm"},
		Router: mustRouter(t,
			RouteSpec{Hosts: []string{"api.example.com"}, PathPrefix: "/v1/", Target: RouteTarget{Pool: 0}},
			RouteSpec{PathPrefix: "/img/", Methods: []string{"GET"}, Target: RouteTarget{Pool: 1}},
			RouteSpec{Headers: []HeaderMatch{{Name: "X-Admin", Value: "yes"}}, Target: RouteTarget{Pool: 2}},
			RouteSpec{PathPrefix: "/old/", Target: RouteTarget{Redirect: &Redirect{Code: 301, Location: "https://www.example.com/new/"}}},
		),
		Request:     mustRules(t, HeaderRule{Op: HeaderSet, Name: "X-Forwarded-Port", Value: "443"}, HeaderRule{Op: HeaderDel, Name: "X-Debug"}),
		Response:    mustRules(t, HeaderRule{Op: HeaderSet, Name: "Strict-Transport-Security", Value: "max-age=31536000"}, HeaderRule{Op: HeaderDel, Name: "Server"}),
		MaxBodySize: 10,
		ErrorPages:  pages,
		RequestID:   "X-Request-ID",
		RequestIDs:  ids,
	}
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(def.addr()), L7: l7})
	c := dial(t, s.Addr("h"))
	br := bufio.NewReader(c)
	for _, tc := range []struct{ raw, want string }{
		{"GET /v1/users HTTP/1.1\r\nHost: api.example.com\r\nX-Debug: 1\r\n\r\n", "api GET /v1/users"},
		{"GET /v1/users HTTP/1.1\r\nHost: www.example.com\r\n\r\n", "def GET /v1/users"},
		{"GET /img/a.png HTTP/1.1\r\nHost: x\r\n\r\n", "img GET /img/a.png"},
		{"DELETE /img/a.png HTTP/1.1\r\nHost: x\r\n\r\n", "def DELETE /img/a.png"},
		{"GET /any HTTP/1.1\r\nHost: x\r\nX-Admin: yes\r\n\r\n", "adm GET /any"},
	} {
		resp, body := exchange(t, c, br, "GET", tc.raw)
		if body != tc.want {
			t.Fatalf("%q: got %q, want %q", tc.raw, body, tc.want)
		}
		if resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" || resp.Header.Get("Server") != "" {
			t.Fatalf("response rules not applied: %v", resp.Header)
		}
	}
	h := api.lastHead()
	if !strings.Contains(h, "X-Forwarded-Port: 443") || strings.Contains(h, "X-Debug") || !strings.Contains(h, "X-Request-Id: ") {
		t.Fatalf("request rules at the server: %q", h)
	}
	resp, _ := exchange(t, c, br, "GET", "GET /old/page HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://www.example.com/new/" {
		t.Fatalf("redirect: %d %v", resp.StatusCode, resp.Header)
	}
	// Over max_body_size: 413, and no server saw it.
	before := def.hits.Load() + api.hits.Load() + img.hits.Load() + adm.hits.Load()
	resp, _ = exchange(t, c, br, "POST", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
	if resp.StatusCode != 413 {
		t.Fatalf("body over the limit: %d", resp.StatusCode)
	}
	if after := def.hits.Load() + api.hits.Load() + img.hits.Load() + adm.hits.Load(); after != before {
		t.Fatal("a server got the oversized request")
	}
	// No route and no default pool: 404, with the error page byte for byte.
	s2 := startServer(t, Global{}, ServiceSpec{Name: "n", Listen: lo4, Mode: ModeHTTP, L7: &L7Spec{Pools: l7.Pools, Router: l7.Router, ErrorPages: pages}})
	c2 := dial(t, s2.Addr("n"))
	resp, body := exchange(t, c2, bufio.NewReader(c2), "GET", "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 404 || body != string(page) || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("404 page: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	// redirect_scheme answers everything with the https URL of the request.
	s3 := startServer(t, Global{}, ServiceSpec{Name: "r", Listen: lo4, Mode: ModeHTTP, L7: &L7Spec{SchemeRedirect: &SchemeRedirect{Scheme: "https", Code: 308}}})
	c3 := dial(t, s3.Addr("r"))
	resp, _ = exchange(t, c3, bufio.NewReader(c3), "GET", "GET /a?b=1 HTTP/1.1\r\nHost: www.example.com:80\r\n\r\n")
	if resp.StatusCode != 308 || resp.Header.Get("Location") != "https://www.example.com/a?b=1" {
		t.Fatalf("redirect_scheme: %d %v", resp.StatusCode, resp.Header)
	}
}

// A client that returns its persistence cookie reaches the same server for
// 100 requests; when that server goes down, it moves and gets a new cookie.
func TestL7CookiePersistence(t *testing.T) {
	for _, mode := range []CookieMode{CookieInsert} {
		b1, b2 := newNamedBackend(t, "one"), newNamedBackend(t, "two")
		p := pool(b1.addr(), b2.addr())
		s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: p,
			L7: &L7Spec{Cookie: &CookiePersistence{Name: "SRVID", Mode: mode}}})
		get := func(cookie string) (string, string) {
			c := dial(t, s.Addr("h"))
			defer c.Close()
			raw := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			if cookie != "" {
				raw += "Cookie: SRVID=" + cookie + "\r\n"
			}
			resp, body := exchange(t, c, bufio.NewReader(c), "GET", raw+"\r\n")
			set := ""
			for _, ck := range resp.Cookies() {
				if ck.Name == "SRVID" {
					set = ck.Value
				}
			}
			return strings.Fields(body)[0], set
		}
		first, cookie := get("")
		if cookie == "" {
			t.Fatal("no persistence cookie set")
		}
		for i := range 100 {
			got, set := get(cookie)
			if got != first || set != "" {
				t.Fatalf("request %d with the cookie: server %s (want %s), new cookie %q", i, got, first, set)
			}
		}
		down := p.Views()[0].Name
		if first == "two" {
			down = p.Views()[1].Name
		}
		p.SetUp(down, false)
		got, set := get(cookie)
		if got == first || set == "" || set == cookie {
			t.Fatalf("after %s went down: server %s, cookie %q (was %q)", first, got, set, cookie)
		}
	}
}

// TLS termination with two certificates, each name gets its own, an
// unknown name the first; curl --http2 gets HTTP/2 200 through the proxy.
func TestL7TLSAndHTTP2(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	be := newNamedBackend(t, "app")
	dir := t.TempDir()
	store, err := NewCertStore(testLogger(t), []CertFile{
		{Cert: writeL7Cert(t, dir, "a.pem", nil, "a.test")},
		{Cert: writeL7Cert(t, dir, "b.pem", nil, "b.test")},
	}, TLSOptions{ALPN: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Global{}, ServiceSpec{Name: "t", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr()), L7: &L7Spec{TLS: store, H2: true}})
	_, port, _ := net.SplitHostPort(s.Addr("t").String())
	for name, want := range map[string]string{"a.test": "CN=a.test", "b.test": "CN=b.test", "unknown.test": "CN=a.test"} {
		for _, proto := range []string{"--http1.1", "--http2"} {
			out, err := exec.Command(curl, "-sS", "-k", "-v", proto, "--max-time", "10", "--resolve", name+":"+port+":127.0.0.1",
				"https://"+name+":"+port+"/x").CombinedOutput()
			if err != nil {
				t.Fatalf("curl %s %s: %v\n%s", proto, name, err, out)
			}
			o := string(out)
			status := "HTTP/1.1 200"
			if proto == "--http2" {
				status = "HTTP/2 200"
			}
			if !strings.Contains(o, "subject: "+want) || !strings.Contains(o, "< "+status) || !strings.HasSuffix(o, "app GET /x") {
				t.Errorf("curl %s %s: want %s and %s\n%s", proto, name, want, status, o)
			}
		}
	}
	if h := be.lastHead(); !strings.Contains(h, "X-Forwarded-Proto: https") {
		t.Errorf("server did not see X-Forwarded-Proto https: %q", h)
	}
	// Garbage instead of a ClientHello is closed, and nothing reaches the server.
	hits := be.hits.Load()
	c := dial(t, s.Addr("t"))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	io.Copy(io.Discard, c)
	if be.hits.Load() != hits {
		t.Fatal("a plaintext request on the TLS port reached the server")
	}
}

// TestL7MaxBodyChunked: a chunked body that goes past max_body_size gets 413
// and its server never receives it whole (its connection is cut before the
// data past the limit); one within the limit goes through.
func TestL7MaxBodyChunked(t *testing.T) {
	rb := newRecBackend(t, func(head string, n int) []piece {
		return []piece{{data: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}}
	})
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(rb.ln.Addr()),
		L7: &L7Spec{MaxBodySize: 10}})
	c := dial(t, s.Addr("h"))
	br := bufio.NewReader(c)
	resp, body := exchange(t, c, br, "POST", "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("within the limit: %d %q", resp.StatusCode, body)
	}
	resp, _ = exchange(t, c, br, "POST", "POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	if resp.StatusCode != 413 {
		t.Fatalf("over the limit: %d", resp.StatusCode)
	}
	if got := rb.all(); strings.Contains(got, "world") || strings.Count(got, "0\r\n\r\n") != 1 {
		t.Fatalf("the server received the oversized body: %q", got)
	}
}

// A service whose rules or routes name the forwarding fields gets them in
// the request head before its routes and rules run (they see and change
// halb's values); one that does not gets them written after the head. The
// server sees one of each either way, with the values the rules left.
func TestL7ForwardedFieldsAndRules(t *testing.T) {
	def, xff := newNamedBackend(t, "def"), newNamedBackend(t, "xff")
	for _, tc := range []struct {
		name  string
		l7    *L7Spec
		late  bool
		raw   string
		body  string
		wants map[string]string // field: its only value at the server ("" = absent)
	}{
		{
			name: "no rule names them: written after the head",
			l7:   &L7Spec{Request: mustRules(t, HeaderRule{Op: HeaderSet, Name: "X-Other", Value: "1"})},
			late: true,
			raw:  "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: gopher\r\nForwarded: for=6.6.6.6\r\n\r\n",
			body: "def GET /",
			wants: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http",
				"Forwarded": "for=127.0.0.1;proto=http", "X-Other": "1"},
		},
		{
			name: "a rule sets X-Forwarded-Proto: halb's is replaced, not repeated",
			l7:   &L7Spec{Request: mustRules(t, HeaderRule{Op: HeaderSet, Name: "x-forwarded-proto", Value: "https"})},
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			body: "def GET /",
			wants: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https",
				"Forwarded": "for=127.0.0.1;proto=http"},
		},
		{
			name: "a rule deletes Forwarded: gone",
			l7:   &L7Spec{Request: mustRules(t, HeaderRule{Op: HeaderDel, Name: "Forwarded"})},
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			body: "def GET /",
			wants: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http",
				"Forwarded": ""},
		},
		{
			name: "a route on X-Forwarded-For sees halb's value",
			l7: &L7Spec{Pools: []*balance.Pool{pool(xff.addr())}, PoolNames: []string{"xff"},
				Router: mustRouter(t, RouteSpec{Headers: []HeaderMatch{{Name: "X-Forwarded-For", Value: "127.0.0.1"}}, Target: RouteTarget{Pool: 0}})},
			raw:   "GET /r HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
			body:  "xff GET /r",
			wants: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := !tc.l7.NamesForwarded(); got != tc.late {
				t.Fatalf("written after the head: %v, want %v", got, tc.late)
			}
			s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(def.addr()), L7: tc.l7})
			c := dial(t, s.Addr("h"))
			br := bufio.NewReader(c)
			if _, body := exchange(t, c, br, "GET", tc.raw); body != tc.body {
				t.Fatalf("got %q, want %q", body, tc.body)
			}
			be := def
			if strings.HasPrefix(tc.body, "xff") {
				be = xff
			}
			head := be.lastHead()
			for name, want := range tc.wants {
				var vals []string
				for _, line := range strings.Split(head, "\r\n") {
					if n, v, ok := strings.Cut(line, ": "); ok && strings.EqualFold(n, name) {
						vals = append(vals, v)
					}
				}
				switch {
				case want == "" && len(vals) != 0:
					t.Errorf("%s at the server: %q, want none", name, vals)
				case want != "" && (len(vals) != 1 || vals[0] != want):
					t.Errorf("%s at the server: %q, want [%q]\n%s", name, vals, want, head)
				}
			}
		})
	}
}
