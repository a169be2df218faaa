// Package demo starts the small web backends that `halb run --demo` (make run) puts behind the
// proxy, so the main job can be tried on one machine without root: loopback addresses only.
package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// labNet is the benchmark range the network-namespace lab uses (RFC 2544).
var labNet = netip.MustParsePrefix("198.18.0.0/15")

// Backends is a set of running demo web servers.
type Backends struct {
	Addrs []string // "127.0.0.1:port", in start order
	srvs  []*http.Server
	wg    sync.WaitGroup
}

// Start listens on each of addrs (loopback or lab "host:port"; port 0 picks one) and serves a page naming
// the backend (web1, web2, ...), /health for the health checker, and /big (64 KiB) for curl tests.
func Start(addrs []string) (*Backends, error) {
	names := make([]string, len(addrs))
	for i := range addrs {
		names[i] = "web" + strconv.Itoa(i+1)
	}
	return StartNamed(names, addrs)
}

// StartNamed is Start with the backends' names given (names[i] serves on addrs[i]).
func StartNamed(names, addrs []string) (*Backends, error) {
	b := &Backends{}
	for i, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("demo: backend %q: %w", a, err)
		}
		if ip, err := netip.ParseAddr(host); err != nil || !(ip.IsLoopback() || labNet.Contains(ip.Unmap())) {
			b.Close()
			return nil, fmt.Errorf("demo: backend %q: demo backends listen on loopback or lab addresses (198.18.0.0/15) only", a)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("demo: listen %s: %w", a, err)
		}
		name := names[i]
		srv := &http.Server{Handler: handler(name, ln.Addr().String()), ReadHeaderTimeout: 5 * time.Second}
		b.Addrs = append(b.Addrs, ln.Addr().String())
		b.srvs = append(b.srvs, srv)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			_ = srv.Serve(ln) // returns http.ErrServerClosed on Close
		}()
	}
	return b, nil
}

func handler(name, addr string) http.Handler {
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = 'b'
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(big)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "hello from %s (%s)\nyou are %s, X-Forwarded-For: %q\n", name, addr, r.RemoteAddr, r.Header.Get("X-Forwarded-For"))
	})
	return mux
}

// Close stops all demo backends and waits for their serve loops.
func (b *Backends) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var errs []error
	for _, s := range b.srvs {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, s.Close())
		}
	}
	b.wg.Wait()
	return errors.Join(errs...)
}
