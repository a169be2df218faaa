package vrrp

import (
	"os/exec"
	"strings"
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
