package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Targets, in the order the harness runs them (references first).
const (
	TargetDirect  = "direct"  // no proxy: the load generator talks to the first backend
	TargetHAProxy = "haproxy" // HAProxy, the reference for the ratio columns
	TargetHalb    = "halb"
	TargetNginx   = "nginx" // nginx as reverse proxy
)

var allTargets = []string{TargetDirect, TargetHAProxy, TargetHalb, TargetNginx}

// Options configure a harness run. Zero values are not defaults: Main fills them from flags.
type Options struct {
	Duration     time.Duration // measured time per cell
	Warmup       time.Duration // unmeasured load before each cell
	Conns        []int         // concurrent connections
	Sizes        []int         // response body sizes in bytes
	Modes        []string      // "http", "tcp"
	Targets      []string      // TargetDirect, TargetHAProxy, TargetHalb, TargetNginx
	Threads      int           // proxy threads: halb GOMAXPROCS, HAProxy nbthread, nginx workers
	LoadgenProcs int           // wrk threads with Loadgen "wrk" (GOMAXPROCS is the caller's business)
	Loadgen      string        // "builtin" or "wrk"
	Backend      string        // "auto" (nginx when installed), "nginx" or "builtin"
	HalbBin      string        // halb executable; empty: the halb target is skipped
	Idle         int           // > 0: measure RSS per idle connection with this many connections
	IdleSettle   time.Duration // with Idle: measure RSS again after this long with the connections open (0: not)
	Ports        Ports
	Timeout      time.Duration // per-request timeout of the load generator
	WorkDir      string        // parent of the run's temporary directory ("" = os.TempDir())
	Keep         bool          // keep the temporary directory (configs, logs)
	Runs         int           // run the matrix this many times and add a table of medians (0, 1: once)
	// Pin runs the proxy under test on CPU 0 (with taskset) and this process, the backends
	// and wrk on the other CPUs.
	Pin bool
	// SelfExe, when set, runs each built-in backend as `SelfExe bench --serve ADDR` with
	// GOMAXPROCS=1; when empty they run inside the harness's process.
	SelfExe string
}

// Row is one cell of the results table.
type Row struct {
	Target, Mode string
	Size, Conns  int
	RPS          float64
	P50, P99     time.Duration
	Requests     uint64
	Errors       uint64
	Non2xx       uint64
	RSSKiB       int64   // max VmRSS of the proxy's processes during the cell; -1 = n/a
	CPUSeconds   float64 // proxy CPU time during the measured window; -1 = n/a
	// OtherCores is how many cores, on average over the measured window, were busy with
	// something other than the load generator, the proxy and the backends (other tenants,
	// softirq work charged to no process): above noisyCores the row is suspect.
	OtherCores float64
	// IdleCores is how many cores, on average over the measured window, had nothing to run.
	IdleCores    float64
	VsHAProxyRPS float64 // NaN when there is no HAProxy row to compare with
	VsHAProxyP99 float64
	VsDirectRPS  float64
	// PerCore is requests per CPU second of the proxy (req/s per proxy core) over the
	// measured window, NaN without CPU figures; VsHAProxyPerCore its ratio to HAProxy's.
	PerCore          float64
	VsHAProxyPerCore float64
}

type harness struct {
	opts     Options
	started  time.Time
	progress io.Writer
	dir      string
	asRoot   bool

	procs       []*proc
	inProcCtx   context.Context
	stopInProc  context.CancelFunc
	inProcWG    sync.WaitGroup
	backends    []netip.AddrPort
	backendDesc string
	backendPs   []*proc // backends running as processes (none when in-process)
	skipped     []string
}

