package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"halb/admin"
)

// IdleRow is one result of the idle-memory measurement.
type IdleRow struct {
	Target, Mode string
	Wanted       int   // connections asked for
	Opened       int   // connections that completed their request and stayed open
	Errors       int   // connections that failed to open or to get their response
	BeforeKiB    int64 // proxy RSS with no client connection (after one request)
	AfterKiB     int64 // proxy RSS with Opened idle connections
	LaterKiB     int64 // ... Options.IdleSettle later, the connections still open (-1: not measured)
	FDs          int   // open descriptors of the proxy's processes with Opened connections
	VsHAProxy    float64
	LaterVsHAP   float64 // PerConnLaterKiB over HAProxy's
	// The same for the anonymous memory only (RssAnon: RSS less the pages of the executable,
	// libraries and shared memory), which the figures of a few thousand connections need: the
	// executable's pages that serving them touches for the first time are not per connection.
	BeforeAnonKiB, AfterAnonKiB, LaterAnonKiB int64
	AnonVsHAP, LaterAnonVsHAP                 float64
	// halb only, with the connections open: medians of ctlSamples answers of its
	// control plane (admin socket `show services` and `reload`, GET /metrics).
	Ctl    *CtlTimes
	CtlErr string // why they could not be measured
}

// CtlTimes are the control plane's answer times with the idle connections open.
type CtlTimes struct {
	Show, Metrics, Reload time.Duration
}

const ctlSamples = 5

// PerConnKiB is the RSS growth per open connection.
func (r IdleRow) PerConnKiB() float64 { return r.perConn(r.BeforeKiB, r.AfterKiB) }

// PerConnLaterKiB is the RSS growth per open connection Options.IdleSettle
// after they were all open: what a quiet proxy keeps, once it has given back
// what opening them needed (NaN when not measured).
func (r IdleRow) PerConnLaterKiB() float64 { return r.perConn(r.BeforeKiB, r.LaterKiB) }

// PerConnAnonKiB and PerConnLaterAnonKiB are the same for the anonymous memory.
func (r IdleRow) PerConnAnonKiB() float64      { return r.perConn(r.BeforeAnonKiB, r.AfterAnonKiB) }
func (r IdleRow) PerConnLaterAnonKiB() float64 { return r.perConn(r.BeforeAnonKiB, r.LaterAnonKiB) }

func (r IdleRow) perConn(before, after int64) float64 {
	if r.Opened == 0 || after < 0 {
		return math.NaN()
	}
	return float64(after-before) / float64(r.Opened)
}

// raiseNoFile raises RLIMIT_NOFILE towards n so that the harness and the processes it starts
// (which inherit the limit) can hold n descriptors. Without the privilege to raise the hard
// limit it settles for the hard limit. It returns the soft limit now in force.
func raiseNoFile(n uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("bench: getrlimit: %w", err)
	}
	if lim.Cur >= n {
		return lim.Cur, nil
	}
	want := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
		return n, nil
	}
	want = syscall.Rlimit{Cur: lim.Max, Max: lim.Max} // raising the hard limit needs CAP_SYS_RESOURCE
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return lim.Cur, fmt.Errorf("bench: raise open-file limit to %d: %w", lim.Max, err)
	}
	return lim.Max, nil
}

func (h *harness) runIdle(ctx context.Context) ([]IdleRow, error) {
	n := h.opts.Idle
	// The harness holds n client sockets; a proxy holds up to 2n (client and backend side),
	// and HAProxy refuses to start unless its limit allows 2 × maxconn.
	need := uint64(2*n + 1024)
	got, err := raiseNoFile(need)
	if err != nil {
		return nil, err
	}
	if got < need {
		fit := (int(got) - 1024) / 2
		if fit < 100 {
			return nil, fmt.Errorf("bench: idle: the open-file limit is %d, too low for %d connections (raise the hard limit: ulimit -Hn)", got, n)
		}
		h.logf("  warning: the open-file hard limit %d allows %d idle connections per proxy, not %d: measuring %d", got, fit, n, fit)
		n = fit
	}
	var rows []IdleRow
	for _, target := range allTargets {
		if target == TargetDirect || !slices.Contains(h.opts.Targets, target) {
			continue
		}
		for _, mode := range h.opts.Modes {
			p, addr, ok, err := h.startOrSkip(ctx, target, mode, n+256)
			if err != nil {
				return rows, err
			}
			if !ok {
				continue
			}
			row, err := h.idleCell(ctx, target, mode, addr, p, n)
			h.untrack(p)
			if err != nil {
				return rows, err
			}
			rows = append(rows, row)
			h.logf("  %-8s %-4s idle %d/%d open, %d errors: RSS %s -> %s MiB, %.1f KiB per connection (%.1f %s later), %d fds",
				target, mode, row.Opened, row.Wanted, row.Errors, fmtRSS(row.BeforeKiB), fmtRSS(row.AfterKiB), row.PerConnKiB(),
				row.PerConnLaterKiB(), fmtSettle(h.opts.IdleSettle), row.FDs)
		}
	}
	idleRatios(rows)
	return rows, nil
}

