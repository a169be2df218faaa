package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHTTPKeepAliveAndHeaders(t *testing.T) {
	var last atomic.Pointer[http.Request]
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		last.Store(r.Clone(r.Context()))
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Kept", "yes")
		fmt.Fprintf(w, "hello %s", r.URL.RequestURI())
	})
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr())})
	c := dial(t, s.Addr("h"))
	br := bufio.NewReader(c)
	for i := range 5 {
		req := fmt.Sprintf("GET /p/%d//x?q=%%2F HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Hop\r\nX-Hop: drop\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-End: kept\r\n\r\n", i)
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if want := fmt.Sprintf("hello /p/%d//x?q=%%2F", i); string(body) != want {
			t.Fatalf("body %q want %q", body, want)
		}
		if resp.Header.Get("X-Secret") != "" || resp.Header.Get("Keep-Alive") != "" || resp.Header.Get("X-Kept") != "yes" {
			t.Fatalf("response hop-by-hop headers not handled: %v", resp.Header)
		}
		r := last.Load()
		for _, h := range []string{"X-Hop", "Te", "Proxy-Connection", "Upgrade", "Keep-Alive"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("hop-by-hop %s forwarded: %q", h, v)
			}
		}
		if r.Host != "example.com" || r.Header.Get("X-End") != "kept" {
			t.Errorf("host %q headers %v", r.Host, r.Header)
		}
		if got := r.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("untrusted XFF must be replaced: %q", got)
		}
		if got := r.Header.Get("Forwarded"); got != "for=127.0.0.1;proto=http" {
			t.Errorf("Forwarded %q", got)
		}
		if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("X-Forwarded-Proto %q", got)
		}
	}
	if n := be.conns.Load(); n != 1 {
		t.Fatalf("backend saw %d connections for 5 keep-alive requests, want 1", n)
	}
	st := s.Stats()[0]
	if st.Requests[2] != 5 || st.Total != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHTTPTrustedUpstreamAppends(t *testing.T) {
	var last atomic.Pointer[http.Request]
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { last.Store(r.Clone(r.Context())) })
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr()),
		TrustedUpstreams: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	resp, _ := rawRequest(t, s.Addr("h"), "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.18.0.1\r\nX-Forwarded-For: 198.18.0.2\r\nForwarded: for=198.18.0.1\r\nX-Forwarded-Proto: https\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	r := last.Load()
	if got := strings.Join(r.Header.Values("X-Forwarded-For"), "|"); got != "198.18.0.1, 198.18.0.2, 127.0.0.1" {
		t.Errorf("XFF %q", got)
	}
	if got := r.Header.Get("Forwarded"); got != "for=198.18.0.1, for=127.0.0.1;proto=http" {
		t.Errorf("Forwarded %q", got)
	}
	if got := r.Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto %q", got)
	}
}

// TestHTTPPipelinedWhileHeld: a client that sends its next request while the
// proxy waits on the backend (pipelining) gets both responses, in order. The
// first response is held back for the wait for the next request (lingerWait):
// the second request arrived before that wait was armed, so only its probe
// after the linger can see it.
func TestHTTPPipelinedWhileHeld(t *testing.T) {
	got := make(chan string, 8)
	release := make(chan struct{})
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprintf(w, "r%s", r.URL.Path)
	})
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr())})
	c := dial(t, s.Addr("h"))
	br := bufio.NewReader(c)
	read := func(want string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Fatalf("body %q, want %q", body, want)
		}
	}
	for round := range 3 {
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		if p := <-got; p != "/slow" {
			t.Fatalf("round %d: backend got %s first", round, p)
		}
		io.WriteString(c, fmt.Sprintf("GET /next%d HTTP/1.1\r\nHost: x\r\n\r\n", round))
		release <- struct{}{}
		read("r/slow")
		read(fmt.Sprintf("r/next%d", round))
		if p := <-got; p != fmt.Sprintf("/next%d", round) {
			t.Fatalf("round %d: backend got %s", round, p)
		}
	}
	// Plain keep-alive requests still work after the connection stopped folding.
	for i := range 3 {
		io.WriteString(c, fmt.Sprintf("GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
		read(fmt.Sprintf("r/k%d", i))
		<-got
	}
}

// TestHTTPHalfCloseAfterRequests: a client that sends its requests and then
// half-closes gets every answer whole and then the end of the connection;
// the answers' bytes are counted. (Small answers on keep-alive connections are
// held back and written from inside the wait for the next request, which the
// end of the client's side reaches before that wait begins.)
func TestHTTPHalfCloseAfterRequests(t *testing.T) {
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "r%s", r.URL.Path) })
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr())})
	for _, n := range []int{1, 3} {
		c := dial(t, s.Addr("h"))
		before := s.Stats()[0].BytesOut
		for i := range n {
			// One request at a time but all sent before the half-close,
			// as a client that pipelines.
			io.WriteString(c, fmt.Sprintf("GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
		}
		c.CloseWrite()
		all, err := io.ReadAll(c) // ends only when the proxy closes its side
		if err != nil {
			t.Fatalf("%d requests: %v after %q", n, err, all)
		}
		br := bufio.NewReader(strings.NewReader(string(all)))
		for i := range n {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%d requests: answer %d: %v in %q", n, i, err, all)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != fmt.Sprintf("r/%d", i) {
				t.Fatalf("%d requests: answer %d body %q", n, i, body)
			}
		}
		if br.Buffered() != 0 {
			t.Fatalf("%d requests: %d bytes after the answers", n, br.Buffered())
		}
		eventually(t, "bytes out counted", func() bool { return s.Stats()[0].BytesOut-before == uint64(len(all)) })
	}
}