// Run runs the harness: the matrix, or the idle-memory measurement when opts.Idle > 0. It
// prints progress to progress and the result table to out, and stops everything it started
// before it returns.
func Run(ctx context.Context, opts Options, out, progress io.Writer) (err error) {
	if err := opts.validate(); err != nil {
		return err
	}
	h := &harness{opts: opts, progress: progress, asRoot: os.Geteuid() == 0, started: time.Now()}
	h.dir, err = os.MkdirTemp(opts.WorkDir, "halb-bench-")
	if err != nil {
		return fmt.Errorf("bench: work dir: %w", err)
	}
	if err := os.Chmod(h.dir, 0o755); err != nil {
		return fmt.Errorf("bench: work dir: %w", err)
	}
	defer h.cleanup()
	if err := h.checkPorts(); err != nil {
		return err
	}
	if opts.Pin {
		if _, err := exec.LookPath("taskset"); err != nil {
			return fmt.Errorf("bench: pin: %w (apt-get install util-linux)", err)
		}
		restore, err := pinSelf(numCPU())
		if err != nil {
			return err
		}
		defer restore()
	}
	if err := h.startBackends(ctx); err != nil {
		return err
	}
	if opts.Idle > 0 {
		rows, err := h.runIdle(ctx)
		if err != nil {
			return err
		}
		h.printIdle(out, rows)
		return nil
	}
	n := max(1, opts.Runs)
	var runs [][]Row
	for i := range n {
		if n > 1 {
			h.logf("run %d of %d", i+1, n)
		}
		rows, err := h.runMatrix(ctx)
		if err != nil {
			return err
		}
		computeRatios(rows)
		runs = append(runs, rows)
	}
	h.header(out)
	for i, rows := range runs {
		if n > 1 {
			fmt.Fprintf(out, "Run %d of %d:\n\n", i+1, n)
		}
		printRows(out, rows)
	}
	if n > 1 {
		printSummary(out, n, summarize(runs))
	}
	h.footer(out, slices.Concat(runs...))
	return nil
}

func (o *Options) validate() error {
	var errs []error
	if o.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration must be positive"))
	}
	if o.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup must not be negative"))
	}
	if o.Idle == 0 && len(o.Conns) == 0 {
		errs = append(errs, fmt.Errorf("no connection counts"))
	}
	for _, c := range o.Conns {
		if c <= 0 {
			errs = append(errs, fmt.Errorf("connection count %d is not positive", c))
		}
	}
	if len(o.Sizes) == 0 {
		errs = append(errs, fmt.Errorf("no body sizes"))
	}
	for _, s := range o.Sizes {
		if s < 0 || s > maxBodySize {
			errs = append(errs, fmt.Errorf("body size %d outside [0, %d]", s, maxBodySize))
		}
	}
	for _, m := range o.Modes {
		if m != "http" && m != "tcp" {
			errs = append(errs, fmt.Errorf("unknown mode %q (http, tcp)", m))
		}
	}
	if len(o.Modes) == 0 {
		errs = append(errs, fmt.Errorf("no modes"))
	}
	for _, t := range o.Targets {
		if !slices.Contains(allTargets, t) {
			errs = append(errs, fmt.Errorf("unknown target %q (%s)", t, strings.Join(allTargets, ", ")))
		}
	}
	if len(o.Targets) == 0 {
		errs = append(errs, fmt.Errorf("no targets"))
	}
	if o.Threads <= 0 {
		errs = append(errs, fmt.Errorf("threads must be positive"))
	}
	if o.Loadgen != "builtin" && o.Loadgen != "wrk" {
		errs = append(errs, fmt.Errorf("unknown load generator %q (builtin, wrk)", o.Loadgen))
	}
	if o.Backend != "auto" && o.Backend != "nginx" && o.Backend != "builtin" {
		errs = append(errs, fmt.Errorf("unknown backend %q (auto, nginx, builtin)", o.Backend))
	}
	if o.Pin && numCPU() < 2 {
		errs = append(errs, fmt.Errorf("pin needs at least 2 CPUs"))
	}
	if o.Runs < 0 {
		errs = append(errs, fmt.Errorf("runs must not be negative"))
	}
	if o.Runs > 1 && o.Idle > 0 {
		errs = append(errs, fmt.Errorf("runs is for the load matrix, not --idle"))
	}
	if o.Idle < 0 {
		errs = append(errs, fmt.Errorf("idle connection count must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: options: %w", err)
	}
	return nil
}

func (h *harness) cleanup() {
	for i := len(h.procs) - 1; i >= 0; i-- {
		h.procs[i].stop(3 * time.Second)
	}
	h.procs = nil
	if h.stopInProc != nil {
		h.stopInProc()
		h.inProcWG.Wait()
	}
	if h.opts.Keep {
		fmt.Fprintf(h.progress, "bench: kept %s\n", h.dir)
		return
	}
	os.RemoveAll(h.dir)
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.progress, format+"\n", args...)
}

// procDir is where a proxy's config and files for one mode go.
func (h *harness) procDir(target, mode string) string {
	return filepath.Join(h.dir, target+"-"+mode)
}

func (h *harness) checkPorts() error {
	p := h.opts.Ports
	var busy []string
	for _, port := range []uint16{p.Halb, p.Backend1, p.Backend2, p.HAProxyHTTP, p.HAProxyTCP, p.Nginx, p.HalbStats} {
		ln, err := net.Listen("tcp", lo(port).String())
		if err != nil {
			busy = append(busy, strconv.Itoa(int(port)))
			continue
		}
		ln.Close()
	}
	if len(busy) > 0 {
		return fmt.Errorf("bench: ports already in use on 127.0.0.1: %s", strings.Join(busy, ", "))
	}
	return nil
}

