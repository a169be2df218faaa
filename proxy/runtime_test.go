package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"halb/proxy/balance"
)

// Pool changes apply to new connections at once; a drained backend's
// established session goes on.
func TestPoolChangesAndDrain(t *testing.T) {
	e1, e2 := newEcho(t, "tcp", "127.0.0.1:0"), newEcho(t, "tcp", "127.0.0.1:0")
	p := pool(e1.ln.Addr(), e2.ln.Addr())
	n1 := e1.ln.Addr().String()
	s := startServer(t, Global{}, ServiceSpec{Name: "t", Listen: lo4, Mode: ModeTCP, Pool: p})
	var onE1 *net.TCPConn
	for range 2 {
		c := dial(t, s.Addr("t"))
		echoOnce(t, c, "x")
		if e1.accepted.Load() == 1 && onE1 == nil {
			onE1 = c
		}
	}
	if onE1 == nil {
		t.Fatal("round robin did not use e1")
	}
	if err := p.SetAdmin(n1, balance.Drain); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		echoOnce(t, dial(t, s.Addr("t")), "y")
	}
	if e1.accepted.Load() != 1 {
		t.Fatalf("drained backend got %d new connections", e1.accepted.Load()-1)
	}
	echoOnce(t, onE1, "still") // the drained backend's session finishes normally
	p.SetAdmin(n1, balance.Ready)
	p.SetUp(e2.ln.Addr().String(), false)
	for range 2 {
		echoOnce(t, dial(t, s.Addr("t")), "z")
	}
	if e1.accepted.Load() != 3 {
		t.Fatalf("e1 accepted %d, want 3 after e2 went down", e1.accepted.Load())
	}
}

// Successes are logged 1 in LogSample; errors always.
func TestLogSampling(t *testing.T) {
	var hits atomic.Int64
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	core, logs := observer.New(zapcore.InfoLevel)
	s := NewServer(zap.New(core), Global{LogSample: 4})
	if err := s.Apply([]ServiceSpec{
		{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr())},
		{Name: "dead", Listen: lo4, Mode: ModeHTTP, Pool: pool(deadAddr(t))},
	}); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	c := dial(t, s.Addr("h"))
	br := bufio.NewReader(c)
	for range 8 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	for range 3 {
		rawRequest(t, s.Addr("dead"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	}
	// A request's line is written when it ends, which the client may see
	// after its response: wait for the lines, then check none is extra.
	var ok, bad int
	eventually(t, "log lines", func() bool {
		ok = logs.FilterMessage("request").FilterField(zap.Int("status", 200)).Len()
		bad = logs.FilterMessage("request").FilterField(zap.Int("status", 503)).Len()
		return ok >= 2 && bad >= 3
	})
	if ok != 2 || bad != 3 {
		t.Fatalf("logged %d successes (want 2 of 8) and %d errors (want 3)", ok, bad)
	}
	e := logs.FilterMessage("request").FilterField(zap.Int("status", 503)).All()[0]
	for _, k := range []string{"client", "backend", "method", "uri", "status", "duration", "termination", "error", "service"} {
		if _, ok := e.ContextMap()[k]; !ok {
			t.Errorf("log line lacks %q: %v", k, e.ContextMap())
		}
	}
}

func TestHTTPIPv6Forwarded(t *testing.T) {
	var fwd atomic.Value
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fwd.Store(r.Header.Get("Forwarded") + "|" + r.Header.Get("X-Forwarded-For"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s := startServer(t, Global{}, ServiceSpec{Name: "h6", Listen: mustAP("[::1]:0"), Mode: ModeHTTP, Pool: pool(ln.Addr())})
	resp, _ := rawRequest(t, s.Addr("h6"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 200 || fwd.Load() != `for="[::1]";proto=http|::1` {
		t.Fatalf("%d %v", resp.StatusCode, fwd.Load())
	}
}

// TCP redispatch: with Retries a dead backend is skipped; without, the
// connection fails when the dead one is picked.
func TestTCPRetries(t *testing.T) {
	e := newEcho(t, "tcp", "127.0.0.1:0")
	dead := deadAddr(t)
	s := startServer(t, Global{},
		ServiceSpec{Name: "r1", Listen: lo4, Mode: ModeTCP, Pool: pool(dead, e.ln.Addr()), Retries: 1},
		ServiceSpec{Name: "r0", Listen: lo4, Mode: ModeTCP, Pool: pool(dead, e.ln.Addr())},
	)
	for range 4 {
		echoOnce(t, dial(t, s.Addr("r1")), "ok")
	}
	failed := 0
	for range 4 {
		c := dial(t, s.Addr("r0"))
		c.Write([]byte("x"))
		if n, _ := io.Copy(io.Discard, io.LimitReader(c, 1)); n == 0 {
			failed++
		}
	}
	if failed != 2 {
		t.Fatalf("without retries %d of 4 round-robin connections failed, want 2", failed)
	}
	if st := statsOf(s, "r0"); st.Errors != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// An upgraded (WebSocket) connection ends after Tunnel of silence.
func TestTunnelTimeout(t *testing.T) {
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, brw)
	})
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr()),
		Timeouts: Timeouts{Tunnel: 300 * time.Millisecond}})
	c := dial(t, s.Addr("h"))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatal(resp, err)
	}
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("silent tunnel: %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("tunnel closed after %v, before its timeout", d)
	}
}
