package bgp

import (
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// inNewNetns runs f on a thread moved into a fresh network namespace, so that the test touches
// no interface of the host.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // the thread dies with its namespace: never unlocked
		ns, err := netns.New()
		if err != nil {
			t.Errorf("new netns: %v", err)
			return
		}
		defer ns.Close()
		f()
	}()
	<-done
}

func TestLocalVIPs(t *testing.T) {
	for _, name := range []string{"", "lo"} {
		t.Run("interface="+name, func(t *testing.T) { testLocalVIPs(t, name) })
	}
}

func testLocalVIPs(t *testing.T, name string) {
	inNewNetns(t, func() {
		l := NewLocalVIPs(nil, name)
		a, b := netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("2001:db8::10")
		lo, _ := netlink.LinkByName("lo")
		_ = netlink.LinkSetUp(lo)
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: netlink.NewIPNet([]byte{198, 18, 0, 99})}); err != nil {
			t.Fatal(err)
		}
		addrs := func() []netip.Addr {
			ln, err := netlink.LinkByName(l.Name())
			if err != nil {
				return nil
			}
			list, _ := netlink.AddrList(ln, netlink.FAMILY_ALL)
			var out []netip.Addr
			for _, x := range list {
				ip, _ := netip.AddrFromSlice(x.IP)
				if ip = ip.Unmap(); !ip.IsLinkLocalUnicast() && !ip.IsLoopback() && ip != netip.MustParseAddr("198.18.0.99") {
					out = append(out, ip.Unmap())
				}
			}
			slices.SortFunc(out, netip.Addr.Compare)
			return out
		}
		if err := l.Set(nil); err != nil {
			t.Errorf("empty set without the interface: %v", err)
		}
		if _, err := netlink.LinkByName(DefaultInterface); err == nil {
			t.Errorf("an empty set created the interface")
		}
		keep := func() {
			t.Helper()
			list, _ := netlink.AddrList(lo, netlink.FAMILY_V4)
			if !slices.ContainsFunc(list, func(x netlink.Addr) bool { return x.IP.String() == "198.18.0.99" }) {
				t.Errorf("an address of lo that is not halb's was removed")
			}
		}
		if err := l.Set([]netip.Addr{b, a}); err != nil {
			t.Fatalf("set: %v", err)
		}
		if got := addrs(); !slices.Equal(got, []netip.Addr{a, b}) {
			t.Errorf("addresses %v", got)
		}
		if err := l.Set([]netip.Addr{b}); err != nil {
			t.Fatalf("set: %v", err)
		}
		if got := addrs(); !slices.Equal(got, []netip.Addr{b}) {
			t.Errorf("after removal: %v", got)
		}
		keep()
		if err := l.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		keep()
		if got := addrs(); len(got) != 0 {
			t.Errorf("addresses left after Close: %v", got)
		}
		if _, err := netlink.LinkByName(DefaultInterface); err == nil {
			t.Errorf("interface left after Close")
		}
		if name == "lo" {
			return
		}
		// Someone else's interface of the same name is not taken over.
		if err := netlink.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: DefaultInterface}}); err != nil {
			t.Fatal(err)
		}
		l = NewLocalVIPs(nil, "")
		if err := l.Set([]netip.Addr{a}); err == nil {
			t.Errorf("an ifb named %s was used", DefaultInterface)
		}
	})
}