func (h *harness) track(p *proc) *proc {
	h.procs = append(h.procs, p)
	return p
}

func (h *harness) untrack(p *proc) {
	p.stop(3 * time.Second)
	h.procs = slices.DeleteFunc(h.procs, func(q *proc) bool { return q == p })
}

// sizesToServe are the body sizes the backends must serve: the matrix's and, for the idle
// mode and readiness checks, 128 B.
func (h *harness) sizesToServe() []int {
	s := append([]int{128}, h.opts.Sizes...)
	slices.Sort(s)
	return slices.Compact(s)
}

func (h *harness) startBackends(ctx context.Context) error {
	h.backends = []netip.AddrPort{lo(h.opts.Ports.Backend1), lo(h.opts.Ports.Backend2)}
	useNginx := false
	switch h.opts.Backend {
	case "nginx":
		if _, err := exec.LookPath("nginx"); err != nil {
			return fmt.Errorf("bench: backend nginx: %w", err)
		}
		useNginx = true
	case "auto":
		_, err := exec.LookPath("nginx")
		useNginx = err == nil
	}
	maxconn := h.opts.Idle // connections per backend, beyond the default room
	for i, addr := range h.backends {
		name := fmt.Sprintf("be%d", i+1)
		switch {
		case useNginx:
			dir := filepath.Join(h.dir, name)
			if err := h.writeBackendFiles(dir); err != nil {
				return err
			}
			conf := filepath.Join(dir, "nginx.conf")
			if err := os.WriteFile(conf, []byte(nginxBackendConfig(dir, addr, maxconn, h.asRoot)), 0o644); err != nil {
				return fmt.Errorf("bench: backend config: %w", err)
			}
			p, err := startProc(dir, name, nil, "nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
			if err != nil {
				return err
			}
			h.backendPs = append(h.backendPs, h.track(p))
			h.backendDesc = "nginx, 1 worker each"
		case h.opts.SelfExe != "":
			p, err := startProc(h.dir, name, []string{"GOMAXPROCS=1"}, h.opts.SelfExe, "bench", "--serve", addr.String())
			if err != nil {
				return err
			}
			h.backendPs = append(h.backendPs, h.track(p))
			h.backendDesc = "built-in fasthttp server, GOMAXPROCS=1 each"
		default:
			ln, err := net.Listen("tcp", addr.String())
			if err != nil {
				return fmt.Errorf("bench: backend listen: %w", err)
			}
			if h.stopInProc == nil {
				h.inProcCtx, h.stopInProc = context.WithCancel(context.Background())
			}
			bctx := h.inProcCtx
			be := newBuiltinBackend()
			h.inProcWG.Go(func() { _ = be.serve(bctx, ln) })
			h.backendDesc = "built-in fasthttp server, in the harness's process"
		}
	}
	for i, addr := range h.backends {
		var p *proc
		if i < len(h.backendPs) {
			p = h.backendPs[i]
		}
		if err := h.waitReady(ctx, p, addr, "backend"); err != nil {
			return err
		}
	}
	return nil
}

func (h *harness) writeBackendFiles(dir string) error {
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return fmt.Errorf("bench: backend files: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "t"), 0o755); err != nil {
		return fmt.Errorf("bench: backend files: %w", err)
	}
	for _, n := range h.sizesToServe() {
		body := strings.Repeat("a", n)
		if err := os.WriteFile(filepath.Join(www, strconv.Itoa(n)), []byte(body), 0o644); err != nil {
			return fmt.Errorf("bench: backend files: %w", err)
		}
	}
	return nil
}

// waitReady polls addr until every served size answers 200 with the right length, for up to
// 15 seconds, or until p (when not nil) exits.
func (h *harness) waitReady(ctx context.Context, p *proc, addr netip.AddrPort, what string) error {
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for {
		last = probe(ctx, addr, h.sizesToServe())
		if last == nil {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("bench: %s on %s exited: %v; log: %s", what, addr, p.waitErr, p.logTail(600))
		}
		if time.Now().After(deadline) {
			tail := ""
			if p != nil {
				tail = "; log: " + p.logTail(600)
			}
			return fmt.Errorf("bench: %s on %s not ready: %w%s", what, addr, last, tail)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("bench: wait for %s: %w", what, err)
		}
	}
}

// pause waits d, or until ctx ends: then it returns ctx's error.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// probe makes one GET per size on one keep-alive connection and checks status and length.
func probe(ctx context.Context, addr netip.AddrPort, sizes []int) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReaderSize(c, 16<<10)
	for _, n := range sizes {
		if _, err := fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: %s\r\n\r\n", n, addr); err != nil {
			return err
		}
		ri, err := readResponse(br)
		if err != nil {
			return err
		}
		if ri.status != 200 || ri.bodyLen != int64(n) {
			return fmt.Errorf("GET /%d: status %d, %d bytes", n, ri.status, ri.bodyLen)
		}
		if !ri.keepAlive {
			return fmt.Errorf("GET /%d: connection not kept alive", n)
		}
	}
	return nil
}

