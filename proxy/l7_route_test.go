package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func reqHead(t testing.TB, raw string) *fasthttp.RequestHeader {
	t.Helper()
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return &h
}

func testRoutes() []RouteSpec {
	return []RouteSpec{
		{Hosts: []string{"api.example.com"}, PathPrefix: "/v1/", Target: RouteTarget{Pool: 1}},
		{Hosts: []string{"*.Example.org"}, Methods: []string{"POST", "PUT"}, Target: RouteTarget{Pool: 2}},
		{PathExact: "/login", Sources: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}, Target: RouteTarget{Pool: 3}},
		{Headers: []HeaderMatch{{Name: "x-env", Value: "canary"}}, Target: RouteTarget{Pool: 4}},
		{PathRegex: `^/img/[0-9]+\.png$`, Target: RouteTarget{Pool: 5}},
		{PathPrefix: "/old/", Target: RouteTarget{Redirect: &Redirect{Code: 301, Location: "https://www.example.com/new/"}}},
		{PathPrefix: "/admin", Sources: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}, Target: RouteTarget{Pool: 6}},
	}
}

func TestRouteMatch(t *testing.T) {
	r, err := NewRouter(testRoutes())
	if err != nil {
		t.Fatal(err)
	}
	lan := netip.MustParseAddr("198.18.0.7")
	other := netip.MustParseAddr("198.19.0.7")
	v6 := netip.MustParseAddr("2001:db8::5")
	tests := []struct {
		name, req string
		src       netip.Addr
		want      int // pool, -1 no match, 0 redirect
	}{
		{"host+prefix", "GET /v1/users HTTP/1.1\r\nHost: api.example.com\r\n\r\n", other, 1},
		{"host case and port", "GET /v1/ HTTP/1.1\r\nHost: API.Example.COM:8443\r\n\r\n", other, 1},
		{"host trailing dot", "GET /v1/x HTTP/1.1\r\nHost: api.example.com.\r\n\r\n", other, 1},
		{"prefix mismatch", "GET /v2/users HTTP/1.1\r\nHost: api.example.com\r\n\r\n", other, -1},
		{"dot segments resolved", "GET /v1/../admin HTTP/1.1\r\nHost: api.example.com\r\n\r\n", v6, 6},
		{"escaped unreserved decoded", "GET /%61dmin/x HTTP/1.1\r\nHost: x\r\n\r\n", v6, 6},
		{"absolute form", "GET http://api.example.com/v1/x?q=1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n", other, 1},
		{"wildcard one label", "POST /x HTTP/1.1\r\nHost: a.example.org\r\nContent-Length: 0\r\n\r\n", other, 2},
		{"wildcard not two labels", "POST /x HTTP/1.1\r\nHost: a.b.example.org\r\nContent-Length: 0\r\n\r\n", other, -1},
		{"wildcard not apex", "POST /x HTTP/1.1\r\nHost: example.org\r\nContent-Length: 0\r\n\r\n", other, -1},
		{"wildcard wrong method", "GET /x HTTP/1.1\r\nHost: a.example.org\r\n\r\n", other, -1},
		{"exact path + src", "GET /login HTTP/1.1\r\nHost: x\r\n\r\n", lan, 3},
		{"exact path query", "GET /login?next=/ HTTP/1.1\r\nHost: x\r\n\r\n", lan, 3},
		{"exact path wrong src", "GET /login HTTP/1.1\r\nHost: x\r\n\r\n", other, -1},
		{"exact path longer", "GET /login/ HTTP/1.1\r\nHost: x\r\n\r\n", lan, -1},
		{"header", "GET / HTTP/1.1\r\nHost: x\r\nX-Env: canary\r\n\r\n", other, 4},
		{"header second value", "GET / HTTP/1.1\r\nHost: x\r\nX-Env: prod\r\nx-env: canary\r\n\r\n", other, 4},
		{"header wrong value", "GET / HTTP/1.1\r\nHost: x\r\nX-Env: Canary\r\n\r\n", other, -1},
		{"regex", "GET /img/42.png HTTP/1.1\r\nHost: x\r\n\r\n", other, 5},
		{"regex no", "GET /img/42.gif HTTP/1.1\r\nHost: x\r\n\r\n", other, -1},
		{"redirect", "GET /old/page HTTP/1.1\r\nHost: x\r\n\r\n", other, 0},
		{"v4-mapped source", "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n", netip.MustParseAddr("::ffff:198.18.0.1"), -1},
		{"first match wins", "GET /login HTTP/1.1\r\nHost: x\r\nX-Env: canary\r\n\r\n", lan, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg, i, ok := r.Match(reqHead(t, tt.req), tt.src)
			got := -1
			if ok {
				got = tg.Pool
				if tg.Redirect != nil {
					got = 0
				}
			}
			if got != tt.want {
				t.Errorf("got %d (route %d), want %d", got, i, tt.want)
			}
			if ok != (i >= 0) {
				t.Errorf("index %d with ok %v", i, ok)
			}
		})
	}
	var nilRouter *Router
	if _, _, ok := nilRouter.Match(reqHead(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), lan); ok {
		t.Error("nil router matched")
	}
}

