package vrrp

import (
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"
)

// recvInstance is an instance shell with a fake conn, for feeding receive directly.
func recvInstance(t *testing.T, ic InstanceConfig) *instance {
	t.Helper()
	w := &wire{}
	src := netip.MustParseAddr("2001:db8::1")
	if ic.Family != 6 {
		src = netip.MustParseAddr("198.18.0.1")
	}
	return newInstance(zap.NewNop(), ic, w.open(src), newFakeAddr(), &notifier{log: zap.NewNop()}, instanceHooks{})
}

func advertFrom(t *testing.T, version int, src, dst netip.Addr, vip netip.Addr, ttl int) Received {
	t.Helper()
	a := Advert{Version: version, VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{vip}}
	b, err := a.Marshal(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	return Received{Payload: b, Src: src, Dst: dst, TTL: ttl}
}

// TestReceiveTTLRule: keepalived's rule. Multicast adverts need TTL / hop limit 255; unicast
// adverts are checked only against the peer's min_ttl / max_ttl, so keepalived's unicast IPv6
// adverts (hop limit 64) are accepted (TestLabKeepalivedInteropIPv6Unicast runs the pair).
func TestReceiveTTLRule(t *testing.T) {
	vip6 := netip.MustParseAddr("2001:db8::10")
	me6, peer6, other6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3")
	ll := netip.MustParseAddr("fe80::2")
	base := InstanceConfig{Name: "V6", Interface: "eth0", VRID: 51, Priority: 100, AdvertInt: time.Second, Version: 3, Family: 6,
		VIPs: []VIP{{Prefix: netip.PrefixFrom(vip6, 128)}}}
	uni := base
	uni.UnicastSrc, uni.UnicastPeers = me6, []netip.Addr{peer6, other6}
	uni.UnicastPeerTTL = []PeerTTL{{Peer: other6, Min: 250, Max: 255}}
	cases := []struct {
		name string
		ic   InstanceConfig
		r    Received
		want DropReason
	}{
		{"multicast 255", base, advertFrom(t, 3, ll, GroupV6(), vip6, 255), DropNone},
		{"multicast 64", base, advertFrom(t, 3, ll, GroupV6(), vip6, 64), DropTTL},
		{"multicast 254", base, advertFrom(t, 3, ll, GroupV6(), vip6, 254), DropTTL},
		{"unicast 64 (keepalived IPv6)", uni, advertFrom(t, 3, peer6, me6, vip6, 64), DropNone},
		{"unicast 1", uni, advertFrom(t, 3, peer6, me6, vip6, 1), DropNone},
		{"unicast min_ttl 250: 249", uni, advertFrom(t, 3, other6, me6, vip6, 249), DropTTL},
		{"unicast min_ttl 250: 250", uni, advertFrom(t, 3, other6, me6, vip6, 250), DropNone},
		{"unicast not a peer", uni, advertFrom(t, 3, netip.MustParseAddr("2001:db8::9"), me6, vip6, 255), DropNotPeer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := recvInstance(t, c.ic)
			_, ok := in.receive(c.r)
			got := DropNone
			for why, n := range in.snapshot().Counters.Dropped {
				if n > 0 {
					got = why
				}
			}
			if got != c.want || ok != (c.want == DropNone) {
				t.Fatalf("accepted %v, drop %v; want %v", ok, got, c.want)
			}
		})
	}
	// IPv4 unicast with max_ttl: the TTL rule applies to v2 too.
	v4 := InstanceConfig{Name: "V4", Interface: "eth0", VRID: 51, Priority: 100, AdvertInt: time.Second, Version: 2,
		VIPs: []VIP{{Prefix: netip.MustParsePrefix("198.18.0.10/32")}}, UnicastSrc: netip.MustParseAddr("198.18.0.1"),
		UnicastPeers: []netip.Addr{netip.MustParseAddr("198.18.0.2")}, UnicastPeerTTL: []PeerTTL{{Peer: netip.MustParseAddr("198.18.0.2"), Min: 0, Max: 64}}}
	in := recvInstance(t, v4)
	if _, ok := in.receive(advertFrom(t, 2, netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.10"), 255)); ok {
		t.Fatal("TTL 255 above max_ttl 64 accepted")
	}
	if _, ok := in.receive(advertFrom(t, 2, netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.10"), 64)); !ok {
		t.Fatal("TTL 64 refused")
	}
}

// TestReceiveAllowedPeers: vrrp_peers refuses a valid advert (even priority 255) from a source in
// none of the prefixes, and counts it as not_allowed.
func TestReceiveAllowedPeers(t *testing.T) {
	vip := netip.MustParseAddr("198.18.0.10")
	ic := InstanceConfig{Name: "V4", Interface: "eth0", VRID: 51, Priority: 100, AdvertInt: time.Second, Version: 3,
		VIPs: []VIP{{Prefix: netip.PrefixFrom(vip, 32)}}, AllowedPeers: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/30")}}
	in := recvInstance(t, ic)
	if _, ok := in.receive(advertFrom(t, 3, netip.MustParseAddr("198.18.0.2"), GroupV4(), vip, 255)); !ok {
		t.Fatal("allowed peer refused")
	}
	attacker := advertFrom(t, 3, netip.MustParseAddr("198.18.0.66"), GroupV4(), vip, 255)
	attacker.Payload[2] = 255 // priority 255 (the checksum below is recomputed)
	a := Advert{Version: 3, VRID: 51, Priority: 255, Interval: time.Second, Addrs: []netip.Addr{vip}}
	attacker.Payload, _ = a.Marshal(attacker.Src, attacker.Dst)
	if _, ok := in.receive(attacker); ok {
		t.Fatal("priority 255 advert from outside vrrp_peers accepted")
	}
	if n := in.snapshot().Counters.Dropped[DropNotAllowed]; n != 1 {
		t.Fatalf("not_allowed drops %d", n)
	}
	if DropNotAllowed.String() != "not_allowed" {
		t.Fatal(DropNotAllowed.String())
	}
}
