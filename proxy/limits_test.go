package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"halb/proxy/balance"
)

func statsOf(s *Server, name string) ServiceStats {
	for _, st := range s.Stats() {
		if st.Name == name {
			return st
		}
	}
	return ServiceStats{}
}

func echoOnce(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo %q: %q %v", msg, buf, err)
	}
}

func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.Copy(io.Discard, c); n != 0 || isTimeout(err) {
		t.Fatalf("connection not closed: %d bytes, %v", n, err)
	}
}

func TestMaxConnQueue(t *testing.T) {
	e := newEcho(t, "tcp", "127.0.0.1:0")
	s := startServer(t, Global{},
		ServiceSpec{Name: "q", Listen: lo4, Mode: ModeTCP, Pool: pool(e.ln.Addr()), MaxConn: 1, MaxQueue: 1},
		ServiceSpec{Name: "qt", Listen: lo4, Mode: ModeTCP, Pool: pool(e.ln.Addr()), MaxConn: 1, MaxQueue: 1,
			Timeouts: Timeouts{Queue: 100 * time.Millisecond}},
	)
	c1 := dial(t, s.Addr("q"))
	echoOnce(t, c1, "a")
	c2 := dial(t, s.Addr("q"))
	eventually(t, "c2 queued", func() bool { return statsOf(s, "q").Queued == 1 })
	c3 := dial(t, s.Addr("q"))
	expectClosed(t, c3) // queue full: refused
	c2.Write([]byte("b"))
	c1.Close()
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c2, buf); err != nil || buf[0] != 'b' {
		t.Fatalf("queued connection not served after a slot freed: %v", err)
	}
	if st := statsOf(s, "q"); st.Refused != 1 || st.Active != 1 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Queue timeout.
	d1 := dial(t, s.Addr("qt"))
	echoOnce(t, d1, "x")
	d2 := dial(t, s.Addr("qt"))
	expectClosed(t, d2)
	if st := statsOf(s, "qt"); st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGlobalMaxConnAndHTTP503(t *testing.T) {
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	e := newEcho(t, "tcp", "127.0.0.1:0")
	s := startServer(t, Global{MaxConn: 1},
		ServiceSpec{Name: "tcp", Listen: lo4, Mode: ModeTCP, Pool: pool(e.ln.Addr())},
		ServiceSpec{Name: "http", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr())},
	)
	c1 := dial(t, s.Addr("tcp"))
	echoOnce(t, c1, "a")
	resp, _ := rawRequest(t, s.Addr("http"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 503 {
		t.Fatalf("over global maxconn: %d, want 503", resp.StatusCode)
	}
	c1.Close()
	eventually(t, "slot freed", func() bool { return statsOf(s, "tcp").Active == 0 })
	resp, _ = rawRequest(t, s.Addr("http"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("after release: %d", resp.StatusCode)
	}
	// Raising the limit at runtime.
	s.SetGlobal(Global{MaxConn: 0})
	if st := statsOf(s, "http"); st.Refused != 1 || st.Requests[5] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Per-backend maxconn: a full backend is skipped for another; when all are
// full the connection is refused.
func TestBackendMaxConn(t *testing.T) {
	e1, e2 := newEcho(t, "tcp", "127.0.0.1:0"), newEcho(t, "tcp", "127.0.0.1:0")
	var ms []balance.Member
	for _, e := range []*echoServer{e1, e2} {
		ap := e.ln.Addr().(*net.TCPAddr).AddrPort()
		ms = append(ms, balance.Member{Name: ap.String(), Addr: ap, Weight: 1, MaxConn: 1})
	}
	p := balance.NewPool(balance.RR, ms, balance.Options{})
	s := startServer(t, Global{}, ServiceSpec{Name: "t", Listen: lo4, Mode: ModeTCP, Pool: p})
	for i := range 4 {
		// Keep each connection open: slots stay taken.
		c := dial(t, s.Addr("t"))
		if i < 2 {
			echoOnce(t, c, "x")
			continue
		}
		expectClosed(t, c)
	}
	if e1.accepted.Load() != 1 || e2.accepted.Load() != 1 {
		t.Fatalf("accepted %d/%d, want 1/1", e1.accepted.Load(), e2.accepted.Load())
	}
}

func TestSlowlorisAndStalledReader(t *testing.T) {
	big := strings.Repeat("x", 8<<20)
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) })
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr()),
		Timeouts: Timeouts{HTTPRequest: 200 * time.Millisecond, Client: 300 * time.Millisecond}})
	// Never finishes its request head: cut at the request timeout.
	c := dial(t, s.Addr("h"))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
	start := time.Now()
	io.Copy(io.Discard, c)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("slowloris held for %v", d)
	}
	// The same on a keep-alive connection, whose next request's first bytes
	// are read without a deadline (they came): 408 at the request timeout.
	ka := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	s2 := startServer(t, Global{}, ServiceSpec{Name: "k", Listen: lo4, Mode: ModeHTTP, Pool: pool(ka.addr()),
		Timeouts: Timeouts{HTTPRequest: 200 * time.Millisecond}})
	c3 := dial(t, s2.Addr("k"))
	br := bufio.NewReader(c3)
	for i := range 2 {
		io.WriteString(c3, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
	start = time.Now()
	io.WriteString(c3, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); resp.StatusCode != 408 || d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("a partial head on a keep-alive connection: %s after %v, want 408 after 200ms", resp.Status, d)
	}
	// Never reads its response: cut at the client timeout.
	c2 := dial(t, s.Addr("h"))
	c2.SetReadBuffer(4096)
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	eventually(t, "stalled reader cut", func() bool { return statsOf(s, "h").Active == 0 })
	if be.conns.Load() != 1 {
		t.Fatalf("backend conns %d", be.conns.Load())
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	t.Parallel() // mostly waiting
	e := newEcho(t, "tcp", "127.0.0.1:0")
	// The timeout is generous so that a loaded machine (race detector, other
	// builds) does not stall the client's traffic for that long.
	const idle = time.Second
	s := startServer(t, Global{}, ServiceSpec{Name: "t", Listen: lo4, Mode: ModeTCP, Pool: pool(e.ln.Addr()),
		Timeouts: Timeouts{Client: idle, Server: idle}})
	c := dial(t, s.Addr("t"))
	// Activity keeps the session alive well past the timeout...
	for start := time.Now(); time.Since(start) < 2*idle+idle/2; {
		echoOnce(t, c, "ping")
	}
	// ...silence ends it.
	start := time.Now()
	expectClosed(t, c)
	if d := time.Since(start); d < idle*3/4 {
		t.Fatalf("closed after %v of silence, before the timeout", d)
	}
}

// Apply keeps unchanged listeners: a client connecting continuously while the
// configuration is re-applied never sees a refused connection.
func TestApplyKeepsListener(t *testing.T) {
	e1, e2 := newEcho(t, "tcp", "127.0.0.1:0"), newEcho(t, "tcp", "127.0.0.1:0")
	spec := ServiceSpec{Name: "t", Listen: mustAP("127.0.0.1:0"), Mode: ModeTCP, Pool: pool(e1.ln.Addr())}
	s := startServer(t, Global{}, spec)
	addr := s.Addr("t")
	var stop atomic.Bool
	var wg sync.WaitGroup
	var dialErr atomic.Value
	var ok atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				dialErr.Store(err)
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("x"))
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil {
				dialErr.Store(err)
				c.Close()
				return
			}
			c.Close()
			ok.Add(1)
		}
	}()
	for i := range 50 {
		spec.Pool = pool(e1.ln.Addr())
		if i%2 == 1 {
			spec.Pool = pool(e2.ln.Addr())
		}
		spec.Timeouts.Client = time.Duration(i+1) * time.Second
		if err := s.Apply([]ServiceSpec{spec}); err != nil {
			t.Fatal(err)
		}
		if s.Addr("t").String() != addr.String() {
			t.Fatalf("listener changed: %v -> %v", addr, s.Addr("t"))
		}
	}
	eventually(t, "traffic during reloads", func() bool { return ok.Load() > 20 })
	stop.Store(true)
	wg.Wait()
	if err := dialErr.Load(); err != nil {
		t.Fatalf("client error during Apply: %v", err)
	}
	if e2.accepted.Load() == 0 && e1.accepted.Load() == 0 {
		t.Fatal("no backend traffic")
	}
	// A bind error changes nothing and names the address.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := ServiceSpec{Name: "busy", Listen: busy.Addr().(*net.TCPAddr).AddrPort(), Mode: ModeTCP}
	err = s.Apply([]ServiceSpec{bad})
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("bind error %v does not name %v", err, busy.Addr())
	}
	c := dial(t, addr)
	echoOnce(t, c, "still")
}

