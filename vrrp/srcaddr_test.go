package vrrp

import (
	"context"
	"halb/internal/netlab"
	"halb/internal/poll"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// fakeAddrs is a watchAddrs whose changes the test makes.
type fakeAddrs struct {
	mu     sync.Mutex
	now    []ifAddr
	update func(ifAddr, bool)
}

func (f *fakeAddrs) watch(done <-chan struct{}, update func(ifAddr, bool)) ([]ifAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.update = update
	return f.now, nil
}

func (f *fakeAddrs) set(a ifAddr, present bool) {
	f.mu.Lock()
	u := f.update
	f.mu.Unlock()
	u(a, present)
}

// TestRouterUnicastSrcMissing: with unicast_src_ip not on the interface the instance is in FAULT
// (keepalived does; halb used to become master and fail every send); it leaves FAULT when the
// address appears there, and goes back when it disappears (an IPv6 link flap removes it).
func TestRouterUnicastSrcMissing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		src := netip.MustParseAddr("198.18.0.1")
		fa := &fakeAddrs{now: []ifAddr{{"eth1", src}, {"eth0", netip.MustParseAddr("198.18.0.77")}}}
		cfg := fakeCfg(150)
		cfg.Instances[0].UnicastSrc = src
		cfg.Instances[0].UnicastPeers = []netip.Addr{netip.MustParseAddr("198.18.0.2")}
		n := &fakeNode{addr: newFakeAddr(), src: src}
		r, err := newRouter(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), cfg, deps{
			open:       func(InstanceConfig, map[netip.Addr]bool) (Conn, error) { return w.open(src), nil },
			addresser:  n.addr,
			watchAddrs: fa.watch,
		})
		if err != nil {
			t.Fatal(err)
		}
		n.r = r
		n.start(t)
		eventually(t, "FAULT at start", func() bool { return n.state() == StateFault })
		if c := n.r.Status()[0].LastTransition.Cause; c != "unicast_src_ip 198.18.0.1 not on eth0" {
			t.Fatalf("cause %q", c)
		}
		// It stays there: several master down intervals (20 ms adverts), no VIP.
		if poll.Until(200*time.Millisecond, 2*time.Millisecond, func() bool { return n.state() != StateFault || n.addr.has(vipP) }) {
			t.Fatalf("left FAULT without its source address: %v", n.state())
		}
		fa.set(ifAddr{"eth0", src}, true)
		eventually(t, "master once the address is there", func() bool { return n.state() == StateMaster && n.addr.has(vipP) })
		fa.set(ifAddr{"eth0", src}, false)
		eventually(t, "FAULT when it goes", func() bool { return n.state() == StateFault && !n.addr.has(vipP) })
		if c := n.r.Status()[0].LastTransition.Cause; !strings.Contains(c, "not on eth0") {
			t.Fatalf("cause %q", c)
		}
		fa.set(ifAddr{"eth0", src}, true)
		eventually(t, "master again", func() bool { return n.state() == StateMaster })
		if err := n.r.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// Without a configured source nothing is tracked, whatever the addresses.
func TestRouterNoSrcNoTracker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		fa := &fakeAddrs{}
		n := &fakeNode{addr: newFakeAddr(), src: netip.MustParseAddr("198.18.0.1")}
		r, err := newRouter(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), fakeCfg(150), deps{
			open:       func(InstanceConfig, map[netip.Addr]bool) (Conn, error) { return w.open(n.src), nil },
			addresser:  n.addr,
			watchAddrs: fa.watch,
		})
		if err != nil {
			t.Fatal(err)
		}
		n.r = r
		n.start(t)
		eventually(t, "master", func() bool { return n.state() == StateMaster })
		if cs := n.r.Status()[0].Contributions; len(cs) != 0 {
			t.Fatalf("contributions %+v", cs)
		}
	})
}

// TestLabUnicastSrcMissing: the real netlink watcher in a lab namespace. lb1's unicast_src_ip is
// not on eth0: FAULT, no VIP, no failing sends; adding it makes lb1 master (its peer is silent).
// Over IPv6 a link flap removes the address: FAULT again until it is added back.
func TestLabUnicastSrcMissing(t *testing.T) {
	labAvailable(t)
	l := netlab.NewT(t)
	c := halbCfg("", 150, 3, 100*time.Millisecond, "")
	c.Instances[0].UnicastSrc = netip.MustParseAddr("198.18.0.50")
	c.Instances[0].UnicastPeers = []netip.Addr{netip.MustParseAddr("198.18.0.2")}
	lb1 := startHalb(t, l, "lb1", c)
	holdsNot(t, l, "lb1", time.Second)
	if _, err := l.IP("lb1", "addr", "add", "198.18.0.50/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	waitVIP(t, l, "lb1", false, 5*time.Second)
	out := lb1.out.String()
	if !strings.Contains(out, "unicast_src_ip 198.18.0.50 not on eth0") || strings.Contains(out, "send advert failed") {
		t.Fatalf("log:\n%s", out)
	}

	// IPv6: the address goes with a link flap and the instance stays in FAULT after the link is
	// back, until the address is.
	c6 := halbCfg("", 150, 3, 100*time.Millisecond, "")
	c6.Instances[0].Name, c6.Instances[0].VRID, c6.Instances[0].Family = "VI_6", 61, 6
	c6.Instances[0].VIPs = []VIP{{Prefix: netip.PrefixFrom(netlab.VIP1v6, 128)}}
	me := l.Host("lb2").IPv6
	c6.Instances[0].UnicastSrc = me.Addr()
	c6.Instances[0].UnicastPeers = []netip.Addr{l.Host("lb1").IPv6.Addr()}
	startHalb(t, l, "lb2", c6)
	waitAddr(t, l, netlab.VIP1v6, "lb2", false, 5*time.Second)
	if err := l.SetLink("lb2", false); err != nil {
		t.Fatal(err)
	}
	if err := l.SetLink("lb2", true); err != nil {
		t.Fatal(err)
	}
	if has, _ := l.HasAddr("lb2", me.Addr()); has {
		t.Skip("this kernel keeps IPv6 addresses over a link flap (keep_addr_on_down)")
	}
	if poll.Until(time.Second, 20*time.Millisecond, func() bool { has, _ := l.HasAddr("lb2", netlab.VIP1v6); return has }) {
		t.Fatal("lb2 holds the IPv6 VIP without its unicast_src_ip")
	}
	if _, err := l.IP("lb2", "addr", "add", me.String(), "dev", "eth0", "nodad"); err != nil {
		t.Fatal(err)
	}
	waitAddr(t, l, netlab.VIP1v6, "lb2", false, 5*time.Second)
}
