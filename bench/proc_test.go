package bench

import (
	"errors"
	"halb/internal/poll"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStatAndVmRSS(t *testing.T) {
	// comm with spaces and a ')' inside, as the kernel writes it.
	stat := []byte("1234 (we ird) name) S 1 777 777 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 100000 2000 0")
	pg, ticks, ok := parseStat(stat)
	if !ok || pg != 777 || ticks != 300 {
		t.Fatalf("parseStat = %d, %d, %v; want 777, 300, true", pg, ticks, ok)
	}
	if _, _, ok := parseStat([]byte("1 (x) S 1")); ok {
		t.Fatal("short stat line accepted")
	}
	status := []byte("Name:\tnginx\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nRssAnon:\t    1234 kB\nThreads:\t1\n")
	if got := statusKiB(status, "VmRSS:"); got != 4321 {
		t.Fatalf("statusKiB(VmRSS) = %d, want 4321", got)
	}
	if got := statusKiB(status, "RssAnon:"); got != 1234 {
		t.Fatalf("statusKiB(RssAnon) = %d, want 1234", got)
	}
	if got := statusKiB([]byte("Name:\tkthreadd\n"), "VmRSS:"); got != 0 {
		t.Fatalf("statusKiB without VmRSS = %d, want 0", got)
	}
}

func TestProcStopEndsWholeGroup(t *testing.T) {
	// A parent that ignores TERM and a child: stop must end both (TERM, then KILL to the group).
	p, err := startProc(t.TempDir(), "grp", nil, "/bin/sh", "-c", `trap "" TERM; sleep 300 & echo started; wait`)
	if err != nil {
		t.Fatal(err)
	}
	pg := p.pgid()
	deadline := time.Now().Add(10 * time.Second)
	var s groupSample
	var serr error
	if !poll.Until(10*time.Second, 10*time.Millisecond, func() bool {
		s, serr = sampleGroup(pg)
		return serr == nil && s.procs >= 2
	}) {
		t.Fatalf("the group never had two processes: %+v %v", s, serr)
	}
	if s.rssKiB <= 0 || s.anonKiB <= 0 || s.anonKiB > s.rssKiB {
		t.Fatalf("group RSS %d KiB, anonymous %d KiB", s.rssKiB, s.anonKiB)
	}
	p.stop(100 * time.Millisecond)
	if !p.exited() {
		t.Fatal("leader still running after stop")
	}
	// The group may take a moment to disappear from /proc once killed.
	gone := poll.Until(time.Until(deadline), 10*time.Millisecond, func() bool {
		return errors.Is(syscall.Kill(-pg, 0), syscall.ESRCH)
	})
	if !gone {
		t.Fatalf("process group %d still alive after stop (kill -0: %v)", pg, syscall.Kill(-pg, 0))
	}
	if _, err := sampleGroup(pg); !errors.Is(err, errNoProcs) {
		t.Fatalf("sampleGroup after stop: %v, want errNoProcs", err)
	}
	if !strings.Contains(p.logTail(100), "started") {
		t.Fatalf("log tail %q lacks the child's output", p.logTail(100))
	}
	p.stop(time.Millisecond) // twice is fine
}

func TestStartProcMissingBinary(t *testing.T) {
	if _, err := startProc(t.TempDir(), "nope", nil, "/nonexistent/halb"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want a not-exist error", err)
	}
}

func TestParseProcStat(t *testing.T) {
	busy, idle, err := parseProcStat([]byte("cpu  100 20 30 4000 50 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"))
	// busy: (100+20+30+8) ticks, idle: (4000+50); irq and softirq in neither
	if err != nil || busy != 1.58 || idle != 40.5 {
		t.Fatalf("parseProcStat = %v, %v, %v; want 1.58, 40.5", busy, idle, err)
	}
	if _, _, err := parseProcStat([]byte("intr 1 2 3\n")); err == nil {
		t.Fatal("bad /proc/stat accepted")
	}
	if s, err := selfCPUSecs(); err != nil || s < 0 {
		t.Fatalf("selfCPUSecs = %v, %v", s, err)
	}
}
