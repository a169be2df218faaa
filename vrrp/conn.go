package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Conn is the transport of one instance: raw IP protocol 112 on one
// interface. Tests substitute a fake.
type Conn interface {
	// Send sends one VRRP message to dst with TTL / hop limit 255.
	Send(payload []byte, dst netip.Addr) error
	// Recv blocks for the next packet; it fails once the Conn is closed.
	Recv(buf []byte) (Received, error)
	// Source is the IP source address of our adverts.
	Source() netip.Addr
	Close() error
}

// rawConn is the Linux transport over golang.org/x/net/ipv4 and ipv6.
type rawConn struct {
	ifi *net.Interface
	src netip.Addr
	p4  *ipv4.PacketConn
	p6  *ipv6.PacketConn
	c   net.PacketConn
}

// openConn opens a raw protocol-112 socket bound to ifname. With multicast
// it joins the VRRP group on that interface. src, when valid, is the
// advert source (unicast_src_ip / mcast_src_ip); otherwise the interface's
// primary IPv4 address or IPv6 link-local address, excluding the VIPs.
func openConn(ifname string, family int, src netip.Addr, multicast bool, exclude map[netip.Addr]bool) (_ *rawConn, err error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp: open %s: %w", ifname, err)
	}
	if !src.IsValid() {
		src, err = primaryAddr(ifi, family, exclude)
		if err != nil {
			return nil, err
		}
	}
	network, laddr := "ip4:112", "0.0.0.0"
	if family == 6 {
		network, laddr = "ip6:112", "::"
	}
	c, err := net.ListenPacket(network, laddr)
	if err != nil {
		return nil, fmt.Errorf("vrrp: listen %s on %s: %w", network, ifname, err)
	}
	rc := &rawConn{ifi: ifi, src: src, c: c}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if err := bindToDevice(c, ifname); err != nil {
		return nil, err
	}
	if family == 4 {
		p := ipv4.NewPacketConn(c)
		rc.p4 = p
		err = errors.Join(
			p.SetTTL(255),
			p.SetMulticastTTL(255),
			p.SetMulticastInterface(ifi),
			p.SetMulticastLoopback(false),
			p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true))
		if err == nil && multicast {
			err = p.JoinGroup(ifi, &net.IPAddr{IP: GroupV4().AsSlice()})
		}
	} else {
		p := ipv6.NewPacketConn(c)
		rc.p6 = p
		err = errors.Join(
			p.SetChecksum(true, 6),
			p.SetHopLimit(255),
			p.SetMulticastHopLimit(255),
			p.SetMulticastInterface(ifi),
			p.SetMulticastLoopback(false),
			p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true))
		if err == nil && multicast {
			err = p.JoinGroup(ifi, &net.IPAddr{IP: GroupV6().AsSlice()})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("vrrp: socket options on %s: %w", ifname, err)
	}
	return rc, nil
}

func bindToDevice(c net.PacketConn, ifname string) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("vrrp: bind to device: not a syscall.Conn")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("vrrp: bind to device: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
	}); err != nil {
		return fmt.Errorf("vrrp: bind to device: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("vrrp: bind to device %s: %w", ifname, serr)
	}
	return nil
}

// primaryAddr picks the advert source: the first IPv4 address of the
// interface, or its IPv6 link-local address, skipping VIPs.
func primaryAddr(ifi *net.Interface, family int, exclude map[netip.Addr]bool) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ad, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ad = ad.Unmap()
		if exclude[ad] {
			continue
		}
		if family == 4 && ad.Is4() {
			return ad, nil
		}
		if family == 6 && ad.Is6() && ad.IsLinkLocalUnicast() {
			return ad.WithZone(""), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("vrrp: %s has no IPv%d source address", ifi.Name, family)
}

func (c *rawConn) Source() netip.Addr { return c.src }

func (c *rawConn) Send(payload []byte, dst netip.Addr) error {
	da := &net.IPAddr{IP: dst.AsSlice()}
	var err error
	if c.p4 != nil {
		_, err = c.p4.WriteTo(payload, &ipv4.ControlMessage{Src: c.src.AsSlice(), IfIndex: c.ifi.Index}, da)
	} else {
		if dst.IsLinkLocalMulticast() || dst.IsLinkLocalUnicast() {
			da.Zone = c.ifi.Name
		}
		_, err = c.p6.WriteTo(payload, &ipv6.ControlMessage{Src: c.src.AsSlice(), IfIndex: c.ifi.Index, HopLimit: 255}, da)
	}
	if err != nil {
		return fmt.Errorf("vrrp: write advert to %v: %w", dst, err)
	}
	return nil
}

func (c *rawConn) Recv(buf []byte) (Received, error) {
	r := Received{TTL: -1}
	var src net.Addr
	var n int
	var err error
	if c.p4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, src, err = c.p4.ReadFrom(buf)
		if cm != nil {
			r.TTL = cm.TTL
			r.Dst, _ = netip.AddrFromSlice(cm.Dst)
			r.Dst = r.Dst.Unmap()
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, src, err = c.p6.ReadFrom(buf)
		if cm != nil {
			r.TTL = cm.HopLimit
			r.Dst, _ = netip.AddrFromSlice(cm.Dst)
		}
	}
	if err != nil {
		return r, fmt.Errorf("vrrp: read: %w", err)
	}
	if ia, ok := src.(*net.IPAddr); ok {
		r.Src, _ = netip.AddrFromSlice(ia.IP)
		r.Src = r.Src.Unmap()
	}
	r.Payload = buf[:n]
	return r, nil
}

func (c *rawConn) Close() error { return c.c.Close() }
