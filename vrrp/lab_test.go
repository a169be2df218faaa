package vrrp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"halb/internal/poll"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"halb/internal/netlab"
)

// The lab tests run the speaker in network namespaces built by netlab. The
// test binary re-executes itself inside a namespace (`ip netns exec NS
// TESTBINARY -test.run=^TestHelperVRRPNode$`) with the node's Config in
// HALB_VRRP_NODE, so no daemon is needed.

const helperEnv = "HALB_VRRP_NODE"

// TestHelperVRRPNode is not a test: it is the speaker process of a lab node.
func TestHelperVRRPNode(t *testing.T) {
	js := os.Getenv(helperEnv)
	if js == "" {
		t.Skip("helper process for the lab tests")
	}
	var cfg Config
	if err := json.Unmarshal([]byte(js), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "helper: bad config:", err)
		os.Exit(2)
	}
	lc := zap.NewDevelopmentConfig()
	lc.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
	log, _ := lc.Build()
	r, err := NewRouter(log, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	if err := r.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "helper: stop:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// node is one speaker process (halb or keepalived) in a lab namespace.
type node struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
	// keepalived only
	vrrpPid string
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (n *node) start() {
	n.t.Helper()
	n.out = &syncBuf{}
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		n.t.Fatalf("start %s: %v", n.name, err)
	}
	n.done = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.done) }()
	n.t.Cleanup(func() {
		n.kill(syscall.SIGKILL)
		if n.t.Failed() || os.Getenv("HALB_LAB_VERBOSE") != "" {
			n.t.Logf("---- %s output ----\n%s", n.name, n.out.String())
		}
	})
}

func (n *node) kill(sig syscall.Signal) {
	if n.cmd.Process == nil {
		return
	}
	if n.vrrpPid != "" && sig == syscall.SIGKILL {
		// keepalived: kill the VRRP child first (a crash), then the parent.
		if b, err := os.ReadFile(n.vrrpPid); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	n.cmd.Process.Signal(sig)
}

func (n *node) wait(d time.Duration) bool {
	select {
	case <-n.done:
		return true
	case <-time.After(d):
		return false
	}
}

func labAvailable(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Skip(err.Error())
	}
	if testing.Short() {
		t.Skip("lab tests skipped in -short mode")
	}
}