// nginxStreamModule returns the path of ngx_stream_module.so to load for nginx's tcp mode,
// "" with ok when the stream module is built in, or ok false when there is none.
func nginxStreamModule() (path string, ok bool) {
	for _, p := range []string{"/usr/lib/nginx/modules/ngx_stream_module.so", "/usr/share/nginx/modules/ngx_stream_module.so"} {
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	out, err := exec.Command("nginx", "-V").CombinedOutput()
	if err == nil && strings.Contains(string(out)+" ", "--with-stream ") {
		return "", true
	}
	return "", false
}

// startProxy starts target in mode and waits until it serves. A target that cannot run here
// is skipped: skip says why, and err is nil.
func (h *harness) startProxy(ctx context.Context, target, mode string, maxconn int) (p *proc, addr netip.AddrPort, skip string, err error) {
	name := target + "-" + mode
	dir := h.procDir(target, mode)
	if err := os.MkdirAll(filepath.Join(dir, "t"), 0o755); err != nil {
		return nil, addr, "", fmt.Errorf("bench: %s: %w", name, err)
	}
	var argv, env []string
	switch target {
	case TargetHAProxy:
		if _, err := exec.LookPath("haproxy"); err != nil {
			return nil, addr, "haproxy is not installed (apt-get install haproxy)", nil
		}
		addr = lo(h.opts.Ports.HAProxyHTTP)
		if mode == "tcp" {
			addr = lo(h.opts.Ports.HAProxyTCP)
		}
		cfg := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(cfg, []byte(haproxyConfig(mode, addr, h.backends, h.opts.Threads, maxconn)), 0o644); err != nil {
			return nil, addr, "", fmt.Errorf("bench: %s config: %w", name, err)
		}
		if out, err := exec.CommandContext(ctx, "haproxy", "-c", "-q", "-f", cfg).CombinedOutput(); err != nil {
			return nil, addr, "", fmt.Errorf("bench: %s config rejected: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		argv = []string{"haproxy", "-db", "-f", cfg}
	case TargetHalb:
		if h.opts.HalbBin == "" {
			return nil, addr, "no halb executable (set HALB_BIN or --halb)", nil
		}
		addr = lo(h.opts.Ports.Halb)
		conf := filepath.Join(dir, "halb.conf")
		if err := os.WriteFile(conf, []byte(halbConfig(mode, addr, h.backends)), 0o644); err != nil {
			return nil, addr, "", fmt.Errorf("bench: %s config: %w", name, err)
		}
		// No admin socket at its default path, which may belong to a halb already running
		// here; in idle mode one in the run's directory, and the stats listener, whose
		// answers are timed with the connections open.
		argv = []string{h.opts.HalbBin, "run", "-f", conf, "--admin-socket", "-"}
		if h.opts.Idle > 0 {
			argv = []string{h.opts.HalbBin, "run", "-f", conf, "--admin-socket", filepath.Join(dir, "halb.sock"),
				"--stats", lo(h.opts.Ports.HalbStats).String()}
		}
		env = []string{"GOMAXPROCS=" + strconv.Itoa(h.opts.Threads)}
	case TargetNginx:
		if _, err := exec.LookPath("nginx"); err != nil {
			return nil, addr, "nginx is not installed (apt-get install nginx-light)", nil
		}
		mod := ""
		if mode == "tcp" {
			var ok bool
			if mod, ok = nginxStreamModule(); !ok {
				return nil, addr, "nginx has no stream module for tcp mode (apt-get install libnginx-mod-stream)", nil
			}
		}
		addr = lo(h.opts.Ports.Nginx)
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxProxyConfig(dir, mode, addr, h.backends, h.opts.Threads, maxconn, h.asRoot, mod)), 0o644); err != nil {
			return nil, addr, "", fmt.Errorf("bench: %s config: %w", name, err)
		}
		argv = []string{"nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf}
	default:
		return nil, addr, "", fmt.Errorf("bench: unknown target %q", target)
	}
	if h.opts.Pin {
		argv = append([]string{"taskset", "-c", proxyCPUs()}, argv...)
	}
	p, err = startProc(dir, target, env, argv...)
	if err != nil {
		if target == TargetHalb {
			return nil, addr, err.Error(), nil
		}
		return nil, addr, "", err
	}
	h.track(p)
	if err := h.waitReady(ctx, p, addr, name); err != nil {
		h.untrack(p)
		if ctx.Err() != nil {
			return nil, addr, "", err
		}
		return nil, addr, err.Error(), nil
	}
	return p, addr, "", nil
}

// startOrSkip starts target's proxy for mode (startProxy); ok is false when the
// target can't run here, which is noted under the table and on the progress output.
func (h *harness) startOrSkip(ctx context.Context, target, mode string, maxconn int) (p *proc, addr netip.AddrPort, ok bool, err error) {
	p, addr, skip, err := h.startProxy(ctx, target, mode, maxconn)
	if err != nil || skip == "" {
		return p, addr, err == nil, err
	}
	h.skipped = append(h.skipped, fmt.Sprintf("%s %s: %s", target, mode, skip))
	h.logf("  %-8s %-4s skipped: %s", target, mode, skip)
	return nil, addr, false, nil
}

// runMatrix runs every target × mode × size × conns cell. The proxies of a
// mode are all started first and stay up (idle) while the others are
// measured; each cell then runs for every target in turn, direct first, so
// that the cells compared with each other run seconds apart, not minutes:
// this machine's speed drifts more over the minutes a whole target's matrix
// takes than between two cells in a row. Rows come out grouped by target.
func (h *harness) runMatrix(ctx context.Context) ([]Row, error) {
	var rows []Row
	type running struct {
		target, mode string
		p            *proc
		addr         netip.AddrPort
		dead         bool
	}
	defer func() {
		slices.SortStableFunc(rows, func(a, b Row) int {
			return slices.Index(allTargets, a.Target) - slices.Index(allTargets, b.Target)
		})
	}()
	for mi, mode := range h.opts.Modes {
		var rs []*running
		for _, target := range allTargets {
			if !slices.Contains(h.opts.Targets, target) {
				continue
			}
			if target == TargetDirect {
				if mi == 0 { // no proxy: the same cells whatever the mode
					rs = append(rs, &running{target: target, mode: "-", addr: h.backends[0]})
				}
				continue
			}
			p, addr, ok, err := h.startOrSkip(ctx, target, mode, max(4096, 2*slices.Max(h.opts.Conns)))
			if err != nil {
				return rows, err
			}
			if ok {
				rs = append(rs, &running{target: target, mode: mode, p: p, addr: addr})
			}
		}
		for _, size := range h.opts.Sizes {
			for _, conns := range h.opts.Conns {
				for _, r := range rs {
					if r.dead {
						continue
					}
					row, err := h.cell(ctx, r.target, r.mode, r.addr, r.p, size, conns)
					if errors.Is(err, errProxyDied) && ctx.Err() == nil {
						// A crashed proxy is a result, not a reason to lose the other targets.
						h.skipped = append(h.skipped, fmt.Sprintf("%s %s: from %s c=%d on: %v", r.target, r.mode, sizeName(size), conns, err))
						h.logf("  %-8s %-4s %-7s c=%-4d %v", r.target, r.mode, sizeName(size), conns, err)
						r.dead = true
						continue
					}
					if err != nil {
						return rows, err
					}
					rows = append(rows, row)
					h.logf("  %-8s %-4s %-7s c=%-4d %9.0f req/s  p50 %8s  p99 %8s  err %d  non-2xx %d  rss %s  cpu %s",
						r.target, r.mode, sizeName(size), conns, row.RPS, fmtMS(row.P50), fmtMS(row.P99), row.Errors, row.Non2xx,
						fmtRSS(row.RSSKiB), fmtCPU(row.CPUSeconds))
				}
			}
		}
		for _, r := range rs {
			if r.p != nil {
				h.untrack(r.p)
			}
		}
	}
	return rows, nil
}

// errProxyDied reports that the proxy under test exited while it was being measured.
var errProxyDied = errors.New("proxy exited")

// loadSummary is what both load generators report for one run.
type loadSummary struct {
	requests, errors, non2xx uint64
	rps                      float64
	p50, p99                 time.Duration
	cpuSecs                  float64 // CPU of an external load generator (wrk); 0 for the built-in one
}

func (h *harness) load(ctx context.Context, addr netip.AddrPort, size, conns int, d time.Duration) (loadSummary, error) {
	path := "/" + strconv.Itoa(size)
	if h.opts.Loadgen == "wrk" {
		return h.runWrk(ctx, addr, path, conns, d)
	}
	res, err := RunLoad(ctx, LoadConfig{Addr: addr.String(), Path: path, Conns: conns, Duration: d, Timeout: h.opts.Timeout})
	if err != nil {
		return loadSummary{}, err
	}
	return loadSummary{
		requests: res.Requests, errors: res.Errors, non2xx: res.Non2xx, rps: res.RPS(),
		p50: res.Latency.Percentile(50), p99: res.Latency.Percentile(99),
	}, nil
}

func (h *harness) cell(ctx context.Context, target, mode string, addr netip.AddrPort, p *proc, size, conns int) (Row, error) {
	row := Row{Target: target, Mode: mode, Size: size, Conns: conns, RSSKiB: -1, CPUSeconds: -1}
	if h.opts.Warmup > 0 {
		if _, err := h.load(ctx, addr, size, conns, h.opts.Warmup); err != nil {
			return row, fmt.Errorf("bench: %s %s warm-up: %w", target, mode, err)
		}
	}
	var s0 groupSample
	var maxRSS int64 = -1
	stopSampler := func() {}
	if p != nil {
		var err error
		if s0, err = sampleGroup(p.pgid()); err != nil || p.exited() {
			return row, fmt.Errorf("bench: %s %s: %w (%v); log: %s", target, mode, errProxyDied, err, p.logTail(600))
		}
		maxRSS = s0.rssKiB
		sctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wg.Go(func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-sctx.Done():
					return
				case <-t.C:
					if s, err := sampleGroup(p.pgid()); err == nil {
						mu.Lock()
						maxRSS = max(maxRSS, s.rssKiB)
						mu.Unlock()
					}
				}
			}
		})
		stopSampler = func() { cancel(); wg.Wait() }
	}
	acct0 := h.accounting(p)
	sum, err := h.load(ctx, addr, size, conns, h.opts.Duration)
	acct1 := h.accounting(p)
	stopSampler()
	if err != nil {
		return row, fmt.Errorf("bench: %s %s: %w", target, mode, err)
	}
	if p != nil {
		s1, err := sampleGroup(p.pgid())
		if err != nil || p.exited() {
			return row, fmt.Errorf("bench: %s %s: %w during the cell (%v); log: %s", target, mode, errProxyDied, err, p.logTail(600))
		}
		row.RSSKiB = max(maxRSS, s1.rssKiB)
		row.CPUSeconds = s1.cpuSecs - s0.cpuSecs
	}
	row.OtherCores = otherCores(acct0, acct1, sum.cpuSecs)
	row.IdleCores = idleCores(acct0, acct1)
	row.RPS, row.P50, row.P99 = sum.rps, sum.p50, sum.p99
	row.Requests, row.Errors, row.Non2xx = sum.requests, sum.errors, sum.non2xx
	return row, nil
}

