// Package vrrp implements a VRRP speaker: the packet codec (VRRPv2, RFC 3768,
// and VRRPv3, RFC 5798, for IPv4 and IPv6), a pure state machine, the socket
// transport, the virtual addresses on the interface and their gratuitous
// ARP / unsolicited neighbour advertisements, tracking and notify scripts.
package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// IPProto is the IP protocol number of VRRP.
const IPProto = 112

// GroupV4 is the VRRP IPv4 multicast group, 224.0.0.18.
func GroupV4() netip.Addr { return netip.AddrFrom4([4]byte{224, 0, 0, 18}) }

// GroupV6 is the VRRP IPv6 multicast group, ff02::12.
func GroupV6() netip.Addr { return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x12}) }

// AuthType is the VRRPv2 authentication type (RFC 3768 §5.3.6).
type AuthType uint8

// Authentication types of VRRPv2. VRRPv3 has none.
const (
	AuthNone AuthType = 0
	AuthPass AuthType = 1 // simple text password, 8 octets
	AuthAH   AuthType = 2 // IP Authentication Header: refused by halb
)

func (a AuthType) String() string {
	switch a {
	case AuthNone:
		return "none"
	case AuthPass:
		return "PASS"
	case AuthAH:
		return "AH"
	}
	return fmt.Sprintf("auth(%d)", uint8(a))
}

// Advert is one decoded or to-be-encoded VRRP advertisement.
type Advert struct {
	Version  int // 2 or 3
	VRID     uint8
	Priority uint8
	// Interval is the advertisement interval: whole seconds in v2 (1..255 s),
	// centiseconds in v3 (10 ms .. 40.95 s).
	Interval time.Duration
	Addrs    []netip.Addr
	AuthType AuthType // v2 only
	AuthData [8]byte  // v2 only; the PASS password, zero-padded
}

const (
	typeAdvert = 1
	hdrLen     = 8
	v2AuthLen  = 8
)

// PassData returns the 8-octet authentication data for a PASS password
// (truncated to 8 octets and zero-padded, as keepalived does).
func PassData(pass string) [8]byte {
	var d [8]byte
	copy(d[:], pass)
	return d
}

// Marshal encodes a into wire format (the VRRP payload of the IP packet).
// src and dst are the IP source and destination, used by the VRRPv3
// pseudo-header checksum; v2 ignores them.
func (a *Advert) Marshal(src, dst netip.Addr) ([]byte, error) {
	return a.AppendMarshal(nil, src, dst)
}

// AppendMarshal is Marshal appending to b.
func (a *Advert) AppendMarshal(b []byte, src, dst netip.Addr) ([]byte, error) {
	if len(a.Addrs) == 0 || len(a.Addrs) > 255 {
		return nil, fmt.Errorf("vrrp: marshal: %d addresses (want 1..255)", len(a.Addrs))
	}
	is6 := a.Addrs[0].Is6() && !a.Addrs[0].Is4In6()
	for _, ad := range a.Addrs {
		if (ad.Is6() && !ad.Is4In6()) != is6 {
			return nil, fmt.Errorf("vrrp: marshal: mixed address families")
		}
	}
	start := len(b)
	var ivl byte
	var ivl3 uint16
	switch a.Version {
	case 2:
		if is6 {
			return nil, fmt.Errorf("vrrp: marshal: VRRPv2 carries IPv4 only")
		}
		s := a.Interval / time.Second
		if s < 1 || s > 255 || a.Interval%time.Second != 0 {
			return nil, fmt.Errorf("vrrp: marshal: v2 interval %v not whole seconds 1..255", a.Interval)
		}
		ivl = byte(s)
	case 3:
		cs := a.Interval / (10 * time.Millisecond)
		if cs < 1 || cs > 0xfff {
			return nil, fmt.Errorf("vrrp: marshal: v3 interval %v out of range 10ms..40.95s", a.Interval)
		}
		ivl3 = uint16(cs)
	default:
		return nil, fmt.Errorf("vrrp: marshal: version %d", a.Version)
	}
	b = append(b, byte(a.Version)<<4|typeAdvert, a.VRID, a.Priority, byte(len(a.Addrs)))
	if a.Version == 2 {
		b = append(b, byte(a.AuthType), ivl, 0, 0)
	} else {
		b = append(b, byte(ivl3>>8), byte(ivl3), 0, 0)
	}
	for _, ad := range a.Addrs {
		if is6 {
			s := ad.As16()
			b = append(b, s[:]...)
		} else {
			s := ad.Unmap().As4()
			b = append(b, s[:]...)
		}
	}
	if a.Version == 2 {
		if a.AuthType == AuthPass {
			b = append(b, a.AuthData[:]...)
		} else {
			b = append(b, make([]byte, v2AuthLen)...)
		}
	}
	pkt := b[start:]
	var cs uint16
	if a.Version == 2 {
		cs = checksum(pkt, 0)
	} else {
		cs = checksum(pkt, pseudoSum(src, dst, len(pkt)))
	}
	binary.BigEndian.PutUint16(pkt[6:8], cs)
	return b, nil
}

// pseudoSum is the one's-complement partial sum of the IPv4 or IPv6
// pseudo-header for protocol 112 (RFC 5798 §5.2.8).
func pseudoSum(src, dst netip.Addr, length int) uint32 {
	var s uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	if src.Is4() || src.Is4In6() {
		a, d := src.Unmap().As4(), dst.Unmap().As4()
		add(a[:])
		add(d[:])
		s += IPProto
		s += uint32(length)
		return s
	}
	a, d := src.As16(), dst.As16()
	add(a[:])
	add(d[:])
	s += uint32(length >> 16)
	s += uint32(length & 0xffff)
	s += IPProto
	return s
}