// idleRatios sets each row's ratios to the HAProxy row of its mode (NaN without one).
func idleRatios(rows []IdleRow) {
	ref := map[string]IdleRow{}
	for _, r := range rows {
		if r.Target == TargetHAProxy {
			ref[r.Mode] = r
		}
	}
	ratio := func(a, b float64) float64 {
		if b > 0 {
			return a / b
		}
		return math.NaN()
	}
	for i := range rows {
		r := &rows[i]
		h, ok := ref[r.Mode]
		if !ok {
			r.VsHAProxy, r.LaterVsHAP, r.AnonVsHAP, r.LaterAnonVsHAP = math.NaN(), math.NaN(), math.NaN(), math.NaN()
			continue
		}
		r.VsHAProxy = ratio(r.PerConnKiB(), h.PerConnKiB())
		r.LaterVsHAP = ratio(r.PerConnLaterKiB(), h.PerConnLaterKiB())
		r.AnonVsHAP = ratio(r.PerConnAnonKiB(), h.PerConnAnonKiB())
		r.LaterAnonVsHAP = ratio(r.PerConnLaterAnonKiB(), h.PerConnLaterAnonKiB())
	}
}

// settledRSS samples the group's RSS a few times, 100 ms apart, and returns the largest, and
// the largest of its anonymous part.
func settledRSS(ctx context.Context, p *proc) (rss, anon int64, err error) {
	rss, anon = -1, -1
	for i := range 5 {
		if i > 0 {
			if err := pause(ctx, 100*time.Millisecond); err != nil {
				return rss, anon, err
			}
		}
		s, err := sampleGroup(p.pgid())
		if err != nil {
			return rss, anon, err
		}
		rss, anon = max(rss, s.rssKiB), max(anon, s.anonKiB)
	}
	return rss, anon, nil
}

func (h *harness) idleCell(ctx context.Context, target, mode string, addr netip.AddrPort, p *proc, n int) (IdleRow, error) {
	row := IdleRow{Target: target, Mode: mode, Wanted: n}
	before, beforeAnon, err := settledRSS(ctx, p)
	if err != nil {
		return row, fmt.Errorf("bench: %s %s idle: %w", target, mode, err)
	}
	row.BeforeKiB, row.BeforeAnonKiB = before, beforeAnon

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
				// Past about 28,000 connections one source address runs out of
				// ephemeral ports towards one destination: spread the sources
				// over 127.0.0.0/8 (loopback answers all of it).
				dd := d
				if addr.Addr().Is4() && addr.Addr().IsLoopback() {
					dd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i/64000), byte(2+i%250))}
				}
				c, err := dd.DialContext(ctx, "tcp", addr.String())
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
	after, afterAnon, err := settledRSS(ctx, p)
	if err != nil {
		return row, fmt.Errorf("bench: %s %s idle: %w; log: %s", target, mode, err, p.logTail(600))
	}
	row.AfterKiB, row.AfterAnonKiB = after, afterAnon
	row.FDs = groupFDs(p.pgid())
	if target == TargetHalb {
		ct, err := ctlTimes(ctx, filepath.Join(h.procDir(target, mode), "halb.sock"), lo(h.opts.Ports.HalbStats))
		if err != nil {
			row.CtlErr = err.Error()
		} else {
			row.Ctl = &ct
		}
	}
	row.LaterKiB, row.LaterAnonKiB = -1, -1
	if d := h.opts.IdleSettle; d > 0 {
		if err := pause(ctx, d); err != nil {
			return row, fmt.Errorf("bench: %s %s idle: %w", target, mode, err)
		}
		later, laterAnon, err := settledRSS(ctx, p)
		if err != nil {
			return row, fmt.Errorf("bench: %s %s idle: %w; log: %s", target, mode, err, p.logTail(600))
		}
		row.LaterKiB, row.LaterAnonKiB = later, laterAnon
	}
	return row, nil
}