// runWrk runs Debian's wrk as the load generator (cross-check of the built-in one).
func (h *harness) runWrk(ctx context.Context, addr netip.AddrPort, path string, conns int, d time.Duration) (loadSummary, error) {
	script := filepath.Join(h.dir, "report.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return loadSummary{}, fmt.Errorf("wrk: %w", err)
	}
	threads := min(max(h.opts.LoadgenProcs, 1), conns)
	secs := max(1, int(math.Round(d.Seconds())))
	p, err := startProc(h.dir, "wrk", nil, "wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(secs)+"s", "--timeout", strconv.Itoa(max(1, int(h.opts.Timeout.Seconds())))+"s",
		"-s", script, "http://"+addr.String()+path)
	if err != nil {
		return loadSummary{}, fmt.Errorf("wrk: %w", err)
	}
	h.track(p)
	defer h.untrack(p)
	select {
	case <-p.done:
	case <-ctx.Done():
		return loadSummary{}, fmt.Errorf("wrk: %w", ctx.Err())
	}
	log, err := os.ReadFile(p.logPath)
	if err != nil {
		return loadSummary{}, fmt.Errorf("wrk: %w", err)
	}
	s, err := parseWrk(log)
	if ps := p.cmd.ProcessState; ps != nil {
		s.cpuSecs = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	return s, err
}

func parseWrk(out []byte) (loadSummary, error) {
	var s loadSummary
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 7 || f[0] != "RESULT" {
			continue
		}
		var v [6]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return s, fmt.Errorf("wrk: bad RESULT line %q", line)
			}
			v[i] = n
		}
		s.requests, s.errors, s.non2xx = v[0], v[4], v[5]
		if v[1] > 0 {
			s.rps = float64(v[0]) / (float64(v[1]) / 1e6)
		}
		s.p50, s.p99 = time.Duration(v[2])*time.Microsecond, time.Duration(v[3])*time.Microsecond
		return s, nil
	}
	return s, fmt.Errorf("wrk: no RESULT line in its output: %q", strings.TrimSpace(string(out)))
}

