package health

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// BenchmarkMonitorObserve measures the pure core's cost per result.
func BenchmarkMonitorObserve(b *testing.B) {
	m := NewMonitor(Target{ID: "rs", Timing: Timing{DelayLoop: time.Second, Retry: 2, Rise: 2, Fall: 2}}, t0, 0)
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Second)
		m.Observe(now, Result{OK: i%7 != 0, Reason: "timeout", Duration: time.Millisecond})
	}
}

// BenchmarkDetection measures the time from a server's death to its DOWN
// transition, against Timing.DetectionBound, for a death at a random point
// of the check cycle:
//
//	refused: TCP_CHECK, the listener closes (connection refused at once);
//	hang:    HTTP_GET, the server stops answering (every attempt times out).
func BenchmarkDetection(b *testing.B) {
	tm := Timing{DelayLoop: 200 * time.Millisecond, ConnectTimeout: 100 * time.Millisecond, Retry: 1, DelayBeforeRetry: 50 * time.Millisecond}
	b.Run("refused", func(b *testing.B) {
		benchDetection(b, tm, func(b *testing.B) (Checker, func()) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			return &TCPChecker{Addr: ln.Addr().(*net.TCPAddr).AddrPort()}, func() { ln.Close() }
		})
	})
	b.Run("hang", func(b *testing.B) {
		benchDetection(b, tm, func(b *testing.B) (Checker, func()) {
			var mu sync.Mutex
			dead := false
			s := newRawServer(b, func(c net.Conn) {
				readRequest(c)
				mu.Lock()
				d := dead
				mu.Unlock()
				if d {
					waitClose(c)
					return
				}
				_, _ = io.WriteString(c, okResp)
			})
			return &HTTPChecker{Addr: s.addr()}, func() { mu.Lock(); dead = true; mu.Unlock() }
		})
	})
}

func benchDetection(b *testing.B, tm Timing, setup func(*testing.B) (Checker, func())) {
	bound := tm.DetectionBound(0)
	var total, worst time.Duration
	n := 0
	for i := 0; b.Loop(); i++ {
		c, kill := setup(b)
		downs := make(chan Transition, 4)
		s := NewScheduler(zap.NewNop(), func(tr Transition) {
			if tr.Kind == KindDown {
				downs <- tr
			}
		}, SchedulerOptions{})
		s.Set([]Target{{ID: "rs", Checkers: []Checker{c}, Timing: tm}})
		s.Start(context.Background())
		// Die at a pseudo-random point of the cycle, after the first check.
		wait := tm.DelayLoop + time.Duration(i*7919%int(tm.DelayLoop/time.Millisecond))*time.Millisecond
		<-time.After(wait)
		death := time.Now()
		kill()
		select {
		case tr := <-downs:
			d := tr.At.Sub(death)
			total += d
			worst = max(worst, d)
			n++
		case <-time.After(5 * bound):
			b.Fatalf("no DOWN within 5x the bound %v", bound)
		}
		s.Stop()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(max(n, 1)), "detect-ms/op")
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
	b.ReportMetric(float64(bound.Milliseconds()), "bound-ms")
	if worst > bound+50*time.Millisecond {
		b.Errorf("worst detection %v exceeds the bound %v", worst, bound)
	}
}

// BenchmarkScale runs HALB_HEALTH_SCALE targets (default 5000) with HTTP_GET
// every second against 8 loopback HTTP servers in a child process (so the
// CPU figures are the checker's alone) for HALB_HEALTH_SCALE_SECONDS
// (default 20), and reports CPU, RSS, checks/s and the lateness of check
// starts. It runs only when HALB_HEALTH_SCALE is set:
//
//	HALB_HEALTH_SCALE=5000 go test -run '^$' -bench BenchmarkScale -benchtime 1x ./health
func BenchmarkScale(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("HALB_HEALTH_SCALE"))
	if n <= 0 {
		b.Skip("set HALB_HEALTH_SCALE=5000 to run the scale benchmark")
	}
	secs, _ := strconv.Atoi(os.Getenv("HALB_HEALTH_SCALE_SECONDS"))
	if secs <= 0 {
		secs = 20
	}
	for b.Loop() {
		addrs, stop := startServerChild(b)
		targets := make([]Target, n)
		for i := range targets {
			targets[i] = Target{
				ID:       fmt.Sprintf("vs 198.18.0.10:80 / rs %d", i),
				Checkers: []Checker{&HTTPChecker{Addr: addrs[i%len(addrs)], URLs: []URL{{Path: "/health"}}}},
				Timing:   Timing{DelayLoop: time.Second, ConnectTimeout: 2 * time.Second, Retry: 1, DelayBeforeRetry: time.Second},
				Weight:   1,
			}
		}
		var downs sync.Map
		s := NewScheduler(zap.NewNop(), func(tr Transition) {
			if tr.Kind == KindDown {
				downs.Store(tr.ID, tr.Reason)
			}
		}, SchedulerOptions{})
		s.Set(targets)
		var ru0, ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		start := time.Now()
		s.Start(context.Background())
		<-time.After(time.Duration(secs) * time.Second)
		st := s.Stats()
		wall := time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		rss, hwm := procStatus("VmRSS"), procStatus("VmHWM")
		s.Stop()
		stop() // the server child's CPU is in RUSAGE_CHILDREN once it is reaped
		var ruc syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ruc)
		srvCPU := time.Duration(ruc.Utime.Nano() + ruc.Stime.Nano())
		cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
		ndown := 0
		reasons := map[string]int{}
		downs.Range(func(_, v any) bool { ndown++; reasons[v.(string)]++; return true })
		b.ReportMetric(float64(st.Checks)/wall.Seconds(), "checks/s")
		b.ReportMetric(cpu.Seconds()/wall.Seconds()*100, "cpu-%")
		b.ReportMetric(srvCPU.Seconds()/wall.Seconds()*100, "server-cpu-%")
		// Every target checks once a second; first checks are spread over
		// the first second.
		b.ReportMetric(float64(st.Checks)/(float64(n)*(wall.Seconds()-0.5))*100, "on-schedule-%")
		b.ReportMetric(float64(cpu.Microseconds())/float64(max(st.Checks, 1)), "cpu-us/check")
		b.ReportMetric(float64(rss)/1024, "rss-MiB")
		b.ReportMetric(float64(hwm)/1024, "hwm-MiB")
		b.ReportMetric(float64(st.LatenessP50.Microseconds())/1000, "late-p50-ms")
		b.ReportMetric(float64(st.LatenessP99.Microseconds())/1000, "late-p99-ms")
		b.ReportMetric(float64(st.LatenessMax.Microseconds())/1000, "late-max-ms")
		b.ReportMetric(float64(st.Failures), "failed-attempts")
		b.ReportMetric(float64(ndown), "downs")
		b.Logf("%d targets, %v: %d checks, %d failed attempts, %d down %v, goroutines %d, GOMAXPROCS %d",
			n, wall.Round(time.Millisecond), st.Checks, st.Failures, ndown, reasons, runtime.NumGoroutine(), runtime.GOMAXPROCS(0))
	}
}

