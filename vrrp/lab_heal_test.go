package vrrp

import (
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"halb/internal/netlab"
	"halb/internal/poll"
)

// partition drops (on) or accepts again (off) every VRRP packet arriving at host, with an
// nftables table inside the host's namespace only.
func partition(t *testing.T, l *netlab.Lab, host string, on bool) {
	t.Helper()
	var cmd *exec.Cmd
	if on {
		cmd = l.Exec(host, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader("table inet halbheal {\n chain in {\n  type filter hook input priority 0; policy accept;\n  meta l4proto 112 drop\n }\n}\n")
	} else {
		cmd = l.Exec(host, "nft", "delete", "table", "inet", "halbheal")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s (drop %v): %v: %s", host, on, err, out)
	}
}

// neighMAC is the link-layer address the client's neighbour table holds for the VIP ("" if none).
func neighMAC(t *testing.T, l *netlab.Lab) string {
	t.Helper()
	out, err := l.IP("client", "neigh", "show", netlab.VIP1.String(), "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1]
		}
	}
	return ""
}

// TestLabAsymmetricHeal: a partition between lb1 (150) and lb2 (100) makes both masters, and lb2,
// the last to announce itself, owns the client's neighbour entry. The partition heals
// asymmetrically: lb1 hears lb2 1.5 s before lb2 hears lb1. lb1 stays master and must answer
// the lower priority master with its garp_lower_prio_repeat burst; otherwise, once lb2 yields,
// the client keeps sending to lb2's MAC until its neighbour entry is probed again (tens of seconds).
func TestLabAsymmetricHeal(t *testing.T) {
	labAvailable(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) not installed")
	}
	l := netlab.NewT(t)
	p := newProbe(t, l)
	cfg := func(prio uint8) Config {
		c := halbCfg("", prio, 3, 100*time.Millisecond, "")
		// No delayed bursts: only the burst against the lower priority master can move the client.
		c.Instances[0].GARPDelay = 0
		return c
	}
	startHalb(t, l, "lb1", cfg(150))
	startHalb(t, l, "lb2", cfg(100))
	waitVIP(t, l, "lb1", true, 5*time.Second)
	p.until(t, time.Now(), "lb1", 5*time.Second)
	mac1, mac2 := l.Host("lb1").MAC, l.Host("lb2").MAC
	if got := neighMAC(t, l); got != mac1 {
		t.Fatalf("client's entry for the VIP: %q, want lb1's %s", got, mac1)
	}

	partition(t, l, "lb1", true)
	partition(t, l, "lb2", true)
	waitVIP(t, l, "lb2", false, 5*time.Second)
	if !poll.Until(3*time.Second, 10*time.Millisecond, func() bool { return neighMAC(t, l) == mac2 }) {
		t.Fatalf("lb2's gratuitous ARP did not move the client during the partition: %q", neighMAC(t, l))
	}
	if has, _ := l.HasAddr("lb1", netlab.VIP1); !has {
		t.Fatal("lb1 left master during the partition")
	}

	// lb1 hears lb2 first; for 1.5 s lb2 still hears nobody. lb1 must stay master throughout.
	partition(t, l, "lb1", false)
	if poll.Until(1500*time.Millisecond, 20*time.Millisecond, func() bool {
		has, _ := l.HasAddr("lb1", netlab.VIP1)
		return !has
	}) {
		t.Fatal("lb1 (150) gave up the VIP on hearing lb2 (100)")
	}
	partition(t, l, "lb2", false)
	waitVIP(t, l, "lb1", true, 3*time.Second)
	if got := neighMAC(t, l); got != mac1 {
		t.Fatalf("right after the heal the client's entry for the VIP is %q (lb2 %s), want lb1's %s", got, mac2, mac1)
	}
	// And traffic reaches lb1 at once, not after the neighbour entry's reprobe.
	d := p.until(t, time.Now(), "lb1", 500*time.Millisecond)
	t.Logf("after the heal the VIP is answered by lb1 within %v", d)
}

// TestLabKeepalivedInteropIPv6Unicast: halb and keepalived 2.2.7 paired over unicast IPv6. keepalived
// sends unicast IPv6 adverts with hop limit 64; halb must accept them (the TTL rule applies to
// multicast only), so that exactly one of the two holds the VIP, in both priority orders, and
// killing the winner moves the VIP.
func TestLabKeepalivedInteropIPv6Unicast(t *testing.T) {
	labAvailable(t)
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("keepalived not installed")
	}
	ivl := 250 * time.Millisecond
	for _, halbHigh := range []bool{true, false} {
		t.Run(map[bool]string{true: "halb high", false: "keepalived high"}[halbHigh], func(t *testing.T) {
			l := netlab.NewT(t)
			hp, kp := 150, 100
			if !halbHigh {
				hp, kp = 100, 150
			}
			me, peer := l.Host("lb1").IPv6.Addr(), l.Host("lb2").IPv6.Addr()
			ka := startKeepalived(t, l, "lb2", kaOpts{version: 3, prio: kp, interval: ivl, vrid: 51, vip: netlab.VIP1v6.String(),
				unicastSrc: peer.String(), peers: []string{me.String()}})
			c := halbCfg("", uint8(hp), 3, ivl, "")
			c.Instances[0].Family = 6
			c.Instances[0].VIPs = []VIP{{Prefix: netip.PrefixFrom(netlab.VIP1v6, 128)}}
			c.Instances[0].UnicastSrc, c.Instances[0].UnicastPeers = me, []netip.Addr{peer}
			hb := startHalb(t, l, "lb1", c)
			winner, loser, wn := "lb1", "lb2", hb
			if !halbHigh {
				winner, loser, wn = "lb2", "lb1", ka
			}
			waitAddr(t, l, netlab.VIP1v6, winner, true, 10*time.Second)
			// The loser never holds the VIP once the winner is known (two masters for good
			// was the defect).
			if poll.Until(8*ivl, 20*time.Millisecond, func() bool {
				has, _ := l.HasAddr(loser, netlab.VIP1v6)
				return has
			}) {
				t.Fatalf("%s holds the VIP next to %s", loser, winner)
			}
			wn.kill(syscall.SIGKILL)
			wn.wait(5 * time.Second)
			waitAddr(t, l, netlab.VIP1v6, loser, false, 10*time.Second)
		})
	}
}
