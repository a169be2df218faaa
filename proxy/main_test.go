package proxy

import (
	"bufio"
	"context"
	"halb/internal/poll"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"halb/proxy/balance"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's per-HostClient idle-connection reaper sleeps up to
		// MaxIdleConnDuration before it notices its pool is empty.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		// fasthttp's process-wide Date header clock, started once.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

var lo4 = netip.MustParseAddrPort("127.0.0.1:0")

// startServer applies specs to a new Server and shuts it down at cleanup.
func startServer(t *testing.T, g Global, specs ...ServiceSpec) *Server {
	t.Helper()
	s := NewServer(testLogger(t), g)
	if err := s.Apply(specs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func testLogger(t *testing.T) *zap.Logger {
	if testing.Verbose() {
		return zaptest.NewLogger(t)
	}
	return zap.NewNop()
}

func pool(addrs ...net.Addr) *balance.Pool {
	var ms []balance.Member
	for _, a := range addrs {
		ap := a.(*net.TCPAddr).AddrPort()
		ms = append(ms, balance.Member{Name: ap.String(), Addr: ap, Weight: 1})
	}
	return balance.NewPool(balance.RR, ms, balance.Options{})
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) net.Addr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr()
	ln.Close()
	return a
}

// echoServer accepts connections and echoes them, half-closing after EOF.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
}

func newEcho(t *testing.T, network, addr string) *echoServer {
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return e
}

// httpBackend is an httptest server counting its accepted connections.
type httpBackend struct {
	*httptest.Server
	conns atomic.Int64
}

func newHTTPBackend(t *testing.T, h http.HandlerFunc) *httpBackend {
	b := &httpBackend{}
	b.Server = httptest.NewUnstartedServer(h)
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *httpBackend) addr() net.Addr { return b.Listener.Addr() }

func dial(t *testing.T, a net.Addr) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

// rawRequest writes raw bytes and reads one response.
func rawRequest(t *testing.T, a net.Addr, raw string) (*http.Response, string) {
	t.Helper()
	c := dial(t, a)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", raw, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(5*time.Second, time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// serveConns listens on loopback and serves every connection with handle, each
// on its own goroutine; at the test's end it closes the listener and every
// connection and waits for the handlers (for handlers that block on their
// connection, as TLS and HTTP/2 servers do). It returns the address.
func serveConns(tb testing.TB, handle func(c net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	closed := false
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				c.Close()
			}
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	return ln.Addr().String()
}

// acceptLoop serves every connection ln accepts with handle, each on its own goroutine, until the
// test ends: tb.Cleanup closes ln and waits for the loop.
func acceptLoop(tb testing.TB, ln net.Listener, handle func(c net.Conn)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	tb.Cleanup(func() { ln.Close(); <-done })
}