// instantChecker passes at once: BenchmarkScaleNoNetwork measures the
// scheduler shell alone.
type instantChecker struct{}

func (instantChecker) Check(context.Context) Result { return Result{OK: true} }
func (instantChecker) String() string               { return "INSTANT" }

// BenchmarkScaleNoNetwork is BenchmarkScale with a checker that passes at
// once: the cost and lateness of the scheduler itself (timers, goroutines,
// Monitor, counters), without sockets.
//
//	HALB_HEALTH_SCALE=5000 go test -run '^$' -bench BenchmarkScaleNoNetwork -benchtime 1x ./health
func BenchmarkScaleNoNetwork(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("HALB_HEALTH_SCALE"))
	if n <= 0 {
		b.Skip("set HALB_HEALTH_SCALE=5000 to run the scale benchmark")
	}
	secs, _ := strconv.Atoi(os.Getenv("HALB_HEALTH_SCALE_SECONDS"))
	if secs <= 0 {
		secs = 20
	}
	for b.Loop() {
		targets := make([]Target, n)
		for i := range targets {
			targets[i] = Target{ID: fmt.Sprintf("rs %d", i), Checkers: []Checker{instantChecker{}}, Timing: Timing{DelayLoop: time.Second}, Weight: 1}
		}
		s := NewScheduler(zap.NewNop(), nil, SchedulerOptions{})
		s.Set(targets)
		var ru0, ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		start := time.Now()
		s.Start(context.Background())
		<-time.After(time.Duration(secs) * time.Second)
		st := s.Stats()
		wall := time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		s.Stop()
		cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
		b.ReportMetric(float64(st.Checks)/wall.Seconds(), "checks/s")
		b.ReportMetric(cpu.Seconds()/wall.Seconds()*100, "cpu-%")
		b.ReportMetric(float64(cpu.Microseconds())/float64(max(st.Checks, 1)), "cpu-us/check")
		b.ReportMetric(float64(procStatus("VmRSS"))/1024, "rss-MiB")
		b.ReportMetric(float64(st.LatenessP50.Microseconds())/1000, "late-p50-ms")
		b.ReportMetric(float64(st.LatenessP99.Microseconds())/1000, "late-p99-ms")
		b.ReportMetric(float64(st.LatenessMax.Microseconds())/1000, "late-max-ms")
	}
}

// procStatus reads a kB field of /proc/self/status.
func procStatus(field string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			v, _ := strconv.Atoi(strings.Fields(l)[1])
			return v
		}
	}
	return 0
}

const serverChildEnv = "HALB_HEALTH_BENCH_SERVER"

// startServerChild re-runs the test binary as 8 loopback HTTP servers
// (127.0.0.2-9, see serveBenchChild) and returns their addresses.
func startServerChild(b *testing.B) ([]netip.AddrPort, func()) {
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), serverChildEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var addrs []netip.AddrPort
	sc := bufio.NewScanner(stdout)
	for len(addrs) < 8 && sc.Scan() {
		if ap, err := netip.ParseAddrPort(strings.TrimSpace(sc.Text())); err == nil {
			addrs = append(addrs, ap)
		}
	}
	if len(addrs) < 8 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b.Fatalf("server child gave %d addresses", len(addrs))
	}
	var once sync.Once
	return addrs, func() {
		once.Do(func() {
			stdin.Close()
			_ = cmd.Wait()
		})
	}
}

// serveBenchChild is the server child: 8 minimal HTTP servers (read the
// request header, answer 200, close: the least server CPU per check),
// addresses on stdout, until stdin closes.
func serveBenchChild() {
	const resp = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
	for i := 2; i <= 9; i++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					buf := make([]byte, 1024)
					var got []byte
					for !strings.Contains(string(got), "\r\n\r\n") {
						n, err := c.Read(buf)
						if err != nil {
							return
						}
						got = append(got, buf[:n]...)
					}
					_, _ = io.WriteString(c, resp)
				}()
			}
		}()
		fmt.Println(ln.Addr().String())
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}