func TestFreebindNonLocalAddress(t *testing.T) {
	// 198.18.0.0/15 is not configured on this host: without IP_FREEBIND the
	// bind fails with EADDRNOTAVAIL. No traffic is sent to it.
	s := NewServer(testLogger(t), Global{})
	err := s.Apply([]ServiceSpec{
		{Name: "vip", Listen: mustAP("198.18.255.254:0"), Mode: ModeTCP},
		{Name: "vip6", Listen: mustAP("[2001:db8::fe]:0"), Mode: ModeHTTP},
	})
	if err != nil {
		t.Fatalf("freebind listen: %v", err)
	}
	if a := s.Addr("vip6"); a == nil || a.(*net.TCPAddr).IP.String() != "2001:db8::fe" {
		t.Fatalf("vip6 bound to %v", a)
	}
	s.Shutdown(context.Background())
}

func TestShutdownDrains(t *testing.T) {
	e := newEcho(t, "tcp", "127.0.0.1:0")
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	s := NewServer(testLogger(t), Global{})
	if err := s.Apply([]ServiceSpec{
		{Name: "t", Listen: lo4, Mode: ModeTCP, Pool: pool(e.ln.Addr())},
		{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr())},
	}); err != nil {
		t.Fatal(err)
	}
	tAddr, hAddr := s.Addr("t"), s.Addr("h")
	c := dial(t, tAddr)
	echoOnce(t, c, "before")
	// An idle keep-alive HTTP connection is closed at once.
	hc := dial(t, hAddr)
	io.WriteString(hc, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(hc)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatal(resp, err)
	}
	res := make(chan error, 1)
	go func() { res <- s.Shutdown(context.Background()) }()
	hc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle HTTP connection: %v", err)
	}
	eventually(t, "listener closed", func() bool {
		c, err := net.Dial("tcp", tAddr.String())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	echoOnce(t, c, "during") // the established session keeps working
	select {
	case err := <-res:
		t.Fatalf("Shutdown returned %v with a session open", err)
	default:
	}
	c.Close()
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	// With an expiring context, remaining sessions are closed.
	s2 := NewServer(testLogger(t), Global{})
	s2.Apply([]ServiceSpec{{Name: "t", Listen: lo4, Mode: ModeTCP, Pool: pool(e.ln.Addr())}})
	c2 := dial(t, s2.Addr("t"))
	echoOnce(t, c2, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	expectClosed(t, c2)
}

// When every backend is at its maxconn, connections and requests wait in the
// service queue for a slot instead of failing at once.
func TestBackendQueue(t *testing.T) {
	e := newEcho(t, "tcp", "127.0.0.1:0")
	ap := e.ln.Addr().(*net.TCPAddr).AddrPort()
	tp := balance.NewPool(balance.RR, []balance.Member{{Name: "e", Addr: ap, Weight: 1, MaxConn: 1}}, balance.Options{})
	release := make(chan struct{})
	var inFlight, maxInFlight atomic.Int64
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
	})
	hap := be.addr().(*net.TCPAddr).AddrPort()
	hp := balance.NewPool(balance.RR, []balance.Member{{Name: "h", Addr: hap, Weight: 1, MaxConn: 1}}, balance.Options{})
	s := startServer(t, Global{},
		ServiceSpec{Name: "t", Listen: lo4, Mode: ModeTCP, Pool: tp, MaxQueue: 1},
		ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: hp, MaxQueue: 4},
	)
	c1 := dial(t, s.Addr("t"))
	echoOnce(t, c1, "1")
	c2 := dial(t, s.Addr("t"))
	c2.Write([]byte("2"))
	eventually(t, "c2 queued on the full backend", func() bool { return statsOf(s, "t").Queued == 1 })
	c1.Close()
	b := make([]byte, 1)
	if _, err := io.ReadFull(c2, b); err != nil || b[0] != '2' {
		t.Fatalf("queued connection: %v", err)
	}
	// HTTP: three concurrent requests to a backend with maxconn 1 all succeed, one at a time.
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", s.Addr("h").String())
			if err != nil {
				codes <- 0
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				codes <- 0
				return
			}
			codes <- resp.StatusCode
		}()
	}
	eventually(t, "two requests queued", func() bool { return statsOf(s, "h").Queued == 2 })
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("status %d", c)
		}
	}
	if maxInFlight.Load() != 1 {
		t.Fatalf("backend saw %d concurrent requests, maxconn is 1", maxInFlight.Load())
	}
}

// A forced shutdown also ends HTTP requests waiting on a silent backend.
func TestShutdownForcedHTTP(t *testing.T) {
	s := NewServer(testLogger(t), Global{})
	if err := s.Apply([]ServiceSpec{{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(rawBackend(t, "-"))}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addr("h"))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	eventually(t, "request in flight", func() bool { return statsOf(s, "h").Active == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("forced shutdown took %v", d)
	}
	io.Copy(io.Discard, c)
}