func startHalb(t *testing.T, l *netlab.Lab, host string, cfg Config) *node {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.Exec(host, exe, "-test.run=^TestHelperVRRPNode$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(js))
	n := &node{t: t, name: "halb@" + host, cmd: cmd}
	n.start()
	return n
}

type kaOpts struct {
	version  int
	prio     int
	interval time.Duration
	auth     string
	vrid     int
	vip      string
	state    string
	nopre    bool
	// unicast: unicast_src_ip and unicast_peer (empty: multicast)
	unicastSrc string
	peers      []string
}

func startKeepalived(t *testing.T, l *netlab.Lab, host string, o kaOpts) *node {
	t.Helper()
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived not installed")
	}
	dir := t.TempDir()
	auth := ""
	if o.auth != "" {
		auth = fmt.Sprintf("    authentication {\n        auth_type PASS\n        auth_pass %s\n    }\n", o.auth)
	}
	nopre := ""
	if o.nopre {
		nopre = "    nopreempt\n"
	}
	if o.state == "" {
		o.state = "BACKUP"
	}
	vipLen := 32
	if strings.Contains(o.vip, ":") {
		vipLen = 128
	}
	if o.unicastSrc != "" {
		nopre += "    unicast_src_ip " + o.unicastSrc + "\n    unicast_peer {\n"
		for _, p := range o.peers {
			nopre += "        " + p + "\n"
		}
		nopre += "    }\n"
	}
	conf := fmt.Sprintf(`global_defs {
    router_id %s
    vrrp_version %d
    vrrp_garp_master_delay 1
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 0
}
vrrp_instance VI_1 {
    state %s
    interface eth0
    virtual_router_id %d
    priority %d
    advert_int %s
%s%s    virtual_ipaddress {
        %s/%d
    }
}
`, host, o.version, o.state, o.vrid, o.prio, strconv.FormatFloat(o.interval.Seconds(), 'f', -1, 64), auth, nopre, o.vip, vipLen)
	cf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	vp := filepath.Join(dir, "vrrp.pid")
	cmd := l.Exec(host, ka, "-n", "-l", "-D", "-G", "-P", "-R", "-f", cf,
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", vp, "-c", filepath.Join(dir, "checkers.pid"))
	n := &node{t: t, name: "keepalived@" + host, cmd: cmd, vrrpPid: vp}
	n.start()
	return n
}

func halbCfg(host string, prio uint8, version int, ivl time.Duration, auth string) Config {
	ic := InstanceConfig{
		Name: "VI_1", Interface: "eth0", VRID: 51, Priority: prio, AdvertInt: ivl, Version: version,
		VIPs:      []VIP{{Prefix: netip.PrefixFrom(netlab.VIP1, 32)}},
		GARPDelay: time.Second, GARPRepeat: 3,
	}
	if auth != "" {
		ic.AuthType, ic.AuthPass = AuthPass, auth
	}
	return Config{Instances: []InstanceConfig{ic}}
}

// waitVIP polls until the VIP is on want (and, if exclusive, on no other lb).
func waitVIP(t *testing.T, l *netlab.Lab, want string, exclusive bool, within time.Duration) time.Duration {
	t.Helper()
	return waitAddr(t, l, netlab.VIP1, want, exclusive, within)
}

func waitAddr(t *testing.T, l *netlab.Lab, vip netip.Addr, want string, exclusive bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	placed := poll.Until(within, 10*time.Millisecond, func() bool {
		ok, err := l.HasAddr(want, vip)
		if err != nil {
			t.Fatal(err)
		}
		if ok && exclusive {
			for _, o := range []string{"lb1", "lb2"} {
				if o == want {
					continue
				}
				if has, _ := l.HasAddr(o, vip); has {
					ok = false
				}
			}
		}
		return ok
	})
	if !placed {
		a, _ := l.IP("lb1", "-o", "addr", "show", "eth0")
		b, _ := l.IP("lb2", "-o", "addr", "show", "eth0")
		t.Fatalf("VIP not on %s (exclusive %v) within %v\nlb1: %s\nlb2: %s", want, exclusive, within, a, b)
	}
	return time.Since(start)
}

// holdsNot checks over a window that host never gets the VIP.
func holdsNot(t *testing.T, l *netlab.Lab, host string, window time.Duration) {
	t.Helper()
	took := poll.Until(window, 20*time.Millisecond, func() bool {
		ok, _ := l.HasAddr(host, netlab.VIP1)
		return ok
	})
	if took {
		t.Fatalf("%s took the VIP", host)
	}
}

func TestLabHalbPair(t *testing.T) {
	labAvailable(t)
	l := netlab.NewT(t)
	ivl := 100 * time.Millisecond
	p := newProbe(t, l)
	lb1 := startHalb(t, l, "lb1", halbCfg("lb1", 150, 3, ivl, ""))
	startHalb(t, l, "lb2", halbCfg("lb2", 100, 3, ivl, ""))
	waitVIP(t, l, "lb1", true, 5*time.Second)
	p.until(t, time.Now(), "lb1", 5*time.Second)

	// kill -9 the master: the backup takes the VIP (the dead node keeps it,
	// and its listener still answers: reaching lb2 proves the client's ARP
	// entry was moved by lb2's gratuitous ARP).
	start := time.Now()
	lb1.kill(syscall.SIGKILL)
	lb1.wait(5 * time.Second)
	d := waitVIP(t, l, "lb2", false, 5*time.Second)
	t.Logf("kill -9: lb2 holds the VIP after %v", d)
	p.until(t, start, "lb2", 5*time.Second)

	// Restart lb1: it removes its stale VIP, then preempts lb2.
	lb1 = startHalb(t, l, "lb1", halbCfg("lb1", 150, 3, ivl, ""))
	waitVIP(t, l, "lb1", true, 5*time.Second)

	// SIGTERM: priority 0 advert, lb2 takes over after Skew_Time.
	lb1.kill(syscall.SIGTERM)
	d = waitVIP(t, l, "lb2", true, 5*time.Second)
	t.Logf("SIGTERM: lb2 holds the VIP alone after %v", d)
	if !lb1.wait(5 * time.Second) {
		t.Fatal("lb1 did not exit on SIGTERM")
	}
	if lb1.cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("lb1 exit code %d", lb1.cmd.ProcessState.ExitCode())
	}

	// Link down on the master → FAULT, the VIP moves.
	lb1 = startHalb(t, l, "lb1", halbCfg("lb1", 150, 3, ivl, ""))
	waitVIP(t, l, "lb1", true, 5*time.Second)
	if err := l.SetLink("lb1", false); err != nil {
		t.Fatal(err)
	}
	waitVIP(t, l, "lb2", true, 5*time.Second)
	if err := l.SetLink("lb1", true); err != nil {
		t.Fatal(err)
	}
	waitVIP(t, l, "lb1", true, 5*time.Second)
	if !strings.Contains(lb1.out.String(), "interface eth0 down") {
		t.Fatalf("fault cause not logged:\n%s", lb1.out.String())
	}
}

