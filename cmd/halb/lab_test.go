package main

import (
	"halb/internal/poll"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"halb/internal/netlab"
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