func TestNewRouterErrors(t *testing.T) {
	for _, s := range []RouteSpec{
		{PathRegex: "(", Target: RouteTarget{Pool: 1}},
		{Hosts: []string{"a.*.com"}, Target: RouteTarget{Pool: 1}},
		{Hosts: []string{"*a.com"}, Target: RouteTarget{Pool: 1}},
		{Target: RouteTarget{Pool: -1}},
	} {
		if _, err := NewRouter([]RouteSpec{s}); err == nil || !strings.HasPrefix(err.Error(), "proxy: compile routes: route 0") {
			t.Errorf("%+v: err = %v", s, err)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":              "/",
		"/a/b":           "/a/b",
		"/a/b/":          "/a/b/",
		"//a///b":        "/a/b",
		"/a/./b/.":       "/a/b/",
		"/a/../../b":     "/b",
		"/a/b/..":        "/a/",
		"/..":            "/",
		"/%2e%2E/x":      "/x",
		"/%61%7e%2f%2F":  "/a~%2F%2F",
		"/%zz":           "/%zz",
		"/a%":            "/a%",
		"":               "/",
		"*":              "/*",
		"/.hidden/..x":   "/.hidden/..x",
		"/a/%2e%2e%2fb/": "/a/..%2Fb/",
	} {
		if got := string(cleanPath([]byte(in))); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// route100 builds 100 host + path_prefix routes; the last takes host h99.example.com.
func route100() []RouteSpec {
	var specs []RouteSpec
	for i := range 100 {
		specs = append(specs, RouteSpec{Hosts: []string{fmt.Sprintf("h%d.example.com", i)}, PathPrefix: fmt.Sprintf("/p%d/", i),
			Target: RouteTarget{Pool: i}})
	}
	return specs
}

func TestRouteMatchAllocs(t *testing.T) {
	specs := append(route100(), testRoutes()...)
	r, err := NewRouter(specs)
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("198.18.0.7")
	for _, raw := range []string{
		"GET /p99/x HTTP/1.1\r\nHost: h99.example.com\r\n\r\n",
		"GET /img/1.png HTTP/1.1\r\nHost: nowhere\r\nX-Env: prod\r\n\r\n",
		"GET /nothing HTTP/1.1\r\nHost: nowhere\r\nX-Env: prod\r\n\r\n",
	} {
		h := reqHead(t, raw)
		if n := testing.AllocsPerRun(100, func() { r.Match(h, src) }); n != 0 {
			t.Errorf("%q: %v allocations per Match", raw, n)
		}
	}
}

func BenchmarkRouteMatch100(b *testing.B) {
	r, err := NewRouter(route100())
	if err != nil {
		b.Fatal(err)
	}
	h := reqHead(b, "GET /p99/index.html?x=1 HTTP/1.1\r\nHost: h99.example.com\r\nUser-Agent: bench\r\n\r\n")
	src := netip.MustParseAddr("198.18.0.7")
	b.ReportAllocs()
	for b.Loop() {
		if t, _, ok := r.Match(h, src); !ok || t.Pool != 99 {
			b.Fatal("no match")
		}
	}
}

// refMatch is a slow, independent reading of the routing rules, for the fuzzer.
func refMatch(specs []RouteSpec, h *fasthttp.RequestHeader, src netip.Addr) int {
	host := strings.ToLower(string(h.Host()))
	if strings.HasPrefix(host, "[") {
		host = host[:strings.Index(host, "]")+1]
	} else if i := strings.LastIndex(host, ":"); i >= 0 {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if len(host) > maxHost || strings.IndexFunc(host, func(r rune) bool { return !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz0123456789-._[]:", r) }) >= 0 {
		host = ""
	}
	p := string(cleanPath(requestPath(h.RequestURI())))
	src = src.Unmap()
	for i, s := range specs {
		ok := len(s.Hosts) == 0
		for _, hh := range s.Hosts {
			hh = strings.ToLower(hh)
			if w, isWild := strings.CutPrefix(hh, "*"); isWild {
				label, found := strings.CutSuffix(host, w)
				ok = ok || found && label != "" && !strings.Contains(label, ".")
			} else {
				ok = ok || host == hh
			}
		}
		ok = ok && strings.HasPrefix(p, s.PathPrefix) && (s.PathExact == "" || p == s.PathExact)
		if s.PathRegex != "" {
			ok = ok && regexp.MustCompile(s.PathRegex).MatchString(p)
		}
		ok = ok && (len(s.Methods) == 0 || slices.Contains(s.Methods, string(h.Method())))
		ok = ok && (len(s.Sources) == 0 || slices.ContainsFunc(s.Sources, func(pf netip.Prefix) bool { return pf.Contains(src) }))
		for _, m := range s.Headers {
			found := false
			for _, v := range h.PeekAll(m.Name) {
				found = found || string(v) == m.Value
			}
			ok = ok && found
		}
		if ok {
			return i
		}
	}
	return -1
}

// FuzzRoute parses arbitrary bytes as a request head and routes it: Match must not panic and must
// agree with refMatch; cleanPath must be idempotent, keep the root, and agree with path.Clean on
// the segments when there is no escape.
func FuzzRoute(f *testing.F) {
	f.Add([]byte("GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"), []byte{198, 18, 0, 1})
	f.Add([]byte("POST /x HTTP/1.1\r\nHost: A.EXAMPLE.org.:80\r\nContent-Length: 0\r\n\r\n"), []byte{198, 19, 0, 1})
	f.Add([]byte("GET /a/../%2e%2e/login?x HTTP/1.1\r\nHost: [2001:db8::1]:443\r\nX-Env: canary\r\n\r\n"), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5})
	f.Add([]byte("GET http://h//img/7.png HTTP/1.0\r\n\r\n"), []byte{})
	specs := append(testRoutes(), route100()[:5]...)
	r, err := NewRouter(specs)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw, srcBytes []byte) {
		src, _ := netip.AddrFromSlice(srcBytes)
		var h fasthttp.RequestHeader
		if h.Read(bufio.NewReader(bytes.NewReader(raw))) != nil {
			return
		}
		_, i, _ := r.Match(&h, src)
		if want := refMatch(specs, &h, src); i != want {
			t.Fatalf("Match = route %d, reference = %d (host %q uri %q)", i, want, h.Host(), h.RequestURI())
		}
		p := requestPath(h.RequestURI())
		c := cleanPath(p)
		if len(c) == 0 || c[0] != '/' {
			t.Fatalf("cleanPath(%q) = %q", p, c)
		}
		if again := cleanPath(c); !bytes.Equal(again, c) {
			t.Fatalf("cleanPath not idempotent: %q -> %q -> %q", p, c, again)
		}
		if !bytes.Contains(p, []byte("%")) && len(p) > 0 && p[0] == '/' {
			if path.Clean(string(p)) != path.Clean(string(c)) {
				t.Fatalf("cleanPath(%q) = %q; path.Clean differs", p, c)
			}
		}
	})
}

// BenchmarkRouteMatch100Paths is the linear worst case: 100 routes without host condition, the
// last one matching.
func BenchmarkRouteMatch100Paths(b *testing.B) {
	specs := route100()
	for i := range specs {
		specs[i].Hosts = nil
	}
	r, err := NewRouter(specs)
	if err != nil {
		b.Fatal(err)
	}
	h := reqHead(b, "GET /p99/index.html?x=1 HTTP/1.1\r\nHost: h99.example.com\r\n\r\n")
	src := netip.MustParseAddr("198.18.0.7")
	b.ReportAllocs()
	for b.Loop() {
		if t, _, ok := r.Match(h, src); !ok || t.Pool != 99 {
			b.Fatal("no match")
		}
	}
}
