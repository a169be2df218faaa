package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: halb bench [flags]            side-by-side load test on 127.0.0.1
       halb bench --idle [N] [flags]   RSS per idle keep-alive connection (N default 10000)
       halb bench --serve ADDR         run one built-in backend (GET /N answers N bytes)

Starts two backends, then each target in turn (direct = no proxy, haproxy, halb, nginx) with
the same backends and threads, drives closed-loop keep-alive load and prints a Markdown table
(with --runs N, one per run and one of their medians). Progress goes to stderr, the table to stdout. halb is HALB_BIN, --halb, or the halb next to
this executable.

flags:
`

// idleFlag is --idle, --idle=N or --idle N (the N is picked up after parsing).
type idleFlag struct {
	n   int
	set bool
}

func (f *idleFlag) String() string   { return strconv.Itoa(f.n) }
func (f *idleFlag) IsBoolFlag() bool { return true }
func (f *idleFlag) Set(s string) error {
	f.set = true
	switch s {
	case "true":
		return nil
	case "false":
		f.set, f.n = false, 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a positive connection count, got %q", s)
	}
	f.n = n
	return nil
}

// Main is `halb bench`: args are the arguments after "bench". It returns the exit status:
// 0 on success, 1 when the run failed, 2 for bad usage, 130 when interrupted.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("halb bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	cpus := runtime.NumCPU()
	var (
		duration = fs.Duration("duration", 10*time.Second, "measured time per cell")
		warmup   = fs.Duration("warmup", time.Second, "unmeasured load before each cell")
		conns    = fs.String("conns", "64,256", "concurrent connections, comma-separated")
		sizes    = fs.String("sizes", "128,64KiB", "response body sizes (bytes, or with KiB/MiB), comma-separated")
		modes    = fs.String("modes", "http,tcp", "proxy modes: http, tcp")
		targets  = fs.String("targets", "direct,haproxy,halb,nginx", "targets: direct, haproxy, halb, nginx (run in this fixed order)")
		threads  = fs.Int("threads", cpus, "proxy threads: halb GOMAXPROCS, HAProxy nbthread, nginx worker_processes")
		lgProcs  = fs.Int("loadgen-procs", max(1, cpus/2), "GOMAXPROCS of the built-in load generator (threads of wrk)")
		loadgen  = fs.String("loadgen", "builtin", "load generator: builtin, or wrk (Debian's) as a cross-check")
		backend  = fs.String("backend", "auto", "backends: auto (nginx when installed), nginx, builtin")
		halbBin  = fs.String("halb", "", "halb executable (default $HALB_BIN, else the halb next to this executable)")
		timeout  = fs.Duration("timeout", 5*time.Second, "per-request timeout")
		keep     = fs.Bool("keep", false, "keep the temporary directory with configs and logs")
		runs     = fs.Int("runs", 1, "run the whole matrix this many times (cells interleaved in each) and add a table of medians")
		pin      = fs.Bool("pin", false, "pin the proxy to CPU 0 (1 thread unless --threads) and the load generator and backends to the other CPUs")
		serve    = fs.String("serve", "", "run one built-in backend on this 127.0.0.1 address and nothing else")
		settle   = fs.Duration("idle-settle", 10*time.Second, "with --idle: keep the connections open this long and measure RSS again (0: do not)")
		idle     idleFlag
	)
	fs.Var(&idle, "idle", "measure RSS per idle keep-alive connection: --idle [N] (default N 10000)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := fs.Args()
	if idle.set && idle.n == 0 {
		idle.n = 10000
		// "--idle N ...": the flag package stopped at N; take it and parse what follows.
		if len(rest) > 0 {
			if n, err := strconv.Atoi(rest[0]); err == nil && n > 0 {
				idle.n = n
				if err := fs.Parse(rest[1:]); err != nil {
					return 2
				}
				rest = fs.Args()
			}
		}
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "halb bench: unexpected arguments %q\n", rest)
		return 2
	}
	if *serve != "" {
		if err := ServeBackend(ctx, *serve); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}

	opts := Options{
		Duration: *duration, Warmup: *warmup, Modes: splitList(*modes), Targets: splitList(*targets),
		Threads: *threads, LoadgenProcs: *lgProcs, Loadgen: *loadgen, Backend: *backend,
		Idle: idle.n, IdleSettle: *settle, Ports: DefaultPorts(), Timeout: *timeout, Keep: *keep, Pin: *pin,
		Runs: *runs,
	}
	if opts.Pin && !flagWasSet(fs, "threads") {
		opts.Threads = 1 // one CPU for the proxy, as anchor-bench.sh's PIN=1
	}
	var err error
	if opts.Conns, err = parseInts(*conns); err != nil {
		fmt.Fprintf(stderr, "halb bench: --conns: %v\n", err)
		return 2
	}
	if opts.Sizes, err = parseSizes(*sizes); err != nil {
		fmt.Fprintf(stderr, "halb bench: --sizes: %v\n", err)
		return 2
	}
	if idle.n > 0 && !flagWasSet(fs, "targets") {
		opts.Targets = []string{TargetHAProxy, TargetHalb}
	}
	if idle.n > 0 && !flagWasSet(fs, "modes") {
		opts.Modes = []string{"http"}
	}
	exe, _ := os.Executable()
	opts.SelfExe = exe
	opts.HalbBin = findHalb(*halbBin, exe)
	if err := opts.validate(); err != nil {
		fmt.Fprintf(stderr, "halb %v\n", err)
		return 2
	}
	if opts.Loadgen == "builtin" {
		// The load generator shares the machine with the proxy and the backends: cap it so it
		// doesn't starve them (it cannot use more than LoadgenProcs cores for Go code).
		prev := runtime.GOMAXPROCS(opts.LoadgenProcs)
		defer runtime.GOMAXPROCS(prev)
	}
	if err := Run(ctx, opts, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
}

// findHalb returns the halb executable: the flag, else $HALB_BIN, else "halb" in the
// directory of exe; "" when none exists.
func findHalb(flagValue, exe string) string {
	for _, p := range []string{flagValue, os.Getenv("HALB_BIN")} {
		if p != "" {
			return p // named explicitly: a missing file is reported when it is started
		}
	}
	if exe == "" {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), "halb")
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p
	}
	return ""
}

func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// parseSizes parses "128,64KiB,1MiB" (also k/K/KB and m/M/MB as powers of 1024, and the
// words small = 128 and big = 64KiB of anchor-bench.sh).
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := parseSize(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func parseSize(f string) (int, error) {
	switch strings.ToLower(f) {
	case "small":
		return 128, nil
	case "big":
		return 64 << 10, nil
	}
	num, mult := strings.TrimRight(f, "BbiKkMm"), 1
	switch strings.ToLower(strings.TrimSpace(f[len(num):])) {
	case "", "b":
	case "k", "kb", "kib":
		mult = 1 << 10
	case "m", "mb", "mib":
		mult = 1 << 20
	default:
		return 0, fmt.Errorf("bad size %q", f)
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 0 || n*mult > maxBodySize {
		return 0, fmt.Errorf("bad size %q (0 to 64MiB)", f)
	}
	return n * mult, nil
}
