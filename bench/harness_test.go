package bench

import (
	"bytes"
	"context"
	"fmt"
	"halb/internal/poll"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// freePorts picks ports the kernel considers free on 127.0.0.1 right now.
func freePorts(t *testing.T) Ports {
	t.Helper()
	var ps [7]uint16
	var lns []net.Listener
	for i := range ps {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ps[i] = uint16(ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return Ports{Halb: ps[0], Backend1: ps[1], Backend2: ps[2], HAProxyHTTP: ps[3], HAProxyTCP: ps[4], Nginx: ps[5], HalbStats: ps[6]}
}

func testOptions(t *testing.T) Options {
	return Options{
		Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond,
		Conns: []int{4}, Sizes: []int{128, 5000}, Modes: []string{"http", "tcp"},
		Targets: []string{TargetDirect, TargetHalb}, Threads: 1, LoadgenProcs: 1,
		Loadgen: "builtin", Backend: "builtin", Ports: freePorts(t), Timeout: 5 * time.Second,
		WorkDir: t.TempDir(),
	}
}

func runHarness(t *testing.T, opts Options) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	if err := Run(ctx, opts, &out, &progress); err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	return out.String(), progress.String()
}

// tableRows returns the data rows of the Markdown table, split into cells.
func tableRows(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| target") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	return rows
}

func TestRunDirectWithBuiltinBackends(t *testing.T) {
	opts := testOptions(t)
	out, progress := runHarness(t, opts)
	rows := tableRows(out)
	if len(rows) != 2 {
		t.Fatalf("want 2 rows (direct × 2 sizes), got %d:\n%s", len(rows), out)
	}
	for i, r := range rows {
		if len(r) != 18 || r[0] != "direct" || r[1] != "-" || r[3] != "4" {
			t.Fatalf("row %d = %q", i, r)
		}
		if r[4] == "0" || r[7] != "0" || r[8] != "0" || r[13] != "1.00" {
			t.Errorf("row %d: req/s %s errors %s non-2xx %s rps/direct %s", i, r[4], r[7], r[8], r[13])
		}
		if idle, err := strconv.ParseFloat(r[17], 64); err != nil || idle < 0 || idle > float64(runtime.NumCPU())+0.05 {
			t.Errorf("row %d: idle cores %q, want 0..%d", i, r[17], runtime.NumCPU())
		}
	}
	if rows[0][2] != "128 B" || rows[1][2] != "5000 B" {
		t.Errorf("body column %q, %q", rows[0][2], rows[1][2])
	}
	// halb without an executable is skipped, said once per mode, and the run still succeeds.
	if !strings.Contains(out, "Skipped: halb http: no halb executable") || !strings.Contains(out, "Skipped: halb tcp:") {
		t.Errorf("skip notes missing:\n%s", out)
	}
	if got := strings.Count(progress, "  direct "); got != 2 {
		t.Errorf("%d progress lines for direct, want 2:\n%s", got, progress)
	}
}

func TestRunHalbThatFailsIsSkipped(t *testing.T) {
	opts := testOptions(t)
	opts.Targets = []string{TargetHalb}
	opts.Modes = []string{"http"}
	opts.HalbBin = "/bin/false" // exits at once: reported, not fatal
	out, _ := runHarness(t, opts)
	if len(tableRows(out)) != 0 || !strings.Contains(out, "Skipped: halb http:") || !strings.Contains(out, "exited") {
		t.Fatalf("want halb skipped because it exited:\n%s", out)
	}
}

func TestRunRefusesBusyPort(t *testing.T) {
	opts := testOptions(t)
	ln, err := net.Listen("tcp", lo(opts.Ports.Backend2).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Run(t.Context(), opts, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("err = %v, want ports already in use", err)
	}
}

func TestRunWithHAProxy(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy not installed")
	}
	opts := testOptions(t)
	opts.Targets = []string{TargetDirect, TargetHAProxy}
	opts.Sizes = []int{65536}
	out, _ := runHarness(t, opts)
	rows := tableRows(out)
	if len(rows) != 3 {
		t.Fatalf("want direct + haproxy http + haproxy tcp rows, got:\n%s", out)
	}
	for _, r := range rows[1:] {
		if r[0] != "haproxy" || r[7] != "0" || r[8] != "0" || r[11] != "1.00" || r[12] != "1.00" {
			t.Errorf("haproxy row %q", r)
		}
		if r[9] == "-" || r[10] == "-" || r[13] == "-" {
			t.Errorf("haproxy row lacks RSS, CPU or ratio to direct: %q", r)
		}
	}
}

func TestRunIdle(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy not installed")
	}
	opts := testOptions(t)
	opts.Targets = []string{TargetHAProxy}
	opts.Modes = []string{"tcp"}
	opts.Idle = 50
	out, _ := runHarness(t, opts)
	rows := tableRows(out)
	if len(rows) != 1 || rows[0][0] != "haproxy" || rows[0][2] != "50" || rows[0][3] != "50" || rows[0][4] != "0" {
		t.Fatalf("want one haproxy row with 50/50 open and no errors:\n%s", out)
	}
	// 50 client + 50 backend sockets at least.
	if fds, err := strconv.Atoi(rows[0][9]); err != nil || fds < 100 {
		t.Fatalf("proxy fds %q, want >= 100", rows[0][9])
	}
	// The anonymous memory's columns, with a figure per connection.
	if len(rows[0]) != 20 {
		t.Fatalf("%d columns, want 20 with the anonymous memory's: %q", len(rows[0]), rows[0])
	}
	if _, err := strconv.ParseFloat(rows[0][16], 64); err != nil {
		t.Fatalf("anon KiB per conn %q: %v", rows[0][16], err)
	}
}

func TestIdleRatios(t *testing.T) {
	rows := []IdleRow{
		{Target: TargetHAProxy, Mode: "http", Opened: 1000, BeforeKiB: 10000, AfterKiB: 12000, LaterKiB: 12000,
			BeforeAnonKiB: 2000, AfterAnonKiB: 3000, LaterAnonKiB: 3000},
		{Target: TargetHalb, Mode: "http", Opened: 1000, BeforeKiB: 20000, AfterKiB: 29000, LaterKiB: 23000,
			BeforeAnonKiB: 4000, AfterAnonKiB: 7000, LaterAnonKiB: 4500},
		{Target: TargetHalb, Mode: "tcp", Opened: 1000, BeforeKiB: 20000, AfterKiB: 21000, LaterKiB: -1,
			BeforeAnonKiB: 4000, AfterAnonKiB: 5000, LaterAnonKiB: -1},
	}
	idleRatios(rows)
	h := rows[1]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(h.PerConnKiB(), 9) || !near(h.VsHAProxy, 4.5) || !near(h.LaterVsHAP, 1.5) {
		t.Errorf("RSS: %v KiB, %v, %v", h.PerConnKiB(), h.VsHAProxy, h.LaterVsHAP)
	}
	if !near(h.PerConnAnonKiB(), 3) || !near(h.AnonVsHAP, 3) || !near(h.PerConnLaterAnonKiB(), 0.5) || !near(h.LaterAnonVsHAP, 0.5) {
		t.Errorf("anon: %v KiB, %v, later %v KiB, %v", h.PerConnAnonKiB(), h.AnonVsHAP, h.PerConnLaterAnonKiB(), h.LaterAnonVsHAP)
	}
	if tcp := rows[2]; !math.IsNaN(tcp.VsHAProxy) || !math.IsNaN(tcp.PerConnLaterAnonKiB()) || fmtKiB(tcp.PerConnLaterAnonKiB()) != "-" {
		t.Errorf("tcp without a HAProxy row or a later sample: %v %v", tcp.VsHAProxy, tcp.PerConnLaterAnonKiB())
	}
}

func TestRunCancelled(t *testing.T) {
	opts := testOptions(t)
	opts.Duration = time.Hour
	ctx, cancel := context.WithCancel(t.Context())
	var progress bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts, &bytes.Buffer{}, &progress) }()
	// Cancel once the backends answer, i.e. while the first cell runs.
	up := poll.Until(30*time.Second, 10*time.Millisecond, func() bool {
		return probe(t.Context(), lo(opts.Ports.Backend1), []int{128}) == nil
	})
	if !up {
		t.Fatal("backends never came up")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("cancelled run returned nil")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// Everything it started is gone: the backends' ports are free again.
	for _, port := range []uint16{opts.Ports.Backend1, opts.Ports.Backend2} {
		ln, err := net.Listen("tcp", lo(port).String())
		if err != nil {
			t.Fatalf("port %d still busy after Run returned: %v", port, err)
		}
		ln.Close()
	}
}