// TestLabHalbIPv6: VRRPv3 over IPv6 (link-local sources, ff02::12), the VIP
// answered from the client after the unsolicited NA.
func TestLabHalbIPv6(t *testing.T) {
	labAvailable(t)
	l := netlab.NewT(t)
	p := newProbe(t, l)
	cfg := func(prio uint8) Config {
		c := halbCfg("", prio, 3, 100*time.Millisecond, "")
		c.Instances[0].Family = 6
		c.Instances[0].VIPs = []VIP{{Prefix: netip.PrefixFrom(netlab.VIP1v6, 128)}}
		return c
	}
	lb1 := startHalb(t, l, "lb1", cfg(150))
	startHalb(t, l, "lb2", cfg(100))
	waitAddr(t, l, netlab.VIP1v6, "lb1", true, 5*time.Second)
	p.untilAddr(t, netlab.VIP1v6, time.Now(), "lb1", 5*time.Second)
	start := time.Now()
	lb1.kill(syscall.SIGTERM)
	waitAddr(t, l, netlab.VIP1v6, "lb2", true, 5*time.Second)
	d := p.untilAddr(t, netlab.VIP1v6, start, "lb2", 5*time.Second)
	t.Logf("IPv6 SIGTERM handover answered by lb2 after %v", d)
}

// TestLabHalbUnicast: unicast_peer / unicast_src_ip instead of multicast.
func TestLabHalbUnicast(t *testing.T) {
	labAvailable(t)
	l := netlab.NewT(t)
	cfg := func(prio uint8, me, peer string) Config {
		c := halbCfg("", prio, 3, 100*time.Millisecond, "")
		c.Instances[0].UnicastSrc = netip.MustParseAddr(me)
		c.Instances[0].UnicastPeers = []netip.Addr{netip.MustParseAddr(peer)}
		return c
	}
	lb1 := startHalb(t, l, "lb1", cfg(150, "198.18.0.1", "198.18.0.2"))
	startHalb(t, l, "lb2", cfg(100, "198.18.0.2", "198.18.0.1"))
	waitVIP(t, l, "lb1", true, 5*time.Second)
	holdsNot(t, l, "lb2", 500*time.Millisecond)
	lb1.kill(syscall.SIGKILL)
	waitVIP(t, l, "lb2", false, 5*time.Second)
}

func TestLabNoPreempt(t *testing.T) {
	labAvailable(t)
	l := netlab.NewT(t)
	ivl := 100 * time.Millisecond
	startHalb(t, l, "lb2", halbCfg("lb2", 100, 3, 2*ivl, ""))
	waitVIP(t, l, "lb2", true, 5*time.Second)
	cfg := halbCfg("lb1", 150, 3, 2*ivl, "")
	cfg.Instances[0].NoPreempt = true
	startHalb(t, l, "lb1", cfg)
	holdsNot(t, l, "lb1", 1500*time.Millisecond)
}

