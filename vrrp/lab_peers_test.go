package vrrp

import (
	"net"
	"net/netip"
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
