package daemon

import (
	"context"
	"fmt"
	"halb/internal/poll"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"halb/internal/demo"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// configFor is a proxy-only config on loopback: an HTTP service over the demo backends.
func configFor(port int, backends []string, algo string, weights ...int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n    router_id test\n    shutdown_timeout 5s\n}\nvirtual_server 127.0.0.1 %d {\n    proxy_mode http\n    lb_algo %s\n    delay_loop 1\n    retries 2\n", port, algo)
	for i, be := range backends {
		host, p, _ := net.SplitHostPort(be)
		fmt.Fprintf(&b, "    real_server %s %s {\n        weight %d\n        TCP_CHECK {\n            connect_timeout 1\n        }\n    }\n", host, p, weights[i])
	}
	b.WriteString("}\n")
	return b.String()
}

func startDaemon(t *testing.T, path string) *Daemon {
	t.Helper()
	d, err := New(Options{ConfigPath: path, Log: testLogger(t), AdminSocket: "-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Tests look at the daemon's parts directly: wait until Run has set
	// them up (a served port alone orders nothing for the race detector).
	select {
	case <-d.Ready():
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("Run ended before it was ready: %v", err)
	}
	return d
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	ok := poll.Until(10*time.Second, 10*time.Millisecond, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if !ok {
		t.Fatalf("%s never answered 200", url)
	}
}

// TestReloadUnderLoad is the operations issue's must-hold: while HTTP load runs (keep-alive and new
// connections), the config is reloaded every 100 ms for 30 s alternating two valid files and a
// broken one. No request fails, the listener never has a gap, the broken file never takes effect.
func TestReloadUnderLoad(t *testing.T) {
	dur := 30 * time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	be, err := demo.Start([]string{"127.0.0.1:0", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	port := freePort(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "halb.conf")
	good := []string{
		configFor(port, be.Addrs, "rr", 1, 1),
		configFor(port, be.Addrs, "wrr", 3, 1),
	}
	broken := strings.Replace(good[0], "lb_algo rr", "lb_algo rr\n    real_server 127.0.0.1 {", 1)
	if err := os.WriteFile(path, []byte(good[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, path)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitHTTP(t, url)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := func(keepAlive bool) {
		defer wg.Done()
		tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := c.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				continue
			}
			ok.Add(1)
		}
	}
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go client(true)
		go client(false)
	}
	var reloads, refused int
	tick := time.NewTicker(100 * time.Millisecond)
	end := time.Now().Add(dur)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		var src string
		switch i % 3 {
		case 0, 1:
			src = good[(i/3+i)%2]
		case 2:
			src = broken
		}
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		err := d.Reload()
		reloads++
		if src == broken {
			if err == nil {
				t.Fatal("the broken file was accepted")
			}
			refused++
			if !strings.Contains(err.Error(), "halb.conf:") {
				t.Fatalf("refusal without file:line: %v", err)
			}
			if d.gen.Load().cfg.Hash == "" || strings.Contains(d.gen.Load().cfg.Files[0], "broken") {
				t.Fatal("running config lost")
			}
		} else if err != nil {
			t.Fatalf("good file refused: %v", err)
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed during %d reloads; first error: %v", f, f+ok.Load(), reloads, firstErr.Load())
	}
	if ok.Load() < 100 || refused == 0 {
		t.Fatalf("too little happened: %d requests, %d reloads, %d refused", ok.Load(), reloads, refused)
	}
	t.Logf("%d requests, 0 failed, %d reloads (%d refused)", ok.Load(), reloads, refused)
}

// TestGracefulStopCompletesInFlight: requests in flight when the stop begins complete; the
// listener closes at once.
func TestGracefulStopCompletesInFlight(t *testing.T) {
	release := make(chan struct{})
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			<-release // held until the daemon is stopping
		}
		_, _ = w.Write([]byte("done"))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = slow.Serve(ln) }()
	defer slow.Close()
	port := freePort(t)
	path := filepath.Join(t.TempDir(), "halb.conf")
	if err := os.WriteFile(path, []byte(configFor(port, []string{ln.Addr().String()}, "rr", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{ConfigPath: path, Log: zap.NewNop(), AdminSocket: "-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitHTTP(t, url+"ready")
	<-d.Ready() // d.proxy is read below

	const n = 8
	results := make(chan error, n)
	var started sync.WaitGroup
	for i := 0; i < n; i++ {
		started.Add(1)
		go func() {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			started.Done()
			resp, err := c.Get(url)
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && string(b) != "done" {
					err = fmt.Errorf("body %q", b)
				}
			}
			results <- err
		}()
	}
	started.Wait()
	// Every request in flight, then stop: the listener closes while they are still held.
	if !poll.Until(5*time.Second, 10*time.Millisecond, func() bool {
		var active int64
		for _, s := range d.proxy.Stats() {
			active += s.Active
		}
		return active >= n
	}) {
		t.Fatal("requests never reached the backend")
	}
	cancel()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if !poll.Until(5*time.Second, 10*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}) {
		t.Fatal("listener still accepting after stop began")
	}
	close(release)
	for i := 0; i < n; i++ {
		if err := <-results; err != nil {
			t.Errorf("in-flight request failed: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func testLogger(t *testing.T) *zap.Logger {
	if os.Getenv("HALB_TEST_LOG") != "" {
		l, _ := zap.NewDevelopment()
		return l
	}
	return zap.NewNop()
}