// TestLabKeepalivedInterop runs keepalived in one namespace and halb in the
// other, v2 with PASS and v3, both priority orders.
func TestLabKeepalivedInterop(t *testing.T) {
	labAvailable(t)
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("keepalived not installed")
	}
	cases := []struct {
		name    string
		version int
		ivl     time.Duration
		auth    string
	}{
		{"v2 PASS", 2, time.Second, "halbpw"},
		// 0.25 s rather than 0.1: the build machines are loaded, and a
		// stalled process would be a genuine (not a protocol) takeover.
		{"v3", 3, 250 * time.Millisecond, ""},
		{"v2 none", 2, time.Second, ""},
	}
	for _, c := range cases {
		for _, halbHigh := range []bool{true, false} {
			if c.name == "v2 none" && halbHigh {
				continue // one order is enough to show the no-auth layout matches
			}
			t.Run(fmt.Sprintf("%s halb high %v", c.name, halbHigh), func(t *testing.T) {
				l := netlab.NewT(t)
				hp, kp := 150, 100
				if !halbHigh {
					hp, kp = 100, 150
				}
				ka := startKeepalived(t, l, "lb2", kaOpts{version: c.version, prio: kp, interval: c.ivl, auth: c.auth, vrid: 51, vip: netlab.VIP1.String()})
				hb := startHalb(t, l, "lb1", halbCfg("lb1", uint8(hp), c.version, c.ivl, c.auth))
				winner, loser, wn := "lb1", "lb2", hb
				if !halbHigh {
					winner, loser, wn = "lb2", "lb1", ka
				}
				within := 10*c.ivl + 5*time.Second
				waitVIP(t, l, winner, true, within)
				// Never two masters for longer than one advert interval.
				dual := watchDual(l)
				holdsNot(t, l, loser, 4*c.ivl)
				if d := dual(); d > c.ivl {
					t.Fatalf("both held the VIP for %v", d)
				}
				// kill -9 the winner (it keeps its VIP, being dead): the
				// other takes over.
				wn.kill(syscall.SIGKILL)
				wn.wait(5 * time.Second)
				waitVIP(t, l, loser, false, within)
			})
		}
	}
}

// watchDual samples both lbs until the returned func is called and returns
// the longest stretch during which both held the VIP.
func watchDual(l *netlab.Lab) func() time.Duration {
	stop := make(chan struct{})
	res := make(chan time.Duration)
	go func() {
		var longest time.Duration
		var since time.Time
		tick := time.NewTicker(10 * time.Millisecond) // sampling interval
		defer tick.Stop()
		for {
			select {
			case <-stop:
				res <- longest
				return
			case <-tick.C:
			}
			a, _ := l.HasAddr("lb1", netlab.VIP1)
			b, _ := l.HasAddr("lb2", netlab.VIP1)
			now := time.Now()
			if a && b {
				if since.IsZero() {
					since = now
				}
				longest = max(longest, now.Sub(since))
			} else {
				since = time.Time{}
			}
		}
	}()
	return func() time.Duration { close(stop); return <-res }
}

// probe measures, from the client namespace, the time until a TCP connect to
// the VIP reaches the listener of host (which writes its name).
type probe struct {
	l     *netlab.Lab
	lns   []net.Listener
	fails int // attempts of the last until that got no answer at all
}

func newProbe(t *testing.T, l *netlab.Lab) *probe {
	p := &probe{l: l}
	for _, h := range []string{"lb1", "lb2"} {
		var ln net.Listener
		if err := l.Do(h, func() (err error) { ln, err = net.Listen("tcp", ":8080"); return err }); err != nil {
			t.Fatal(err)
		}
		p.lns = append(p.lns, ln)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte(h))
				c.Close()
			}
		}()
	}
	t.Cleanup(func() {
		for _, ln := range p.lns {
			ln.Close()
		}
	})
	return p
}

// until returns the time from start until a connect to the VIP is answered
// by host.
func (p *probe) until(t *testing.T, start time.Time, host string, within time.Duration) time.Duration {
	t.Helper()
	return p.untilAddr(t, netlab.VIP1, start, host, within)
}

func (p *probe) untilAddr(t *testing.T, vip netip.Addr, start time.Time, host string, within time.Duration) time.Duration {
	t.Helper()
	var took time.Duration
	p.fails = 0
	answered := poll.Until(time.Until(start.Add(within)), 5*time.Millisecond, func() bool {
		var got string
		defer func() {
			if got == "" {
				p.fails++
			}
		}()
		p.l.Do("client", func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(vip.String(), "8080"), 20*time.Millisecond)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			b := make([]byte, 16)
			n, _ := c.Read(b)
			got = string(b[:n])
			return nil
		})
		took = time.Since(start)
		return got == host
	})
	if !answered {
		t.Fatalf("VIP not answered by %s within %v", host, within)
	}
	return took
}