// computeRatios fills the ratio columns: to HAProxy in the same mode (nginx http compares
// with HAProxy http), and to direct with the same body size and connections.
func computeRatios(rows []Row) {
	type key struct {
		mode        string
		size, conns int
	}
	ha := map[key]Row{}
	direct := map[key]Row{}
	for _, r := range rows {
		switch r.Target {
		case TargetHAProxy:
			ha[key{r.Mode, r.Size, r.Conns}] = r
		case TargetDirect:
			direct[key{"", r.Size, r.Conns}] = r
		}
	}
	ratio := func(a, b float64) float64 {
		if b <= 0 {
			return math.NaN()
		}
		return a / b
	}
	perCore := func(r Row) float64 {
		if r.CPUSeconds <= 0 {
			return math.NaN()
		}
		return float64(r.Requests) / r.CPUSeconds
	}
	for i := range rows {
		r := &rows[i]
		r.VsHAProxyRPS, r.VsHAProxyP99, r.VsDirectRPS = math.NaN(), math.NaN(), math.NaN()
		r.PerCore, r.VsHAProxyPerCore = perCore(*r), math.NaN()
		if ref, ok := ha[key{r.Mode, r.Size, r.Conns}]; ok {
			r.VsHAProxyRPS = ratio(r.RPS, ref.RPS)
			r.VsHAProxyP99 = ratio(float64(r.P99), float64(ref.P99))
			if pc := perCore(ref); !math.IsNaN(r.PerCore) && !math.IsNaN(pc) {
				r.VsHAProxyPerCore = ratio(r.PerCore, pc)
			}
		}
		if ref, ok := direct[key{"", r.Size, r.Conns}]; ok {
			r.VsDirectRPS = ratio(r.RPS, ref.RPS)
		}
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB"
	default:
		return strconv.Itoa(n) + " B"
	}
}

