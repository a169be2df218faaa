package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"halb/daemon"
	"halb/internal/demo"
	"halb/internal/memtrim"
)

const defaultConfigPath = "/etc/halb/halb.conf"

// defaultGOGC is the garbage collector's headroom when GOGC is not set: the
// heap may grow this many percent over what is live before a collection.
// Go's default, 100, lets the GC's headroom grow to a third of an idle
// connection's memory; the HTTP/1 and TCP paths allocate almost nothing per
// request, so collecting more often costs them little (docs/dataplane.md,
// "Memory").
const defaultGOGC = 50

// mutexSampling is the share of contention events --mutexprofile records (1 in n).
const mutexSampling = 5

//go:embed demo.conf
var demoConfig []byte

// demoBackends are the web servers the embedded demo config balances over.
var demoBackendAddrs = []string{"127.0.0.1:18001", "127.0.0.1:18002"}

func newLogger(w io.Writer, asJSON bool) (*zap.Logger, zap.AtomicLevel) {
	level := zap.NewAtomicLevelAt(zap.InfoLevel)
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if asJSON {
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), level)), level
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", defaultConfigPath, "config file (keepalived.conf grammar + halb keywords)")
	demoMode := fs.Bool("demo", false, "run the embedded demo config on 127.0.0.1 with demo web servers (no root needed)")
	logJSON := fs.Bool("log-json", false, "log as JSON lines (default: human console format)")
	sock := fs.String("admin-socket", "", "admin socket path, overriding global_defs admin_socket (\"-\" = none)")
	stats := fs.String("stats", "", "stats listener address, overriding global_defs stats_listen")
	configID := fs.String("config-id", "", "config id for keepalived's conditional lines (@ID ...); default: the host name up to its first dot")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until halb stops (for performance work)")
	memProfile := fs.String("memprofile", "", "write a profile of the allocations made until halb stops to this file (for performance work)")
	mutexProfile := fs.String("mutexprofile", "", "write a profile of lock contention (sync and the Go runtime's own locks) until halb stops to this file (for performance work)")
	pos, code, done := parseFlags(fs, args, "halb run [-f FILE | --demo] [--log-json] [--admin-socket PATH] [--stats ADDR] [--config-id ID]", false, stdout, stderr)
	if done {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "halb run: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "halb run: %v\n", err)
			return exitFailure
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "halb run: cpu profile: %v\n", err)
			return exitFailure
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			fmt.Fprintf(stderr, "halb run: %v\n", err)
			return exitFailure
		}
		defer func() {
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintf(stderr, "halb run: memory profile: %v\n", err)
			}
			f.Close()
		}()
	}
	if *mutexProfile != "" {
		f, err := os.Create(*mutexProfile)
		if err != nil {
			fmt.Fprintf(stderr, "halb run: %v\n", err)
			return exitFailure
		}
		runtime.SetMutexProfileFraction(mutexSampling)
		defer func() {
			if err := pprof.Lookup("mutex").WriteTo(f, 0); err != nil {
				fmt.Fprintf(stderr, "halb run: mutex profile: %v\n", err)
			}
			f.Close()
		}()
	}
	log, level := newLogger(stderr, *logJSON)
	defer func() { _ = log.Sync() }()
	opts := daemon.Options{ConfigPath: *file, ConfigID: *configID, Log: log, Level: level, AdminSocket: *sock, StatsListen: *stats, Signals: true}
	if *demoMode {
		opts.ConfigPath = "demo.conf (embedded)"
		opts.Source = demoConfig
		if opts.AdminSocket == "" {
			opts.AdminSocket = filepath.Join(os.TempDir(), "halb-demo.sock")
		}
		be, err := demo.Start(demoBackendAddrs)
		if err != nil {
			fmt.Fprintf(stderr, "halb run --demo: %v\n", err)
			return exitFailure
		}
		defer be.Close()
	}
	d, err := daemon.New(opts)
	if err != nil {
		var ce *daemon.ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintln(stderr, ce.Error())
			fmt.Fprintf(stderr, "%s: configuration invalid\n", opts.ConfigPath)
		} else {
			fmt.Fprintf(stderr, "halb run: %v\n", err)
		}
		return exitFailure
	}
	if *demoMode {
		fmt.Fprintf(stdout, `
halb demo is running (Ctrl-C stops it). Try:
  curl http://127.0.0.1:8080/          # HTTP mode, wrr over web1 (weight 2) and web2 (weight 1)
  curl http://127.0.0.1:8081/          # TCP mode, least connections
  open http://127.0.0.1:8404/          # the stats page; /metrics for Prometheus
  bin/halb ctl -s %s show backends   # runtime API (make build puts halb in bin/)
`, opts.AdminSocket)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go memtrim.Run(ctx, memtrim.DefaultPolicy, log.Named("memtrim"))
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "halb run: %v\n", err)
		return exitFailure
	}
	return exitOK
}