// ctlTimes times halb's control plane: `show services` and `reload` on the
// admin socket (one request line, one reply line, as `halb ctl` speaks it)
// and GET /metrics on the stats listener; the median of ctlSamples each.
func ctlTimes(ctx context.Context, sock string, stats netip.AddrPort) (CtlTimes, error) {
	var ct CtlTimes
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + stats.String() + "/metrics"
	for _, m := range []struct {
		dst *time.Duration
		do  func() error
	}{
		{&ct.Show, func() error { return adminCall(sock, "show services") }},
		{&ct.Metrics, func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", url, resp.Status)
			}
			return nil
		}},
		{&ct.Reload, func() error { return adminCall(sock, "reload") }},
	} {
		var ds []time.Duration
		for range ctlSamples {
			if err := ctx.Err(); err != nil {
				return ct, err
			}
			start := time.Now()
			if err := m.do(); err != nil {
				return ct, err
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		*m.dst = ds[len(ds)/2]
	}
	return ct, nil
}

// adminCall sends one command to halb's admin socket and checks that the
// reply says ok.
func adminCall(sock, line string) error {
	_, derr, err := admin.RoundTrip(sock, line, 10*time.Second)
	if err == nil && derr != "" {
		err = fmt.Errorf("%s: refused: %s", line, derr)
	}
	return err
}

func (h *harness) printIdle(w io.Writer, rows []IdleRow) {
	h.header(w)
	later := fmtSettle(h.opts.IdleSettle)
	fmt.Fprintf(w, "| target | mode | idle conns | opened | errors | RSS before MiB | RSS after MiB | KiB per conn | per conn / haproxy | proxy fds | ctl show ms | GET /metrics ms | ctl reload ms | RSS %[1]s later MiB | KiB per conn %[1]s later | %[1]s later / haproxy | anon KiB per conn | anon / haproxy | anon KiB per conn %[1]s later | anon %[1]s later / haproxy |\n", later)
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var ctlErrs []string
	for _, r := range rows {
		show, metrics, reload := "-", "-", "-"
		switch {
		case r.Ctl != nil:
			show, metrics, reload = fmtMs(r.Ctl.Show), fmtMs(r.Ctl.Metrics), fmtMs(r.Ctl.Reload)
		case r.CtlErr != "":
			show, metrics, reload = "error", "error", "error"
			ctlErrs = append(ctlErrs, fmt.Sprintf("%s %s: control plane: %s", r.Target, r.Mode, r.CtlErr))
		}
		rssLater, perLater, anonLater := "-", "-", "-"
		if r.LaterKiB >= 0 {
			rssLater, perLater = fmtRSS(r.LaterKiB), fmtKiB(r.PerConnLaterKiB())
			anonLater = fmtKiB(r.PerConnLaterAnonKiB())
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Target, r.Mode, r.Wanted, r.Opened, r.Errors,
			fmtRSS(r.BeforeKiB), fmtRSS(r.AfterKiB), fmtKiB(r.PerConnKiB()), fmtRatio(r.VsHAProxy), r.FDs, show, metrics, reload,
			rssLater, perLater, fmtRatio(r.LaterVsHAP), fmtKiB(r.PerConnAnonKiB()), fmtRatio(r.AnonVsHAP), anonLater, fmtRatio(r.LaterAnonVsHAP))
	}
	fmt.Fprintln(w)
	h.notes(w)
	for _, e := range ctlErrs {
		fmt.Fprintln(w, e)
	}
	fmt.Fprintln(w, "Each connection made one GET /128 on keep-alive and then stayed idle. RSS = summed VmRSS of the proxy's")
	fmt.Fprintln(w, "processes (max of 5 samples 100 ms apart) before opening and after all are open; KiB per conn = growth / opened.")
	fmt.Fprintf(w, "%s later: the same, that long after all were open (--idle-settle; halb gives back what opening them\n", later)
	fmt.Fprintln(w, "needed once it has been quiet for 3 s, docs/dataplane.md \"Memory\").")
	fmt.Fprintln(w, "anon = the same for the anonymous memory (RssAnon): RSS less the pages of the executable and libraries,")
	fmt.Fprintln(w, "which serving the first requests touches once (they weigh on per-connection figures of a few thousand).")
	fmt.Fprintln(w, "In tcp mode every client connection also holds a backend connection inside the proxy. proxy fds = open")
	fmt.Fprintln(w, "descriptors of the proxy's processes with the connections open (errors often mean the proxy ran out of them).")
	fmt.Fprintln(w, "halb's control plane with the connections open, medians of 5: `show services` and `reload` on its admin")
	fmt.Fprintln(w, "socket (one request line, one reply line), GET /metrics on its stats listener.")
}

// fmtKiB formats KiB per connection with one decimal ("-" for NaN).
func fmtKiB(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// fmtSettle names the settle time in the table's headings ("10 s").
func fmtSettle(d time.Duration) string {
	if d <= 0 {
		return "settled"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

func fmtMs(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }

func numCPU() int { return runtime.NumCPU() }
