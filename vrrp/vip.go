package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addresser adds and removes addresses and announces them; the real one uses
// netlink and AF_PACKET, tests use a fake.
type Addresser interface {
	Add(v VIP) error
	Del(v VIP) error
	// Has reports whether the address is on its device now.
	Has(v VIP) (bool, error)
	// Announce sends count gratuitous ARPs (IPv4) or unsolicited neighbour
	// advertisements with the override flag (IPv6) for v.
	Announce(v VIP, count int) error
}

// netAddresser is the Linux Addresser.
type netAddresser struct{}

func scopeOf(s string) (netlink.Scope, error) {
	switch s {
	case "", "global":
		return netlink.SCOPE_UNIVERSE, nil
	case "site":
		return netlink.SCOPE_SITE, nil
	case "link":
		return netlink.SCOPE_LINK, nil
	case "host":
		return netlink.SCOPE_HOST, nil
	case "nowhere":
		return netlink.SCOPE_NOWHERE, nil
	}
	return 0, fmt.Errorf("unknown scope %q", s)
}

func nlAddr(v VIP) (*netlink.Addr, error) {
	sc, err := scopeOf(v.Scope)
	if err != nil {
		return nil, err
	}
	a := &netlink.Addr{
		IPNet: &net.IPNet{IP: v.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(v.Prefix.Bits(), v.Prefix.Addr().BitLen())},
		Label: v.Label,
		Scope: int(sc),
	}
	if v.Brd.IsValid() {
		a.Broadcast = v.Brd.AsSlice()
	}
	if v.Prefix.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a, nil
}

func (netAddresser) Add(v VIP) error {
	link, err := netlink.LinkByName(v.Dev)
	if err != nil {
		return fmt.Errorf("vrrp: add VIP %v: %w", v.Prefix, err)
	}
	a, err := nlAddr(v)
	if err != nil {
		return fmt.Errorf("vrrp: add VIP %v: %w", v.Prefix, err)
	}
	if err := netlink.AddrAdd(link, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("vrrp: add VIP %v dev %s: %w", v.Prefix, v.Dev, err)
	}
	return nil
}

func (netAddresser) Del(v VIP) error {
	link, err := netlink.LinkByName(v.Dev)
	if err != nil {
		return fmt.Errorf("vrrp: delete VIP %v: %w", v.Prefix, err)
	}
	a, err := nlAddr(v)
	if err != nil {
		return fmt.Errorf("vrrp: delete VIP %v: %w", v.Prefix, err)
	}
	if err := netlink.AddrDel(link, a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("vrrp: delete VIP %v dev %s: %w", v.Prefix, v.Dev, err)
	}
	return nil
}

func (netAddresser) Has(v VIP) (bool, error) {
	link, err := netlink.LinkByName(v.Dev)
	if err != nil {
		return false, fmt.Errorf("vrrp: list addresses: %w", err)
	}
	fam := netlink.FAMILY_V4
	if v.Prefix.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, fam)
	if err != nil {
		return false, fmt.Errorf("vrrp: list addresses of %s: %w", v.Dev, err)
	}
	for _, a := range addrs {
		if ad, ok := netip.AddrFromSlice(a.IP); ok && ad.Unmap() == v.Prefix.Addr() {
			return true, nil
		}
	}
	return false, nil
}

func (netAddresser) Announce(v VIP, count int) error {
	if count <= 0 {
		return nil
	}
	ifi, err := net.InterfaceByName(v.Dev)
	if err != nil {
		return fmt.Errorf("vrrp: announce %v: %w", v.Prefix, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil // no Ethernet: nothing to announce
	}
	var frame []byte
	var proto int
	if v.Prefix.Addr().Is4() {
		frame, err = garpFrame(ifi.HardwareAddr, v.Prefix.Addr())
		proto = unix.ETH_P_ARP
	} else {
		frame, err = unsolicitedNA(ifi.HardwareAddr, v.Prefix.Addr())
		proto = unix.ETH_P_IPV6
	}
	if err != nil {
		return err
	}
	c, err := packet.Listen(ifi, packet.Raw, proto, nil)
	if err != nil {
		return fmt.Errorf("vrrp: announce %v: %w", v.Prefix, err)
	}
	defer c.Close()
	dst := &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])}
	for range count {
		if _, err := c.WriteTo(frame, dst); err != nil {
			return fmt.Errorf("vrrp: announce %v on %s: %w", v.Prefix, v.Dev, err)
		}
	}
	return nil
}

// garpFrame is a gratuitous ARP request (sender = target = ip) broadcast
// from mac, as keepalived sends.
func garpFrame(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, ip, ethernet.Broadcast, ip)
	if err != nil {
		return nil, fmt.Errorf("vrrp: encode ARP: %w", err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("vrrp: encode ARP: %w", err)
	}
	f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: mac, EtherType: ethernet.EtherTypeARP, Payload: pb}
	b, err := f.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("vrrp: encode ARP: %w", err)
	}
	return b, nil
}

// allNodes is ff02::1 and its Ethernet group address.
var (
	allNodes    = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 1})
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
)

// unsolicitedNA is an unsolicited neighbour advertisement for ip with the
// override flag and ip's link-layer address, to all nodes, from ip itself, hop limit 255.
func unsolicitedNA(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	icmp, err := ndp.MarshalMessageChecksum(na, ip, allNodes)
	if err != nil {
		return nil, fmt.Errorf("vrrp: encode NA: %w", err)
	}
	ip6 := make([]byte, 40, 40+len(icmp))
	ip6[0] = 6 << 4
	binary.BigEndian.PutUint16(ip6[4:6], uint16(len(icmp)))
	ip6[6] = 58 // ICMPv6
	ip6[7] = 255
	src, dst := ip.As16(), allNodes.As16()
	copy(ip6[8:24], src[:])
	copy(ip6[24:40], dst[:])
	f := &ethernet.Frame{Destination: allNodesMAC, Source: mac, EtherType: ethernet.EtherTypeIPv6, Payload: append(ip6, icmp...)}
	b, err := f.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("vrrp: encode NA: %w", err)
	}
	return b, nil
}
