package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, and its results must be
// consistent (an error iff an Error diagnostic; a config iff no error; the config dumps as JSON).
// Includes are answered from an empty filesystem: a fuzzer must not read (or hang on) the host's
// files, so this goes through parse with a reader whose filesystem finds nothing.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob("testdata/examples/*.conf")
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, "testdata/full.conf")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("include a.conf\ninclude *.conf\n"))
	f.Add([]byte("virtual_server_group G {\n 198.18.0.1-255 80\n 2001:db8::1-ffff 80\n}\nvirtual_server group G {\n}\n"))
	f.Add([]byte("a \"b\nc { } } {\r\n\u00a0d"))
	f.Add([]byte("$A=1 \\\n b\n@x $B=${A}$A\n@^x vrrp_instance $B {\n}\n$C={$\n${}\n"))
	f.Add([]byte("vrrp_track_file f {\n file /x\n init_file 3 overwrite\n}\nvrrp_track_process p {\n process a b\n param_match initial\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		d := &diags{}
		r := newReader(d)
		r.readFile = func(name string) ([]byte, error) { return nil, os.ErrNotExist }
		r.glob = func(string) ([]string, error) { return nil, nil }
		cfg, diags, err := parse(r, "fuzz.conf", src)
		nErr := 0
		for _, x := range diags {
			if x.Severity == Error {
				nErr++
			}
			if x.Pos.File == "" {
				t.Errorf("diagnostic without file: %v", x)
			}
		}
		if (err != nil) != (nErr > 0) {
			t.Fatalf("err = %v with %d error diagnostics", err, nErr)
		}
		if (cfg == nil) != (err != nil) {
			t.Fatalf("cfg nil = %v, err = %v", cfg == nil, err)
		}
		if cfg != nil {
			if _, err := json.Marshal(cfg); err != nil {
				t.Fatalf("marshal: %v", err)
			}
			_ = cfg.Summary().String()
			_ = cfg.NeedsIPVS()
		}
	})
}

// genRealServers writes a configuration with nVS virtual servers of nRS real servers each, every
// real server with an HTTP_GET checker.
func genRealServers(nVS, nRS int) []byte {
	var b strings.Builder
	b.WriteString("global_defs {\n    router_id BENCH\n}\n")
	for v := range nVS {
		fmt.Fprintf(&b, "virtual_server 198.18.%d.%d 80 {\n    delay_loop 5\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n    proxy_mode http\n", v/250, v%250+1)
		for r := range nRS {
			fmt.Fprintf(&b, "    real_server 198.19.%d.%d 8080 {\n        weight 1\n        HTTP_GET {\n            url {\n                path /healthz\n                status_code 200\n            }\n            connect_timeout 3\n            retry 3\n            delay_before_retry 2\n        }\n    }\n", r/250, r%250+1)
		}
		b.WriteString("}\n")
	}
	return []byte(b.String())
}

func BenchmarkParse10kRealServers(b *testing.B) {
	src := genRealServers(100, 100)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		cfg, _, err := Parse("bench.conf", src)
		if err != nil {
			b.Fatal(err)
		}
		if s := cfg.Summary(); s.RealServers != 10000 {
			b.Fatalf("summary %v", s)
		}
		n++
	}
	// CPU time of the process (parser and GC) per parse: unlike ns/op, it does not grow when the
	// machine is shared with other jobs.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestTenThousandRealServers(t *testing.T) {
	cfg, _, err := Parse("gen.conf", genRealServers(100, 100))
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{VirtualServers: 100, RealServers: 10000, Checkers: 10000}
	if got := cfg.Summary(); got != want {
		t.Errorf("Summary = %v, want %v", got, want)
	}
}

// TestLargeFiles reads 10 MB files, valid and garbage (smaller under -race). No time is asserted; a quadratic parser
// would make this test take minutes instead of about a second.
func TestLargeFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("large inputs skipped in -short mode")
	}
	// 10 MB; 2 MB under the race detector, which slows this single-goroutine code tenfold.
	size, nVS := 10<<20, 250
	if raceEnabled {
		size, nVS = 2<<20, 50
	}
	valid := genRealServers(nVS, 180)
	t.Logf("valid input: %d bytes (target %d)", len(valid), size)
	start := time.Now()
	cfg, _, err := Parse("big.conf", valid)
	if err != nil {
		t.Fatalf("valid 10 MB file: %v", err)
	}
	t.Logf("%d bytes, %v, parsed in %v", len(valid), cfg.Summary(), time.Since(start))

	// Garbage: unknown words, stray braces and unterminated blocks on every line.
	var g strings.Builder
	for i := 0; g.Len() < size; i++ {
		fmt.Fprintf(&g, "bogus_%d x y {\n} }\n\"unterminated\nvirtual_server 1.2.3 { \n", i)
	}
	start = time.Now()
	_, diags, err := Parse("garbage.conf", []byte(g.String()))
	if err == nil {
		t.Fatal("garbage accepted")
	}
	if len(diags) > 5*maxErrors {
		t.Errorf("%d diagnostics kept; the list must be bounded", len(diags))
	}
	last := diags[len(diags)-1]
	if !strings.Contains(last.Msg, "more diagnostics not shown") {
		t.Errorf("last diagnostic = %v, want a count of those left out", last)
	}
	var d Diagnostic
	if !errors.As(err, &d) {
		t.Error("error is not a Diagnostic")
	}
	t.Logf("garbage: %d bytes, %d diagnostics kept, parsed in %v", g.Len(), len(diags), time.Since(start))
}
