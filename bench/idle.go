package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// IdleRow is one result of the idle-memory measurement.
type IdleRow struct {
	Target, Mode string
	Wanted       int   // connections asked for
	Opened       int   // connections that completed their request and stayed open
	Errors       int   // connections that failed to open or to get their response
	BeforeKiB    int64 // proxy RSS with no client connection (after one request)
	AfterKiB     int64 // proxy RSS with Opened idle connections
	VsHAProxy    float64
}

// PerConnKiB is the RSS growth per open connection.
func (r IdleRow) PerConnKiB() float64 {
	if r.Opened == 0 {
		return math.NaN()
	}
	return float64(r.AfterKiB-r.BeforeKiB) / float64(r.Opened)
}

// raiseNoFile raises RLIMIT_NOFILE so that the harness (and the processes it starts, which
// inherit the limit) can hold n descriptors.
func raiseNoFile(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("bench: getrlimit: %w", err)
	}
	if lim.Cur >= n {
		return nil
	}
	want := lim
	want.Cur = n
	if want.Max < n {
		want.Max = n // needs CAP_SYS_RESOURCE
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("bench: raise open-file limit to %d (now %d, max %d): %w", n, lim.Cur, lim.Max, err)
	}
	return nil
}

func (h *harness) runIdle(ctx context.Context) ([]IdleRow, error) {
	n := h.opts.Idle
	if err := raiseNoFile(uint64(2*n + 4096)); err != nil {
		return nil, err
	}
	var rows []IdleRow
	for _, target := range allTargets {
		if target == TargetDirect || !slices.Contains(h.opts.Targets, target) {
			continue
		}
		for _, mode := range h.opts.Modes {
			p, addr, skip, err := h.startProxy(ctx, target, mode, n+1024)
			if err != nil {
				return rows, err
			}
			if skip != "" {
				h.skipped = append(h.skipped, fmt.Sprintf("%s %s: %s", target, mode, skip))
				h.logf("  %-8s %-4s skipped: %s", target, mode, skip)
				continue
			}
			row, err := h.idleCell(ctx, target, mode, addr, p, n)
			h.untrack(p)
			if err != nil {
				return rows, err
			}
			rows = append(rows, row)
			h.logf("  %-8s %-4s idle %d/%d open, %d errors: RSS %s -> %s MiB, %.1f KiB per connection",
				target, mode, row.Opened, row.Wanted, row.Errors, fmtRSS(row.BeforeKiB), fmtRSS(row.AfterKiB), row.PerConnKiB())
		}
	}
	ref := map[string]float64{}
	for _, r := range rows {
		if r.Target == TargetHAProxy {
			ref[r.Mode] = r.PerConnKiB()
		}
	}
	for i := range rows {
		rows[i].VsHAProxy = math.NaN()
		if b, ok := ref[rows[i].Mode]; ok && b > 0 {
			rows[i].VsHAProxy = rows[i].PerConnKiB() / b
		}
	}
	return rows, nil
}

// settledRSS samples the group's RSS a few times, 100 ms apart, and returns the largest.
func settledRSS(ctx context.Context, p *proc) (int64, error) {
	var best int64 = -1
	for i := range 5 {
		if i > 0 {
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return best, ctx.Err()
			case <-t.C:
			}
		}
		s, err := sampleGroup(p.pgid())
		if err != nil {
			return best, err
		}
		best = max(best, s.rssKiB)
	}
	return best, nil
}

func (h *harness) idleCell(ctx context.Context, target, mode string, addr netip.AddrPort, p *proc, n int) (IdleRow, error) {
	row := IdleRow{Target: target, Mode: mode, Wanted: n}
	before, err := settledRSS(ctx, p)
	if err != nil {
		return row, fmt.Errorf("bench: %s %s idle: %w", target, mode, err)
	}
	row.BeforeKiB = before

	conns := make([]net.Conn, n)
	var next atomic.Int64
	var errs atomic.Int64
	var wg sync.WaitGroup
	req := []byte("GET /128 HTTP/1.1\r\nHost: " + addr.String() + "\r\n\r\n")
	for range min(64, n) {
		wg.Go(func() {
			d := net.Dialer{Timeout: 5 * time.Second}
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := d.DialContext(ctx, "tcp", addr.String())
				if err != nil {
					errs.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReaderSize(c, 512)
				_, err = c.Write(req)
				var ri respInfo
				if err == nil {
					ri, err = readResponse(br)
				}
				if err != nil || ri.status != 200 || !ri.keepAlive || br.Buffered() != 0 {
					errs.Add(1)
					c.Close()
					continue
				}
				c.SetDeadline(time.Time{})
				conns[i] = c
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return row, fmt.Errorf("bench: %s %s idle: %w", target, mode, err)
	}
	for _, c := range conns {
		if c != nil {
			row.Opened++
		}
	}
	row.Errors = int(errs.Load())
	after, err := settledRSS(ctx, p)
	if err != nil {
		return row, fmt.Errorf("bench: %s %s idle: %w; log: %s", target, mode, err, p.logTail(600))
	}
	row.AfterKiB = after
	return row, nil
}

func (h *harness) printIdle(w io.Writer, rows []IdleRow) {
	h.header(w)
	fmt.Fprintln(w, "| target | mode | idle conns | opened | errors | RSS before MiB | RSS after MiB | KiB per conn | per conn / haproxy |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %s | %s | %.1f | %s |\n", r.Target, r.Mode, r.Wanted, r.Opened, r.Errors,
			fmtRSS(r.BeforeKiB), fmtRSS(r.AfterKiB), r.PerConnKiB(), fmtRatio(r.VsHAProxy))
	}
	fmt.Fprintln(w)
	h.notes(w)
	fmt.Fprintln(w, "Each connection made one GET /128 on keep-alive and then stayed idle. RSS = summed VmRSS of the proxy's")
	fmt.Fprintln(w, "processes (max of 5 samples 100 ms apart) before opening and after all are open; KiB per conn = growth / opened.")
	fmt.Fprintln(w, "In tcp mode every client connection also holds a backend connection inside the proxy.")
}

func numCPU() int { return runtime.NumCPU() }
