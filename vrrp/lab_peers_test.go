package vrrp

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"halb/internal/netlab"
	"halb/internal/poll"
)

// spoofer sends valid priority-255 VRRPv3 adverts for VRID 51 from the client namespace, as
// anyone on the segment can.
func spoofer(t *testing.T, l *netlab.Lab) func() {
	t.Helper()
	var c net.PacketConn
	var ifi *net.Interface
	if err := l.Do("client", func() (err error) {
		if ifi, err = net.InterfaceByName("eth0"); err != nil {
			return err
		}
		c, err = net.ListenPacket("ip4:112", "0.0.0.0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := ipv4.NewPacketConn(c)
	if err := p.SetMulticastTTL(255); err != nil {
		t.Fatal(err)
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		t.Fatal(err)
	}
	src := l.Host("client").IPv4.Addr()
	a := Advert{Version: 3, VRID: 51, Priority: 255, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{netlab.VIP1}}
	b, err := a.Marshal(src, GroupV4())
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := p.WriteTo(b, nil, &net.IPAddr{IP: GroupV4().AsSlice()}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLabVRRPPeersSpoof: a priority-255 advert from the client makes an unguarded master yield
// (RFC behaviour, keepalived too); with vrrp_peers naming the two load balancers it is dropped
// and the master stays.
func TestLabVRRPPeersSpoof(t *testing.T) {
	labAvailable(t)
	for _, guarded := range []bool{false, true} {
		t.Run(map[bool]string{false: "open", true: "vrrp_peers"}[guarded], func(t *testing.T) {
			l := netlab.NewT(t)
			c := halbCfg("", 150, 3, 100*time.Millisecond, "")
			if guarded {
				c.Instances[0].AllowedPeers = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/30")}
			}
			startHalb(t, l, "lb1", c)
			waitVIP(t, l, "lb1", true, 5*time.Second)
			send := spoofer(t, l)
			lost := poll.Until(1500*time.Millisecond, 50*time.Millisecond, func() bool {
				send()
				has, _ := l.HasAddr("lb1", netlab.VIP1)
				return !has
			})
			if guarded && lost {
				t.Fatal("lb1 yielded to a spoofed advert from outside vrrp_peers")
			}
			if !guarded && !lost {
				t.Fatal("the unguarded master did not yield: the spoofer does not reach it, so the guarded case proves nothing")
			}
		})
	}
}

// TestLabAnnounceMovesNeighbour: the gratuitous ARP (mdlayher/arp) and the unsolicited NA with
// the override flag (mdlayher/ndp) move a client's existing neighbour entries to the sender.
func TestLabAnnounceMovesNeighbour(t *testing.T) {
	labAvailable(t)
	l := netlab.NewT(t)
	const stale = "02:00:00:00:00:99"
	vips := []VIP{
		{Prefix: netip.PrefixFrom(netlab.VIP1, 32), Dev: "eth0"},
		{Prefix: netip.PrefixFrom(netlab.VIP1v6, 128), Dev: "eth0"},
	}
	for _, v := range vips {
		if _, err := l.IP("client", "neigh", "replace", v.Prefix.Addr().String(), "lladdr", stale, "dev", "eth0", "nud", "stale"); err != nil {
			t.Fatal(err)
		}
	}
	var a netAddresser
	if err := l.Do("lb1", func() error {
		for _, v := range vips {
			if err := a.Add(v); err != nil {
				return err
			}
			if err := a.Announce(v, 2); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := l.Host("lb1").MAC
	for _, v := range vips {
		var got string
		if !poll.Until(2*time.Second, 10*time.Millisecond, func() bool {
			out, _ := l.IP("client", "neigh", "show", v.Prefix.Addr().String(), "dev", "eth0")
			f := strings.Fields(out)
			got = ""
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "lladdr" {
					got = f[i+1]
				}
			}
			return got == want
		}) {
			t.Fatalf("client's entry for %v: %q, want lb1's %s", v.Prefix.Addr(), got, want)
		}
	}
}
