package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// LoadConfig describes one closed-loop load run: Conns connections, each sending HTTP/1.1
// GET requests back to back on keep-alive and waiting for each response before the next
// (like wrk), for Warmup (not counted) and then Duration (counted).
type LoadConfig struct {
	Addr     string        // host:port to connect to (127.0.0.1 in the harness)
	Path     string        // request path, e.g. "/128"
	Host     string        // Host header; Addr when empty
	Conns    int           // concurrent connections, each one goroutine
	Warmup   time.Duration // run, not counted, before the measured window
	Duration time.Duration // measured window
	Timeout  time.Duration // per-request I/O timeout; 5s when zero
}

// LoadResult is the outcome of one run. Every number but Total* covers the measured window
// only: a request is counted when its response completed inside it.
type LoadResult struct {
	Requests uint64        // completed responses (any status) = Latency.Count()
	Non2xx   uint64        // of Requests, status outside 200..299
	Errors   uint64        // connect, write, read, parse and timeout errors
	Bytes    uint64        // body bytes received
	Elapsed  time.Duration // length of the measured window actually run
	Latency  *Histogram    // request write start to response end

	TotalRequests uint64 // completed responses including the warm-up
	TotalErrors   uint64 // errors including the warm-up
	Dials         uint64 // connections opened (successful dials)
}

// RPS is Requests per second of Elapsed.
func (r LoadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

type loadWorker struct {
	hist                     *Histogram
	requests, non2xx, errors uint64
	bytes                    uint64
	totalRequests, totalErrs uint64
	dials                    uint64
}

// RunLoad runs the load described by cfg. It returns early, with what was measured so far,
// when ctx is done; the error is then ctx's.
func RunLoad(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if cfg.Conns <= 0 {
		return LoadResult{}, fmt.Errorf("loadgen: conns must be positive, got %d", cfg.Conns)
	}
	if cfg.Duration <= 0 {
		return LoadResult{}, fmt.Errorf("loadgen: duration must be positive, got %v", cfg.Duration)
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.Host == "" {
		cfg.Host = cfg.Addr
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	req := []byte("GET " + cfg.Path + " HTTP/1.1\r\nHost: " + cfg.Host + "\r\nUser-Agent: halb-bench\r\n\r\n")

	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	workers := make([]loadWorker, cfg.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.hist = NewHistogram()
		wg.Go(func() {
			w.run(ctx, cfg, req, measureFrom, end)
		})
	}
	wg.Wait()
	stop := time.Now()

	res := LoadResult{Latency: NewHistogram()}
	for i := range workers {
		w := &workers[i]
		res.Latency.Merge(w.hist)
		res.Requests += w.requests
		res.Non2xx += w.non2xx
		res.Errors += w.errors
		res.Bytes += w.bytes
		res.TotalRequests += w.totalRequests
		res.TotalErrors += w.totalErrs
		res.Dials += w.dials
	}
	if stop.After(end) {
		stop = end
	}
	res.Elapsed = max(stop.Sub(measureFrom), 0)
	if res.Elapsed < cfg.Duration {
		if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return res, fmt.Errorf("loadgen: %w", err)
		}
	}
	return res, nil
}

func (w *loadWorker) run(ctx context.Context, cfg LoadConfig, req []byte, measureFrom, end time.Time) {
	var d net.Dialer
	var conn net.Conn
	var br *bufio.Reader
	// Unblock a read or write in progress when the run ends or is cancelled.
	var cur atomic.Pointer[net.Conn]
	stopWatch := context.AfterFunc(ctx, func() {
		if c := cur.Load(); c != nil {
			(*c).SetDeadline(time.Unix(1, 0))
		}
	})
	defer stopWatch()
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()

	countErr := func(now time.Time) {
		w.totalErrs++
		if !now.Before(measureFrom) && now.Before(end) {
			w.errors++
		}
	}
	closeConn := func() {
		cur.Store(nil)
		conn.Close()
		conn = nil
	}
	for ctx.Err() == nil {
		if conn == nil {
			c, err := d.DialContext(ctx, "tcp", cfg.Addr)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				countErr(time.Now())
				// Don't spin on a refused port: back off a little, but stop with the run.
				_ = pause(ctx, 10*time.Millisecond) // the loop's condition sees an end
				continue
			}
			w.dials++
			conn = c
			cur.Store(&c)
			if ctx.Err() != nil { // AfterFunc may have run before Store
				return
			}
			if br == nil {
				br = bufio.NewReaderSize(conn, 16<<10)
			} else {
				br.Reset(conn)
			}
		}
		t0 := time.Now()
		conn.SetDeadline(t0.Add(cfg.Timeout))
		_, err := conn.Write(req)
		var ri respInfo
		if err == nil {
			ri, err = readResponse(br)
		}
		t1 := time.Now()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) && !t1.Before(end) {
				return // cut by the end of the run, not the target's fault
			}
			countErr(t1)
			closeConn()
			continue
		}
		w.totalRequests++
		if !t1.Before(measureFrom) && t1.Before(end) {
			w.requests++
			w.bytes += uint64(ri.bodyLen)
			if ri.status < 200 || ri.status > 299 {
				w.non2xx++
			}
			w.hist.Record(t1.Sub(t0))
		}
		if !ri.keepAlive {
			closeConn()
		}
	}
}