func TestComputeRatios(t *testing.T) {
	rows := []Row{
		{Target: TargetDirect, Mode: "-", Size: 128, Conns: 64, RPS: 1000, P99: 2 * time.Millisecond},
		{Target: TargetHAProxy, Mode: "http", Size: 128, Conns: 64, RPS: 500, P99: 4 * time.Millisecond, Requests: 5000, CPUSeconds: 4},
		{Target: TargetHalb, Mode: "http", Size: 128, Conns: 64, RPS: 750, P99: 3 * time.Millisecond, Requests: 7500, CPUSeconds: 5},
		{Target: TargetHalb, Mode: "tcp", Size: 128, Conns: 64, RPS: 800, P99: 3 * time.Millisecond},
		{Target: TargetNginx, Mode: "http", Size: 128, Conns: 256, RPS: 100},
	}
	computeRatios(rows)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if r := rows[2]; !near(r.VsHAProxyRPS, 1.5) || !near(r.VsHAProxyP99, 0.75) || !near(r.VsDirectRPS, 0.75) {
		t.Errorf("halb http ratios %v %v %v", r.VsHAProxyRPS, r.VsHAProxyP99, r.VsDirectRPS)
	}
	// per core: HAProxy 5000/4 = 1250, halb 7500/5 = 1500: 1.2
	if r := rows[2]; !near(r.PerCore, 1500) || !near(r.VsHAProxyPerCore, 1.2) {
		t.Errorf("halb http per core %v, ratio %v; want 1500, 1.2", r.PerCore, r.VsHAProxyPerCore)
	}
	if r := rows[3]; !math.IsNaN(r.PerCore) || !math.IsNaN(r.VsHAProxyPerCore) {
		t.Errorf("halb tcp without CPU figures has a per-core figure: %v %v", r.PerCore, r.VsHAProxyPerCore)
	}
	if r := rows[3]; !math.IsNaN(r.VsHAProxyRPS) || !near(r.VsDirectRPS, 0.8) {
		t.Errorf("halb tcp has no haproxy tcp row: %v %v", r.VsHAProxyRPS, r.VsDirectRPS)
	}
	if r := rows[4]; !math.IsNaN(r.VsHAProxyRPS) || !math.IsNaN(r.VsDirectRPS) {
		t.Errorf("nginx c=256 has no reference: %v %v", r.VsHAProxyRPS, r.VsDirectRPS)
	}
	if fmtRatio(rows[4].VsDirectRPS) != "-" || fmtRatio(1.234) != "1.23" {
		t.Error("fmtRatio")
	}
}

