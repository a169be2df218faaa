package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"halb/internal/netlab"
	"halb/internal/poll"
)

// TestLabTwoNodes runs two halb nodes (this test binary standing in for halb) in the lab with
// dual-active VIPs and checks the VRRP issue's must-holds at the level of the whole daemon: each
// node masters its VIP and serves HTTP through it; kill -9 (and link down) of a node moves its VIP
// to the peer, which serves; the node's return preempts; SIGTERM hands over to the peer.
func TestLabTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test skipped in -short mode")
	}
	l := netlab.NewT(t)
	t.Setenv("HALB_MAIN", "1")
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	t.Cleanup(func() {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})
	spawn := func(host string, argv ...string) {
		t.Helper()
		pid, err := labSpawn(l, dir, host, append([]string{self}, argv...)...)
		if err != nil {
			t.Fatal(err)
		}
		pids[host] = pid
	}
	dump := func() {
		for _, h := range []string{"lb1", "lb2", "web1", "web2"} {
			b, _ := os.ReadFile(filepath.Join(dir, h+".log"))
			lines := strings.Split(string(b), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("--- %s.log (tail)\n%s", h, strings.Join(lines, "\n"))
		}
	}
	spawn("web1", "lab", "web", "web1", "198.18.0.11:80")
	spawn("web2", "lab", "web", "web2", "198.18.0.12:80")
	for _, lb := range []string{"lb1", "lb2"} {
		conf := filepath.Join(dir, lb+".conf")
		if err := os.WriteFile(conf, []byte(labNodeConfig(dir, lb)), 0o600); err != nil {
			t.Fatal(err)
		}
		spawn(lb, "run", "-f", conf)
	}
	holds := func(host string, vip int) bool {
		ok, err := l.HasAddr(host, labVIPs[vip])
		return err == nil && ok
	}
	serves := func(vip int) bool {
		line, err := labGet(l, "client", netipPort(labVIPs[vip], 80))
		return err == nil && strings.HasPrefix(line, "HTTP/1.1 200") && strings.Contains(line, "hello from web")
	}
	step := func(what string, cond func() bool) {
		t.Helper()
		if !poll.Until(15*time.Second, 20*time.Millisecond, cond) {
			dump()
			t.Fatalf("%s: not within 15 s", what)
		}
	}
	step("lb1 masters VIP1, lb2 masters VIP2, both serve", func() bool {
		return holds("lb1", 0) && holds("lb2", 1) && !holds("lb2", 0) && !holds("lb1", 1) && serves(0) && serves(1)
	})
	// `halb lab status` shows each node's VRRP state.
	if err := writeLabState(dir, &labState{ID: l.ID, PIDs: pids}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if rc := labStatus(dir, &out, &out); rc != exitOK {
		t.Fatalf("lab status: %d\n%s", rc, out.String())
	}
	for _, want := range []string{"VRRP", "VI_1 master, VI_2 backup", "VI_1 backup, VI_2 master"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("lab status lacks %q:\n%s", want, out.String())
		}
	}

	// kill -9 lb1 and take its link down: a dead node.
	_ = syscall.Kill(pids["lb1"], syscall.SIGKILL)
	if err := l.SetLink("lb1", false); err != nil {
		t.Fatal(err)
	}
	step("lb2 takes VIP1 and serves it", func() bool { return holds("lb2", 0) && serves(0) && serves(1) })

	// lb1 returns: higher priority for VIP1, it preempts (a fresh start removes its stale VIP first).
	if err := l.SetLink("lb1", true); err != nil {
		t.Fatal(err)
	}
	spawn("lb1", "run", "-f", filepath.Join(dir, "lb1.conf"))
	step("lb1 preempts VIP1 back", func() bool { return holds("lb1", 0) && !holds("lb2", 0) && serves(0) })

	// SIGTERM lb2: priority 0 advert, VIP removed, lb1 takes VIP2.
	if err := syscall.Kill(pids["lb2"], syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	step("lb1 takes VIP2 after lb2's graceful stop", func() bool { return holds("lb1", 1) && !holds("lb2", 1) && serves(1) })

	// The nodes are this (race-enabled, under make test) binary: a race inside them fails the test.
	for _, h := range []string{"lb1", "lb2", "web1", "web2"} {
		b, _ := os.ReadFile(filepath.Join(dir, h+".log"))
		if strings.Contains(string(b), "DATA RACE") || strings.Contains(string(b), "panic:") {
			dump()
			t.Fatalf("%s: race or panic in the node's log", h)
		}
	}
}

// TestMeasureHTTPFailover measures, for the whole daemon, what a client of the VIP sees when its
// master dies (kill -9) or stops (SIGTERM): the longest time without an answered HTTP request
// (from the last answer before the gap, or the signal, to the first after it) until the peer
// holds the VIP and has answered, and the requests that failed. Requests are sent one after
// another, each with a 20 ms connect timeout. Run with
// HALB_MEASURE=1 go test -count=1 -run TestMeasureHTTPFailover -v ./cmd/halb
func TestMeasureHTTPFailover(t *testing.T) {
	if os.Getenv("HALB_MEASURE") == "" {
		t.Skip("set HALB_MEASURE=1 to measure")
	}
	runs := 3
	if s := os.Getenv("HALB_MEASURE_RUNS"); s != "" {
		runs, _ = strconv.Atoi(s)
	}
	for _, c := range []struct {
		sig  syscall.Signal
		fast bool
	}{{syscall.SIGKILL, true}, {syscall.SIGTERM, false}, {syscall.SIGTERM, true}} {
		var gaps []time.Duration
		var failed []int
		for range runs {
			d, f := measureHTTPOnce(t, c.sig, c.fast)
			gaps, failed = append(gaps, d.Round(time.Millisecond)), append(failed, f)
		}
		t.Logf("MEASURE %v fast_handover=%v: longest gap %v, failed requests %v", c.sig, c.fast, gaps, failed)
	}
}

func measureHTTPOnce(t *testing.T, sig syscall.Signal, fast bool) (time.Duration, int) {
	l, err := netlab.New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("HALB_MAIN", "1")
	dir := t.TempDir()
	self, _ := os.Executable()
	var pids []int
	defer func() {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}()
	spawn := func(host string, argv ...string) int {
		pid, err := labSpawn(l, dir, host, append([]string{self}, argv...)...)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
		return pid
	}
	spawn("web1", "lab", "web", "web1", "198.18.0.11:80")
	spawn("web2", "lab", "web", "web2", "198.18.0.12:80")
	lbs := map[string]int{}
	for _, lb := range []string{"lb1", "lb2"} {
		conf := filepath.Join(dir, lb+".conf")
		text := labNodeConfig(dir, lb)
		if !fast {
			text = strings.ReplaceAll(text, "    fast_handover\n", "")
		}
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		lbs[lb] = spawn(lb, "run", "-f", conf)
	}
	vip := netipPort(labVIPs[0], 80)
	quick := func() bool {
		var conn net.Conn
		if l.Do("client", func() (err error) {
			conn, err = (&net.Dialer{Timeout: 20 * time.Millisecond}).Dial("tcp", vip.String())
			return err
		}) != nil {
			return false
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
		line, err := bufio.NewReader(conn).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "HTTP/1.1 200")
	}
	if !poll.Until(15*time.Second, 20*time.Millisecond, func() bool {
		ok, err := l.HasAddr("lb1", labVIPs[0])
		return err == nil && ok && quick()
	}) {
		t.Fatal("lb1 never served VIP1")
	}
	lastOK := time.Now()
	_ = syscall.Kill(lbs["lb1"], sig)
	failed, streak := 0, 0
	var gap time.Duration
	if !poll.Until(15*time.Second, time.Millisecond, func() bool {
		moved, _ := l.HasAddr("lb2", labVIPs[0])
		if !quick() {
			failed++
			streak++
			return false
		}
		now := time.Now()
		if streak > 0 {
			gap = max(gap, now.Sub(lastOK))
		}
		lastOK, streak = now, 0
		return moved
	}) {
		t.Fatalf("%v: VIP1 not served by lb2 within 15 s", sig)
	}
	return gap, failed
}
