package bench

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func shortLoad(addr, path string, conns int) LoadConfig {
	return LoadConfig{Addr: addr, Path: path, Conns: conns, Warmup: 50 * time.Millisecond, Duration: 250 * time.Millisecond, Timeout: 5 * time.Second}
}

func runLoadT(t *testing.T, cfg LoadConfig) LoadResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := RunLoad(ctx, cfg)
	if err != nil {
		t.Fatalf("RunLoad: %v", err)
	}
	return res
}

func TestRunLoadCountsAreConsistent(t *testing.T) {
	var served atomic.Uint64
	body := strings.Repeat("z", 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.URL.Path != "/1000" || r.Header.Get("Host") == "" && r.Host == "" {
			http.Error(w, "bad request line", http.StatusBadRequest)
			return
		}
		w.Write([]byte(body)) // small enough for a Content-Length
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	const conns = 8
	res := runLoadT(t, shortLoad(addr, "/1000", conns))
	srv.Close() // no request is served after this: the server count is final
	got := served.Load()

	if res.Requests == 0 {
		t.Fatal("no request completed in the measured window")
	}
	if res.Errors != 0 || res.TotalErrors != 0 || res.Non2xx != 0 {
		t.Fatalf("errors %d (total %d), non-2xx %d; want none", res.Errors, res.TotalErrors, res.Non2xx)
	}
	if res.Latency.Count() != res.Requests {
		t.Fatalf("histogram holds %d values for %d requests", res.Latency.Count(), res.Requests)
	}
	if res.Bytes != res.Requests*1000 {
		t.Fatalf("bytes %d for %d requests of 1000 B", res.Bytes, res.Requests)
	}
	if res.TotalRequests < res.Requests {
		t.Fatalf("total %d < measured %d", res.TotalRequests, res.Requests)
	}
	// Every completed response was served; at most one request per connection was served
	// but its response cut off by the end of the run.
	if got < res.TotalRequests || got > res.TotalRequests+conns {
		t.Fatalf("server served %d, client completed %d with %d connections", got, res.TotalRequests, conns)
	}
	if res.Dials != conns {
		t.Fatalf("dialled %d connections, want %d (keep-alive)", res.Dials, conns)
	}
	if res.Elapsed <= 0 || res.Elapsed > 250*time.Millisecond {
		t.Fatalf("elapsed %v outside (0, 250ms]", res.Elapsed)
	}
	if res.RPS() <= 0 {
		t.Fatal("rps not positive")
	}
	p50, p99 := res.Latency.Percentile(50), res.Latency.Percentile(99)
	if p50 <= 0 || p99 < p50 || res.Latency.Max() < p99 {
		t.Fatalf("p50 %v p99 %v max %v not ordered", p50, p99, res.Latency.Max())
	}
}

func TestRunLoadNon2xxAndConnectionClose(t *testing.T) {
	var served atomic.Uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	res := runLoadT(t, shortLoad(srv.Listener.Addr().String(), "/", 2))
	if res.Requests == 0 || res.Non2xx != res.Requests {
		t.Fatalf("requests %d non-2xx %d; want all non-2xx", res.Requests, res.Non2xx)
	}
	if res.Dials < res.TotalRequests {
		t.Fatalf("%d dials for %d requests answered with Connection: close", res.Dials, res.TotalRequests)
	}
}

func TestRunLoadCountsErrors(t *testing.T) {
	// A server that accepts and closes without answering: every request is an error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	res := runLoadT(t, shortLoad(ln.Addr().String(), "/", 2))
	if res.Requests != 0 || res.Errors == 0 {
		t.Fatalf("requests %d errors %d; want 0 requests and some errors", res.Requests, res.Errors)
	}
	if res.TotalErrors < res.Errors {
		t.Fatalf("total errors %d < measured %d", res.TotalErrors, res.Errors)
	}
}

func TestRunLoadStopsOnCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cfg := shortLoad(srv.Listener.Addr().String(), "/", 2)
	cfg.Duration = time.Hour
	done := make(chan error, 1)
	go func() {
		_, err := RunLoad(ctx, cfg)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("cancelled run returned no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RunLoad did not return after cancel")
	}
}

func TestRunLoadRejectsBadConfig(t *testing.T) {
	for _, cfg := range []LoadConfig{{Addr: "127.0.0.1:1", Duration: time.Second}, {Addr: "127.0.0.1:1", Conns: 1}} {
		if _, err := RunLoad(t.Context(), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