func fmtMS(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }

func fmtRSS(kib int64) string {
	if kib < 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(kib)/1024, 'f', 1, 64)
}

func fmtCPU(s float64) string {
	if s < 0 || math.IsNaN(s) {
		return "-"
	}
	return strconv.FormatFloat(s, 'f', 2, 64)
}

func fmtCount(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func fmtRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "-"
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

func (h *harness) header(w io.Writer) {
	o := h.opts
	fmt.Fprintf(w, "halb bench %s: %d CPUs, proxy threads %d, backends: %s\n", h.started.UTC().Format(time.RFC3339), numCPU(), o.Threads, h.backendDesc)
	if o.Pin {
		fmt.Fprintf(w, "pinned: the proxy on CPU %s; load generator and backends on CPU %s ('direct' runs on those only)\n", proxyCPUs(), loadCPUs(numCPU()))
	}
	if o.Idle > 0 {
		fmt.Fprintf(w, "idle memory: %d keep-alive client connections per proxy, one GET /128 each\n", o.Idle)
	} else {
		lg := fmt.Sprintf("built-in (GOMAXPROCS %d)", o.LoadgenProcs)
		if o.Loadgen == "wrk" {
			lg = fmt.Sprintf("wrk -t%d", o.LoadgenProcs)
		}
		fmt.Fprintf(w, "load generator: %s, closed loop, keep-alive, %v per cell after %v warm-up\n", lg, o.Duration, o.Warmup)
	}
	for _, v := range versions() {
		fmt.Fprintf(w, "%s\n", v)
	}
	if o.HalbBin != "" && slices.Contains(o.Targets, TargetHalb) {
		v := "?"
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		cmd := exec.CommandContext(ctx, o.HalbBin, "version")
		cmd.WaitDelay = time.Second
		if out, err := cmd.Output(); err == nil {
			v = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
		cancel()
		fmt.Fprintf(w, "halb: %s (%s)\n", o.HalbBin, v)
	}
	fmt.Fprintln(w)
}

// printRows prints one run's table.
func printRows(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| target | mode | body | conns | req/s | p50 ms | p99 ms | errors | non-2xx | RSS MiB | CPU s | rps / haproxy | p99 / haproxy | rps / direct | req/s per proxy core | per core / haproxy | other cores | idle cores |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		other := fmtCPU(r.OtherCores)
		if r.OtherCores > noisyCores {
			other += " NOISY"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %.0f | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Target, r.Mode, sizeName(r.Size), r.Conns, r.RPS, fmtMS(r.P50), fmtMS(r.P99), r.Errors, r.Non2xx,
			fmtRSS(r.RSSKiB), fmtCPU(r.CPUSeconds), fmtRatio(r.VsHAProxyRPS), fmtRatio(r.VsHAProxyP99), fmtRatio(r.VsDirectRPS),
			fmtCount(r.PerCore), fmtRatio(r.VsHAProxyPerCore), other, fmtCPU(r.IdleCores))
	}
	fmt.Fprintln(w)
}

// footer prints the skip notes and the columns' legend for the rows of every run.
func (h *harness) footer(w io.Writer, rows []Row) {
	noisy := 0
	for _, r := range rows {
		if r.OtherCores > noisyCores {
			noisy++
		}
	}
	h.notes(w)
	fmt.Fprintln(w, "RSS = max of the proxy's summed VmRSS (all processes of its group) sampled every 200 ms and at the end of the cell;")
	fmt.Fprintln(w, "CPU s = user+system seconds of the proxy's processes during the measured window. 'direct' has no proxy.")
	fmt.Fprintln(w, "req/s per proxy core = requests of the window / CPU s: what the proxy does with one core, whichever side")
	fmt.Fprintln(w, "limits the rate (the column to read with --pin, where the proxy has its own core).")
	fmt.Fprintln(w, "other cores = cores busy in tasks (user+nice+system+steal in /proc/stat) minus those used by the load generator,")
	fmt.Fprintln(w, "the proxy and the backends;")
	fmt.Fprintf(w, "NOISY above %.1f: something else was running, rerun that row on a quiet machine.\n", noisyCores)
	fmt.Fprintln(w, "idle cores = cores with nothing to run (idle+iowait in /proc/stat): not pinned, CPU time that every")
	fmt.Fprintln(w, "process waited through (a wake-up's latency, a hand-off), lost to the rate.")
	fmt.Fprintln(w, "Everything shares this machine's CPUs: compare ratios within one run; absolute req/s are not portable.")
	if noisy > 0 {
		fmt.Fprintf(w, "WARNING: %d of %d rows are NOISY.\n", noisy, len(rows))
	}
}

// noisyCores is the "other cores" level above which a row is marked NOISY.
const noisyCores = 0.3

// cpuAccount is a snapshot of CPU counters for the noise estimate.
type cpuAccount struct {
	at         time.Time
	busy       float64 // machine-wide busy CPU seconds
	idle       float64 // machine-wide idle CPU seconds
	self       float64 // this process (built-in load generator, in-process backends)
	proxy      float64
	backends   float64
	sysOK, pOK bool
}

func (h *harness) accounting(p *proc) cpuAccount {
	a := cpuAccount{at: time.Now()}
	var err error
	a.busy, a.idle, err = machineSecs()
	a.sysOK = err == nil
	a.self, _ = selfCPUSecs()
	a.pOK = true
	if p != nil {
		s, err := sampleGroup(p.pgid())
		a.proxy, a.pOK = s.cpuSecs, err == nil
	}
	for _, b := range h.backendPs {
		if s, err := sampleGroup(b.pgid()); err == nil {
			a.backends += s.cpuSecs
		}
	}
	return a
}

// otherCores is the average number of busy cores between a and b not charged to the
// harness, the proxy, the backends or an external load generator (extCPU seconds).
func otherCores(a, b cpuAccount, extCPU float64) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if !a.sysOK || !b.sysOK || !a.pOK || !b.pOK || wall <= 0 {
		return math.NaN()
	}
	ours := (b.self - a.self) + (b.proxy - a.proxy) + (b.backends - a.backends) + extCPU
	return max(0, ((b.busy-a.busy)-ours)/wall)
}

// idleCores is the average number of cores with nothing to run between a and b.
func idleCores(a, b cpuAccount) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if !a.sysOK || !b.sysOK || wall <= 0 {
		return math.NaN()
	}
	return max(0, (b.idle-a.idle)/wall)
}

func (h *harness) notes(w io.Writer) {
	var seen []string
	for _, s := range h.skipped {
		s = oneLine(s)
		if !slices.Contains(seen, s) { // once, however many runs skipped it
			seen = append(seen, s)
			fmt.Fprintf(w, "Skipped: %s\n", s)
		}
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func versions() []string {
	var v []string
	if out, err := exec.Command("haproxy", "-v").Output(); err == nil {
		v = append(v, strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
	}
	if out, err := exec.Command("nginx", "-v").CombinedOutput(); err == nil {
		v = append(v, strings.TrimSpace(string(out)))
	}
	return v
}