func TestParseWrk(t *testing.T) {
	s, err := parseWrk([]byte("Running 2s test @ http://127.0.0.1:18081/128\n  1 threads\nRESULT 20000 2000000 1500 9000 3 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.requests != 20000 || s.rps != 10000 || s.p50 != 1500*time.Microsecond || s.p99 != 9*time.Millisecond || s.errors != 3 || s.non2xx != 7 {
		t.Fatalf("parsed %+v", s)
	}
	if _, err := parseWrk([]byte("unable to connect to 127.0.0.1:1 Connection refused\n")); err == nil {
		t.Fatal("no RESULT line accepted")
	}
}

func TestOptionsValidate(t *testing.T) {
	good := testOptions(t)
	if err := good.validate(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	bad := good
	bad.Modes = []string{"udp"}
	bad.Targets = []string{"envoy"}
	bad.Sizes = []int{-1}
	bad.Loadgen = "ab"
	bad.Runs = -1
	err := bad.validate()
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{`mode "udp"`, `target "envoy"`, "body size -1", `load generator "ab"`, "runs must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestOptionsValidateRunsIdle(t *testing.T) {
	o := testOptions(t)
	o.Idle, o.Runs = 100, 3
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "not --idle") {
		t.Fatalf("--runs 3 with --idle: %v", err)
	}
}

// TestRunRepeats: --runs 2 prints each run's table and one table of medians, with a row per
// cell that counts both runs, and a target skipped in both runs is said once.
func TestRunRepeats(t *testing.T) {
	opts := testOptions(t)
	opts.Targets = []string{TargetDirect, TargetHalb} // no halb executable: skipped
	opts.Modes = []string{"http"}
	opts.Sizes = []int{128}
	opts.Runs = 2
	out, progress := runHarness(t, opts)
	for _, want := range []string{"Run 1 of 2:", "Run 2 of 2:", "Median of 2 runs"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := strings.Count(progress, "  direct "); got != 2 {
		t.Errorf("%d cells measured, want 2:\n%s", got, progress)
	}
	if got := strings.Count(out, "Skipped: halb http"); got != 1 {
		t.Errorf("the skip is said %d times, want once:\n%s", got, out)
	}
	rows := tableRows(out)
	if len(rows) != 3 {
		t.Fatalf("want 2 run rows and 1 median row, got %d:\n%s", len(rows), out)
	}
	m := rows[2]
	if len(m) != 16 || m[0] != "direct" || m[4] != "2" {
		t.Fatalf("median row %q", m)
	}
	a, _ := strconv.ParseFloat(rows[0][4], 64)
	b, _ := strconv.ParseFloat(rows[1][4], 64)
	if got, _ := strconv.ParseFloat(m[5], 64); math.Abs(got-(a+b)/2) > 1 {
		t.Errorf("median req/s %v of %v and %v", got, a, b)
	}
}

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	row := func(target string, rps, vs, perCore, vsPC float64, errs uint64) Row {
		return Row{Target: target, Mode: "http", Size: 128, Conns: 64, RPS: rps, P99: time.Duration(rps) * time.Microsecond,
			Errors: errs, VsHAProxyRPS: vs, VsHAProxyP99: vs, PerCore: perCore, VsHAProxyPerCore: vsPC, IdleCores: vs}
	}
	runs := [][]Row{
		{row(TargetHAProxy, 100, 1, 110, 1, 0), row(TargetHalb, 90, 0.90, 120, 1.09, 1)},
		{row(TargetHAProxy, 120, 1, 130, 1, 0), row(TargetHalb, 130, 1.08, 140, 1.08, 0)},
		{row(TargetHAProxy, 80, 1, 90, 1, 0), row(TargetHalb, 70, 0.875, nan, nan, 2)},
	}
	sums := summarize(runs)
	if len(sums) != 2 || sums[0].Target != TargetHAProxy || sums[1].Target != TargetHalb {
		t.Fatalf("summaries %+v", sums)
	}
	h := sums[1]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if h.Runs != 3 || h.RPS != 90 || h.P99 != 90*time.Microsecond || h.Errors != 3 || !near(h.VsHAProxyRPS, 0.90) {
		t.Errorf("halb: runs %d rps %v p99 %v errors %d ratio %v", h.Runs, h.RPS, h.P99, h.Errors, h.VsHAProxyRPS)
	}
	// The run without CPU figures is left out of the per-core medians: two left, their mean.
	if !near(h.PerCore, 130) || !near(h.VsHAProxyPerCore, 1.085) {
		t.Errorf("halb per core %v, ratio %v; want 130, 1.085", h.PerCore, h.VsHAProxyPerCore)
	}
	if got := fmtRatios(h.PerCoreRatios); got != "1.09, 1.08, -" {
		t.Errorf("per-core ratios %q", got)
	}
	if !math.IsNaN(median(nil)) || median([]float64{nan, 3, 1, 2}) != 2 {
		t.Error("median")
	}
}

func TestBuiltinBackend(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- newBuiltinBackend().serve(ctx, ln) }()
	addr := netip.MustParseAddrPort(ln.Addr().String())
	if err := probe(t.Context(), addr, []int{0, 128, 65536, 128}); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if err := probe(t.Context(), addr, []int{maxBodySize + 1}); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Fatalf("oversized body: %v, want 404", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if err := ServeBackend(t.Context(), "198.18.0.1:80"); err == nil {
		t.Fatal("ServeBackend accepted a non-loopback address")
	}
}

func TestRunHalbThatDiesMidRunIsReported(t *testing.T) {
	// A "halb" that serves (this test binary running TestHelperBackend) and exits 4.5 s after
	// the readiness probe: the cell of direct runs first (3 s), so halb dies in the middle of
	// its own 3 s cell: reported under the table, and the run finishes.
	opts := testOptions(t)
	opts.Targets = []string{TargetDirect, TargetHalb}
	opts.Modes = []string{"http"}
	opts.Sizes = []int{128}
	opts.Conns = []int{2}
	opts.Duration = 3 * time.Second
	opts.HalbBin = fakeHalb(t, opts, "4500ms")
	out, _ := runHarness(t, opts)
	rows := tableRows(out)
	if len(rows) != 1 || rows[0][0] != "direct" {
		t.Fatalf("want only the direct row:\n%s", out)
	}
	if !strings.Contains(out, "(halb fake)") {
		t.Errorf("header doesn't name the halb binary and its version:\n%s", out)
	}
	if !strings.Contains(out, "Skipped: halb http: from 128 B c=2 on:") || !strings.Contains(out, "proxy exited during the cell") {
		t.Fatalf("halb's death during the cell not reported:\n%s", out)
	}
}

// TestHelperBackend is not a test: run by TestRunHalbThatDiesMidRunIsReported as a fake
// proxy process, it serves like a backend until BENCH_HELPER_LIFE after its first request
// (the harness's readiness probe), then exits with status 3.
func TestHelperBackend(t *testing.T) {
	addr := os.Getenv("BENCH_HELPER_ADDR")
	if addr == "" {
		t.Skip("helper process only")
	}
	life, err := time.ParseDuration(os.Getenv("BENCH_HELPER_LIFE"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	b := newBuiltinBackend()
	serve := b.srv.Handler
	b.srv.Handler = func(rc *fasthttp.RequestCtx) {
		once.Do(func() { time.AfterFunc(life, cancel) })
		serve(rc)
	}
	if err := b.serve(ctx, ln); err != nil {
		t.Fatal(err)
	}
	os.Exit(3)
}

func TestRunPinned(t *testing.T) {
	if numCPU() < 2 {
		t.Skip("pinning needs 2 CPUs")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset not installed")
	}
	before := selfAffinity()
	opts := testOptions(t)
	opts.Pin = true
	opts.Modes = []string{"http"}
	opts.Sizes = []int{128}
	if _, err := exec.LookPath("haproxy"); err == nil {
		opts.Targets = []string{TargetDirect, TargetHAProxy}
	}
	out, _ := runHarness(t, opts)
	if !strings.Contains(out, "pinned: the proxy on CPU 0") {
		t.Errorf("header doesn't say pinned:\n%s", out)
	}
	for _, r := range tableRows(out) {
		if r[4] == "0" || r[7] != "0" {
			t.Errorf("pinned row %q: no requests or errors", r)
		}
	}
	if after := selfAffinity(); after != before {
		t.Fatalf("affinity not restored: %d CPUs before, %d after", before, after)
	}
	if loadCPUs(2) != "1" || loadCPUs(16) != "1-15" {
		t.Error("loadCPUs")
	}
}

// TestRunIdleHalb: idle mode with a real halb also times its control plane
// (admin socket and /metrics) while the connections are open.
func TestRunIdleHalb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds halb")
	}
	bin := filepath.Join(t.TempDir(), "halb")
	if out, err := exec.Command("go", "build", "-o", bin, "halb/cmd/halb").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	opts := testOptions(t)
	opts.Targets = []string{TargetHalb}
	opts.Modes = []string{"http"}
	opts.Idle = 50
	opts.IdleSettle = time.Second
	opts.HalbBin = bin
	out, _ := runHarness(t, opts)
	rows := tableRows(out)
	if len(rows) != 1 || rows[0][0] != "halb" || rows[0][3] != "50" || rows[0][4] != "0" {
		t.Fatalf("want one halb row with 50 open and no errors:\n%s", out)
	}
	// The settled measurement: an RSS, and a per-connection figure from it.
	if mib, err := strconv.ParseFloat(rows[0][13], 64); err != nil || mib <= 0 {
		t.Errorf("RSS 1 s later %q:\n%s", rows[0][13], out)
	}
	if _, err := strconv.ParseFloat(rows[0][14], 64); err != nil {
		t.Errorf("KiB per conn 1 s later %q:\n%s", rows[0][14], out)
	}
	for i, col := range []string{"ctl show", "GET /metrics", "ctl reload"} {
		ms, err := strconv.ParseFloat(rows[0][10+i], 64)
		if err != nil || ms <= 0 {
			t.Errorf("%s ms %q:\n%s", col, rows[0][10+i], out)
		}
	}
}

// TestRunInterleavesTargets: each cell runs for every target in turn (direct, then halb),
// not one target's whole matrix after the other's; the table still lists rows by target.
func TestRunInterleavesTargets(t *testing.T) {
	opts := testOptions(t)
	opts.Modes = []string{"http"}
	opts.Conns = []int{2}
	opts.HalbBin = fakeHalb(t, opts, "1h")
	out, progress := runHarness(t, opts)
	var order []string
	for _, line := range strings.Split(progress, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && (f[0] == TargetDirect || f[0] == TargetHalb) && strings.Contains(line, "req/s") {
			order = append(order, f[0]+" "+f[2]+f[3])
		}
	}
	want := []string{"direct 128B", "halb 128B", "direct 5000B", "halb 5000B"}
	if !slices.Equal(order, want) {
		t.Fatalf("cells ran in the order %q, want %q\nprogress:\n%s", order, want, progress)
	}
	var targets []string
	for _, r := range tableRows(out) {
		targets = append(targets, r[0]+" "+r[2])
	}
	if w := []string{"direct 128 B", "direct 5000 B", "halb 128 B", "halb 5000 B"}; !slices.Equal(targets, w) {
		t.Fatalf("table rows %q, want %q", targets, w)
	}
}

// fakeHalb writes a "halb" that serves like a backend on halb's port (this test binary
// running TestHelperBackend) until life after its first request, and says "halb fake" to
// `version`.
func fakeHalb(t *testing.T, opts Options, life string) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "halb")
	body := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = version ] && { echo 'halb fake'; exit 0; }\nBENCH_HELPER_ADDR=%s BENCH_HELPER_LIFE=%s exec %s -test.run='^TestHelperBackend$'\n",
		lo(opts.Ports.Halb), life, os.Args[0])
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}
