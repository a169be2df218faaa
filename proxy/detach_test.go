package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// detachedConns counts the HTTP client connections of s whose descriptor is
// detached from Go's runtime (h1conn.detach sets se.client to nil under se.mu).
func detachedConns(s *Server) int {
	n := 0
	for _, se := range s.sessionList() {
		se.mu.Lock()
		if se.h1 != nil && se.client == nil {
			n++
		}
		se.mu.Unlock()
	}
	return n
}

func getOK(t *testing.T, c net.Conn, br *bufio.Reader, path string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || string(body) != "at "+path {
		t.Fatalf("%s: %d %q %v", path, resp.StatusCode, body, err)
	}
}

// A keep-alive connection idle past backendHold gives its descriptor up to
// the parking loop alone (no *net.TCPConn); it is served again when it
// speaks, closed when its keep-alive time ends, closed at once by a drain,
// and closed by a forced shutdown.
func TestHTTPDetachedIdle(t *testing.T) {
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "at %s", r.URL.Path)
	})
	spec := ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr())}

	t.Run("served again", func(t *testing.T) {
		s := startServer(t, Global{}, spec)
		c := dial(t, s.Addr("h"))
		br := bufio.NewReader(c)
		for i := range 3 {
			getOK(t, c, br, fmt.Sprintf("/%d", i))
			eventually(t, "the idle connection detached", func() bool { return detachedConns(s) == 1 })
		}
		// A request written in two parts while detached.
		io.WriteString(c, "GET /split HTTP/1.1\r\n")
		io.WriteString(c, "Host: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatal(resp, err)
		}
		resp.Body.Close()
		if st := statsOf(s, "h"); st.Total != 1 || st.Requests[2] != 4 {
			t.Fatalf("one connection, four 2xx wanted: %+v", st)
		}
		// The client goes: the session ends.
		eventually(t, "detached again", func() bool { return detachedConns(s) == 1 })
		c.Close()
		eventually(t, "the session ended", func() bool { return len(s.sessionList()) == 0 })
	})

	t.Run("IPv6, PROXY header to the server after reattaching", func(t *testing.T) {
		// The server reports the PROXY header it got on each connection: the
		// second request, after the detach, comes on a new server connection
		// whose header must still name the client and the address it used.
		be := proxyHeaderBackend(t, func(h ProxyHeader, perr error) string { return fmt.Sprintf("%v %v %v", h.Src, h.Dst, perr) })
		probe, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		probe.Close()
		sp := ServiceSpec{Name: "h6", Listen: mustAP("[::1]:0"), Mode: ModeHTTP, Pool: pool(be), SendProxy: ProxyV1}
		s := startServer(t, Global{}, sp)
		c := dial(t, s.Addr("h6"))
		br := bufio.NewReader(c)
		want := fmt.Sprintf("%v %v <nil>", c.LocalAddr(), c.RemoteAddr())
		for i := range 2 {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != want {
				t.Fatalf("request %d: the server saw %q, want %q", i, body, want)
			}
			if i == 0 {
				eventually(t, "the idle connection detached", func() bool { return detachedConns(s) == 1 })
			}
		}
	})

	t.Run("keep-alive timeout", func(t *testing.T) {
		sp := spec
		sp.Timeouts = Timeouts{HTTPKeepAlive: 400 * time.Millisecond}
		s := startServer(t, Global{}, sp)
		c := dial(t, s.Addr("h"))
		br := bufio.NewReader(c)
		getOK(t, c, br, "/x")
		eventually(t, "the idle connection detached", func() bool { return detachedConns(s) == 1 })
		start := time.Now()
		expectClosed(t, c)
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("closed after %v, keep-alive timeout 400ms", d)
		}
		eventually(t, "the session ended", func() bool { return len(s.sessionList()) == 0 })
	})

	t.Run("drained", func(t *testing.T) {
		s := NewServer(testLogger(t), Global{})
		if err := s.Apply([]ServiceSpec{spec}); err != nil {
			t.Fatal(err)
		}
		c := dial(t, s.Addr("h"))
		br := bufio.NewReader(c)
		getOK(t, c, br, "/x")
		eventually(t, "the idle connection detached", func() bool { return detachedConns(s) == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("graceful shutdown with a detached idle connection: %v", err)
		}
		expectClosed(t, c)
	})

	t.Run("forced close", func(t *testing.T) {
		s := startServer(t, Global{}, spec)
		c := dial(t, s.Addr("h"))
		br := bufio.NewReader(c)
		getOK(t, c, br, "/x")
		eventually(t, "the idle connection detached", func() bool { return detachedConns(s) == 1 })
		for _, se := range s.sessionList() {
			se.close() // what a Shutdown whose time ran out does
		}
		expectClosed(t, c)
		eventually(t, "the session ended", func() bool { return len(s.sessionList()) == 0 })
	})
}