// checksum is the Internet checksum of b (with its checksum field as it is)
// starting from the partial sum s.
func checksum(b []byte, s uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// DropReason says why a received packet was dropped. DropNone means accepted.
type DropReason uint8

// Drop reasons, counted per instance.
const (
	DropNone         DropReason = iota
	DropTTL                     // multicast: TTL / hop limit not 255; unicast: outside the peer's min_ttl..max_ttl
	DropShort                   // shorter than the VRRP header
	DropVersion                 // version not the configured one
	DropType                    // type not 1 (advertisement)
	DropVRID                    // VRID not configured here
	DropLength                  // address count inconsistent with length
	DropChecksum                // bad checksum
	DropAuthType                // auth type differs from the configured one
	DropAuthFail                // PASS password mismatch
	DropAuthAH                  // AH authentication: not supported
	DropInterval                // v2: advert interval differs from ours (RFC 3768 §7.1)
	DropFamily                  // address family differs from the instance's
	DropZeroInterval            // advertisement interval 0
	DropOwn                     // our own packet looped back
	DropNotPeer                 // unicast: source is not a configured peer
	DropNotAllowed              // source in none of the vrrp_peers prefixes
	numDropReasons
)

func (d DropReason) String() string {
	switch d {
	case DropNone:
		return "none"
	case DropTTL:
		return "ttl"
	case DropShort:
		return "short"
	case DropVersion:
		return "version"
	case DropType:
		return "type"
	case DropVRID:
		return "vrid"
	case DropLength:
		return "length"
	case DropChecksum:
		return "checksum"
	case DropAuthType:
		return "auth_type"
	case DropAuthFail:
		return "auth_fail"
	case DropAuthAH:
		return "auth_ah"
	case DropInterval:
		return "interval"
	case DropFamily:
		return "family"
	case DropZeroInterval:
		return "zero_interval"
	case DropOwn:
		return "own"
	case DropNotPeer:
		return "not_peer"
	case DropNotAllowed:
		return "not_allowed"
	}
	return fmt.Sprintf("drop(%d)", uint8(d))
}

// DropReasons lists every reason but DropNone, for exporting counters.
func DropReasons() []DropReason {
	r := make([]DropReason, 0, numDropReasons-1)
	for d := DropNone + 1; d < numDropReasons; d++ {
		r = append(r, d)
	}
	return r
}

// Filter is what a receiver expects; Decode drops anything else.
type Filter struct {
	Version  int
	VRID     uint8 // 0: any VRID (the caller demultiplexes)
	AuthType AuthType
	AuthData [8]byte
	// Interval, when non-zero for v2, must match the advert's interval.
	Interval time.Duration
	// Unicast: the instance uses unicast peers. keepalived's rule: TTL / hop limit 255 is
	// required for multicast only; a unicast advert's TTL is checked against the peer's
	// min_ttl / max_ttl by the caller (keepalived itself sends unicast IPv6 with hop limit 64).
	Unicast bool
}

// Received is one packet as read from the socket.
type Received struct {
	Payload []byte     // the VRRP message
	Src     netip.Addr // IP source
	Dst     netip.Addr // IP destination
	TTL     int        // IP TTL or IPv6 hop limit; -1 if unknown
}

// Decode decodes and validates a received VRRP message strictly against f.
// On any problem it returns the reason; the Advert is only valid with DropNone.
func Decode(r Received, f Filter) (Advert, DropReason) {
	var a Advert
	b := r.Payload
	if !f.Unicast && r.TTL != 255 {
		return a, DropTTL
	}
	if len(b) < hdrLen {
		return a, DropShort
	}
	a.Version = int(b[0] >> 4)
	if a.Version != f.Version {
		return a, DropVersion
	}
	if b[0]&0xf != typeAdvert {
		return a, DropType
	}
	a.VRID = b[1]
	if f.VRID != 0 && a.VRID != f.VRID {
		return a, DropVRID
	}
	a.Priority = b[2]
	n := int(b[3])
	is6 := r.Src.Is6() && !r.Src.Is4In6()
	alen := 4
	if is6 {
		alen = 16
		if a.Version == 2 {
			return a, DropFamily
		}
	}
	want := hdrLen + n*alen
	if a.Version == 2 {
		want += v2AuthLen
	}
	if n == 0 || len(b) != want {
		return a, DropLength
	}
	if a.Version == 2 {
		if checksum(b, 0) != 0 {
			return a, DropChecksum
		}
	} else if checksum(b, pseudoSum(r.Src, r.Dst, len(b))) != 0 {
		return a, DropChecksum
	}
	if a.Version == 2 {
		a.AuthType = AuthType(b[4])
		if a.AuthType == AuthAH {
			return a, DropAuthAH
		}
		if a.AuthType != f.AuthType {
			return a, DropAuthType
		}
		copy(a.AuthData[:], b[want-v2AuthLen:])
		if a.AuthType == AuthPass && a.AuthData != f.AuthData {
			return a, DropAuthFail
		}
		a.Interval = time.Duration(b[5]) * time.Second
	} else {
		a.Interval = time.Duration(binary.BigEndian.Uint16(b[4:6])&0xfff) * 10 * time.Millisecond
	}
	if a.Interval == 0 {
		return a, DropZeroInterval
	}
	if a.Version == 2 && f.Interval != 0 && a.Interval != f.Interval {
		return a, DropInterval
	}
	a.Addrs = make([]netip.Addr, n)
	for i := range n {
		p := b[hdrLen+i*alen:]
		if is6 {
			a.Addrs[i] = netip.AddrFrom16([16]byte(p[:16]))
		} else {
			a.Addrs[i] = netip.AddrFrom4([4]byte(p[:4]))
		}
	}
	return a, DropNone
}