// TestMeasureFailover measures failover in the lab, halb next to keepalived
// with the same settings. Run with HALB_MEASURE=1 go test -run TestMeasureFailover -v ./vrrp
func TestMeasureFailover(t *testing.T) {
	if os.Getenv("HALB_MEASURE") == "" {
		t.Skip("set HALB_MEASURE=1 to measure failover")
	}
	labAvailable(t)
	runs := 3
	if s := os.Getenv("HALB_MEASURE_RUNS"); s != "" {
		runs, _ = strconv.Atoi(s)
	}
	type setting struct {
		name    string
		version int
		ivl     time.Duration
	}
	for _, s := range []setting{{"v2 advert_int 1", 2, time.Second}, {"v3 advert_int 0.1", 3, 100 * time.Millisecond}} {
		for _, impl := range []string{"halb", "halb+fast", "keepalived"} {
			if impl == "keepalived" {
				if _, err := exec.LookPath("keepalived"); err != nil {
					t.Log("keepalived not installed")
					continue
				}
			}
			for _, how := range []string{"kill -9", "SIGTERM"} {
				if impl == "halb+fast" && how != "SIGTERM" {
					continue // fast_handover only changes the planned handover
				}
				var ds []time.Duration
				var fails []int
				for range runs {
					d, f := measureOnce(t, impl, s.version, s.ivl, how)
					ds, fails = append(ds, d), append(fails, f)
				}
				t.Logf("MEASURE %-10s %-18s %-8s: %v failed attempts %v", impl, s.name, how, ds, fails)
			}
		}
	}
}

// measureOnce returns the time to failover and the probe's attempts that got
// no answer meanwhile. The master's listener closes with the signal, as the
// proxy of a killed or stopping node does, so an attempt that still reaches the
// old master fails (refused or timed out) instead of being answered.
func measureOnce(t *testing.T, impl string, version int, ivl time.Duration, how string) (time.Duration, int) {
	t.Helper()
	l, err := netlab.New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := newProbe(t, l)
	defer func() {
		for _, ln := range p.lns {
			ln.Close()
		}
	}()
	var master *node
	var backup *node
	if impl == "halb" || impl == "halb+fast" {
		mc, bc := halbCfg("lb1", 150, version, ivl, ""), halbCfg("lb2", 100, version, ivl, "")
		mc.Instances[0].FastHandover = impl == "halb+fast"
		bc.Instances[0].FastHandover = impl == "halb+fast"
		master = startHalb(t, l, "lb1", mc)
		backup = startHalb(t, l, "lb2", bc)
	} else {
		master = startKeepalived(t, l, "lb1", kaOpts{version: version, prio: 150, interval: ivl, vrid: 51, vip: netlab.VIP1.String()})
		backup = startKeepalived(t, l, "lb2", kaOpts{version: version, prio: 100, interval: ivl, vrid: 51, vip: netlab.VIP1.String()})
	}
	waitVIP(t, l, "lb1", true, 10*ivl+5*time.Second)
	p.until(t, time.Now(), "lb1", 5*time.Second)
	start := time.Now()
	if how == "kill -9" {
		master.kill(syscall.SIGKILL)
	} else {
		master.kill(syscall.SIGTERM)
	}
	p.lns[0].Close()
	d := p.until(t, start, "lb2", 10*ivl+5*time.Second)
	fails := p.fails
	master.kill(syscall.SIGKILL)
	backup.kill(syscall.SIGTERM)
	master.wait(5 * time.Second)
	backup.wait(5 * time.Second)
	return d.Round(time.Millisecond), fails
}

// TestLabAddresser exercises the netlink VIP code and the AF_PACKET
// announcements inside a lab namespace.
func TestLabAddresser(t *testing.T) {
	labAvailable(t)
	l := netlab.NewT(t)
	v4 := VIP{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Dev: "eth0", Label: "eth0:vip", Scope: "global"}
	v6 := VIP{Prefix: netip.MustParsePrefix("2001:db8::10/128"), Dev: "eth0"}
	var a netAddresser
	err := l.Do("lb1", func() error {
		for _, v := range []VIP{v4, v6} {
			if err := a.Add(v); err != nil {
				return err
			}
			if err := a.Add(v); err != nil { // idempotent
				return err
			}
			if has, err := a.Has(v); err != nil || !has {
				return fmt.Errorf("%v not present after Add: %v", v.Prefix, err)
			}
			if err := a.Announce(v, 2); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := l.IP("lb1", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "198.18.0.10/24 brd 198.18.0.255 scope global secondary eth0:vip") ||
		!strings.Contains(out, "2001:db8::10/128 scope global nodad") {
		t.Fatalf("addresses:\n%s", out)
	}
	err = l.Do("lb1", func() error {
		for _, v := range []VIP{v4, v6} {
			if err := a.Del(v); err != nil {
				return err
			}
			if err := a.Del(v); err != nil { // idempotent
				return err
			}
			if has, _ := a.Has(v); has {
				return fmt.Errorf("%v still present", v.Prefix)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
