package vrrp

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func TestVMACAddressAndNames(t *testing.T) {
	if s := VMAC(51, 4).String(); s != "00:00:5e:00:01:33" {
		t.Fatal(s)
	}
	if s := VMAC(255, 6).String(); s != "00:00:5e:00:02:ff" {
		t.Fatal(s)
	}
	ic := InstanceConfig{Interface: "eth0", VRID: 7, UseVMAC: true, VIPs: []VIP{{}, {Dev: "eth0"}, {Dev: "eth1"}}}
	if vmacName(ic) != "vrrp.7" || sockIf(ic) != "vrrp.7" {
		t.Fatal(vmacName(ic), sockIf(ic))
	}
	ic6 := ic
	ic6.Family = 6
	if vmacName(ic6) != "vrrp6.7" {
		t.Fatal(vmacName(ic6))
	}
	named := ic
	named.VMACName = "vip0"
	if vmacName(named) != "vip0" {
		t.Fatal(vmacName(named))
	}
	base := ic
	base.VMACXmitBase = true
	if sockIf(base) != "eth0" {
		t.Fatal("vmac_xmit_base: socket on the base interface")
	}
	uni := ic
	uni.UnicastPeers = []netip.Addr{netip.MustParseAddr("198.18.0.2")}
	if sockIf(uni) != "eth0" {
		t.Fatal("unicast forces vmac_xmit_base")
	}
	// VIPs of the instance's interface go on the VMAC interface; others stay.
	d := withDefaults(ic)
	if got := []string{d.VIPs[0].Dev, d.VIPs[1].Dev, d.VIPs[2].Dev}; !slices.Equal(got, []string{"vrrp.7", "vrrp.7", "eth1"}) {
		t.Fatal(got)
	}
	if sockIf(InstanceConfig{Interface: "eth0"}) != "eth0" {
		t.Fatal("no vmac")
	}
}

type fakeVMAC struct {
	mu     sync.Mutex
	live   map[string]bool
	events []string
}

func (f *fakeVMAC) create(cfg InstanceConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[vmacName(cfg)] = true
	f.events = append(f.events, "create "+vmacName(cfg))
	return nil
}

func (f *fakeVMAC) remove(cfg InstanceConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.live, vmacName(cfg))
	f.events = append(f.events, "remove "+vmacName(cfg))
	return nil
}

// TestRouterVMACLifecycle: the VMAC interface exists from Start to Stop, the VIP goes on it, and a
// reload that turns use_vmac off removes it.
func TestRouterVMACLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		fv := &fakeVMAC{live: map[string]bool{}}
		n := &fakeNode{addr: newFakeAddr(), src: netip.MustParseAddr("198.18.0.1")}
		var opened []string
		var mu sync.Mutex
		cfg := fakeCfg(150)
		cfg.Instances[0].UseVMAC = true
		r, err := newRouter(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), cfg, deps{
			open: func(ic InstanceConfig, _ map[netip.Addr]bool) (Conn, error) {
				mu.Lock()
				opened = append(opened, sockIf(ic))
				mu.Unlock()
				return w.open(n.src), nil
			},
			addresser: n.addr,
			vmac:      fv,
		})
		if err != nil {
			t.Fatal(err)
		}
		n.r = r
		n.start(t)
		eventually(t, "master", func() bool { return n.state() == StateMaster })
		if !fv.live["vrrp.51"] || opened[0] != "vrrp.51" {
			t.Fatalf("vmac %v, socket on %v", fv.live, opened)
		}
		has, _ := n.addr.Has(VIP{Prefix: vipP, Dev: "vrrp.51"})
		if !has {
			t.Fatal("VIP not added")
		}
		off := fakeCfg(150)
		if err := r.Apply(off); err != nil {
			t.Fatal(err)
		}
		eventually(t, "vmac removed on reload", func() bool {
			fv.mu.Lock()
			defer fv.mu.Unlock()
			return !fv.live["vrrp.51"]
		})
		if err := r.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		if err := r.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		fv.mu.Lock()
		defer fv.mu.Unlock()
		if want := []string{"create vrrp.51", "remove vrrp.51", "create vrrp.51", "remove vrrp.51"}; !slices.Equal(fv.events, want) {
			t.Fatalf("events %v, want %v", fv.events, want)
		}
	})
}
