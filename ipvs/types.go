// Package ipvs programs the Linux kernel's IP Virtual Server (LVS) tables over
// generic netlink: virtual services (address:port or firewall mark), their
// destinations (real servers), schedulers, persistence and forwarding methods
// (NAT, DR, TUN).
//
// The package is split the usual way: a pure core (the message codec in
// codec.go and the reconcile planner Plan) and thin shells (NetlinkTable, the
// Reconciler loop, ApplyRealServer). A FakeTable stands in for the kernel in
// tests.
package ipvs

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Proto is a virtual service's transport protocol (the IP protocol number).
type Proto uint16

// Protocols IPVS balances.
const (
	TCP  Proto = 6
	UDP  Proto = 17
	SCTP Proto = 132
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto(%d)", uint16(p))
}

// Family is an address family (AF_INET or AF_INET6 numbers).
type Family uint16

// Address families.
const (
	IPv4 Family = 2  // AF_INET
	IPv6 Family = 10 // AF_INET6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("family(%d)", uint16(f))
}

// Bits is the address length in bits (32 or 128; 0 for an unknown family).
func (f Family) Bits() int {
	switch f {
	case IPv4:
		return 32
	case IPv6:
		return 128
	}
	return 0
}

func familyOf(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return IPv4
	}
	if a.Is6() {
		return IPv6
	}
	return 0
}

// Method is a destination's forwarding method, the kernel's
// IP_VS_CONN_F_FWD_MASK bits. The zero value is NAT (masquerading), as in the
// kernel.
type Method uint32

// Forwarding methods (IP_VS_CONN_F_MASQ, _LOCALNODE, _TUNNEL, _DROUTE).
const (
	NAT   Method = 0 // IP_VS_CONN_F_MASQ: lb_kind NAT
	Local Method = 1 // IP_VS_CONN_F_LOCALNODE: set by the kernel for local destinations
	TUN   Method = 2 // IP_VS_CONN_F_TUNNEL: lb_kind TUN (IP-in-IP)
	DR    Method = 3 // IP_VS_CONN_F_DROUTE: lb_kind DR (direct routing)
)

// String gives ipvsadm's name for the method (Masq, Local, Tunnel, Route).
func (m Method) String() string {
	switch m {
	case NAT:
		return "Masq"
	case Local:
		return "Local"
	case TUN:
		return "Tunnel"
	case DR:
		return "Route"
	}
	return fmt.Sprintf("method(%d)", uint32(m))
}

// Service flags (IP_VS_SVC_F_*).
const (
	FlagPersistent uint32 = 0x0001 // IP_VS_SVC_F_PERSISTENT
	FlagHashed     uint32 = 0x0002 // IP_VS_SVC_F_HASHED: kernel-internal, ignored when comparing
	FlagOnePacket  uint32 = 0x0004 // IP_VS_SVC_F_ONEPACKET: one-packet scheduling (UDP)
	FlagSched1     uint32 = 0x0008 // IP_VS_SVC_F_SCHED1 (sh: fallback, mh: fallback)
	FlagSched2     uint32 = 0x0010 // IP_VS_SVC_F_SCHED2 (sh, mh: use port)
	FlagSched3     uint32 = 0x0020 // IP_VS_SVC_F_SCHED3
)

// KnownScheduler reports whether name is a scheduler of the mainline kernel
// (module ip_vs_NAME). Names are passed to the kernel unchanged either way; the
// check only lets a config validator warn about typos.
func KnownScheduler(name string) bool {
	switch name {
	case "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos":
		return true
	}
	return false
}

// DefaultScheduler is used when Service.Scheduler is empty (ipvsadm's default).
const DefaultScheduler = "wlc"

// Service is one IPVS virtual service: either Addr+Protocol or FWMark.
type Service struct {
	Addr     netip.AddrPort // virtual address and port; zero for a fwmark service
	Protocol Proto          // TCP, UDP or SCTP; ignored for a fwmark service
	FWMark   uint32         // firewall-mark service when non-zero
	Family   Family         // IPv4 or IPv6; taken from Addr when zero (required for fwmark services other than IPv4)

	Scheduler string        // rr, wrr, lc, wlc, lblc, lblcr, sh, dh, mh, sed, nq...; DefaultScheduler when empty
	Flags     uint32        // extra IP_VS_SVC_F_* flags; FlagPersistent is implied by Timeout > 0
	Timeout   time.Duration // persistence_timeout (whole seconds); 0: no persistence
	Netmask   int           // persistence_granularity as a prefix length; 0: host (32 or 128)

	Dests []Dest

	Stats Stats // read back from the kernel only
}

// Stats are IPVS's counters for a service or destination (IPVS_STATS_ATTR_*):
// totals since creation and rates over the last seconds. In DR and TUN the
// director never sees the replies: OutPkts and OutBytes stay 0.
type Stats struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64 // totals
	CPS, InPPS, OutPPS, InBPS, OutBPS         uint64 // per second
}

// Dest is one destination (real server) of a service.
type Dest struct {
	Addr       netip.AddrPort
	Weight     int
	Method     Method // NAT (zero value), DR or TUN
	UThreshold uint32 // upper connection threshold (0: none)
	LThreshold uint32 // lower connection threshold

	// InhibitOnFailure is read by the Reconciler only: when the destination is
	// reported down (SetHealth) it stays in the table with weight 0 instead of
	// being removed (keepalived's inhibit_on_failure).
	InhibitOnFailure bool

	// Read back from the kernel only.
	ActiveConns, InactConns, PersistConns uint32
	Stats                                 Stats
}

// ServiceKey identifies a service the way the kernel does.
type ServiceKey struct {
	Family   Family
	Protocol Proto // 0 for fwmark services
	Addr     netip.AddrPort
	FWMark   uint32
}

func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		if k.Family == IPv6 {
			return fmt.Sprintf("FWM %d IPv6", k.FWMark)
		}
		return fmt.Sprintf("FWM %d", k.FWMark)
	}
	return fmt.Sprintf("%s %s", k.Protocol, k.Addr)
}

// family returns the service's address family.
func (s *Service) family() Family {
	if s.Family != 0 {
		return s.Family
	}
	if s.FWMark == 0 {
		return familyOf(s.Addr.Addr())
	}
	return IPv4
}

func unmapPort(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// Key returns the identity of the service.
func (s Service) Key() ServiceKey {
	k := ServiceKey{Family: s.family()}
	if s.FWMark != 0 {
		k.FWMark = s.FWMark
		return k
	}
	k.Protocol = s.Protocol
	k.Addr = unmapPort(s.Addr)
	return k
}

// String is "TCP 198.18.0.1:80" or "FWM 7".
func (s Service) String() string { return s.Key().String() }

// effFlags are the flags the kernel should have, without FlagHashed.
func (s *Service) effFlags() uint32 {
	f := s.Flags &^ FlagHashed
	if s.Timeout > 0 {
		f |= FlagPersistent
	}
	return f
}

func (s *Service) netmaskBits() int {
	if s.Netmask <= 0 || s.Netmask > s.family().Bits() {
		return s.family().Bits()
	}
	return s.Netmask
}

func (s *Service) scheduler() string {
	if s.Scheduler == "" {
		return DefaultScheduler
	}
	return s.Scheduler
}

func (s *Service) timeoutSeconds() uint32 {
	if s.Timeout <= 0 {
		return 0
	}
	sec := (s.Timeout + time.Second - 1) / time.Second // round up: 1ms of persistence is 1s, not none
	return uint32(min(sec, 1<<32-1))
}

// Normalize returns the service as the kernel reports it back: family,
// scheduler and netmask filled in, FlagPersistent set from Timeout, addresses
// unmapped, destinations sorted. It is what the Reconciler compares.
func (s Service) Normalize() Service {
	n := s
	n.Family = s.family()
	n.Scheduler = s.scheduler()
	n.Flags = s.effFlags()
	n.Timeout = time.Duration(s.timeoutSeconds()) * time.Second
	n.Netmask = s.netmaskBits()
	if s.FWMark != 0 {
		n.Addr = netip.AddrPort{}
		n.Protocol = 0
	} else {
		n.Addr = unmapPort(s.Addr)
	}
	n.Dests = make([]Dest, len(s.Dests))
	for i, d := range s.Dests {
		d.Addr = unmapPort(d.Addr)
		n.Dests[i] = d
	}
	slices.SortFunc(n.Dests, func(a, b Dest) int { return a.Addr.Compare(b.Addr) })
	return n
}

// Validate reports what the kernel would refuse, with the service named.
func (s Service) Validate() error {
	k := s.Key()
	switch {
	case s.FWMark == 0 && !s.Addr.Addr().IsValid():
		return fmt.Errorf("ipvs: service %s: no address and no fwmark", k)
	case s.FWMark == 0 && s.Protocol != TCP && s.Protocol != UDP && s.Protocol != SCTP:
		return fmt.Errorf("ipvs: service %s: unsupported protocol %d", k, uint16(s.Protocol))
	case k.Family != IPv4 && k.Family != IPv6:
		return fmt.Errorf("ipvs: service %s: unsupported family %d", k, uint16(k.Family))
	case s.FWMark == 0 && familyOf(s.Addr.Addr()) != k.Family:
		return fmt.Errorf("ipvs: service %s: address family does not match %s", k, k.Family)
	case len(s.scheduler()) >= 16:
		return fmt.Errorf("ipvs: service %s: scheduler name %q too long", k, s.Scheduler)
	case s.Netmask < 0 || s.Netmask > k.Family.Bits():
		return fmt.Errorf("ipvs: service %s: persistence netmask /%d out of range", k, s.Netmask)
	case s.Timeout < 0:
		return fmt.Errorf("ipvs: service %s: negative persistence timeout", k)
	}
	seen := make(map[netip.AddrPort]bool, len(s.Dests))
	for _, d := range s.Dests {
		a := unmapPort(d.Addr)
		switch {
		case !a.Addr().IsValid():
			return fmt.Errorf("ipvs: service %s: destination without address", k)
		case seen[a]:
			return fmt.Errorf("ipvs: service %s: destination %s listed twice", k, a)
		case d.Weight < 0:
			return fmt.Errorf("ipvs: service %s: destination %s: negative weight", k, a)
		case d.Method != NAT && d.Method != DR && d.Method != TUN && d.Method != Local:
			return fmt.Errorf("ipvs: service %s: destination %s: unknown forwarding method %d", k, a, uint32(d.Method))
		case familyOf(a.Addr()) != k.Family && d.Method != TUN:
			return fmt.Errorf("ipvs: service %s: destination %s: mixed address families need TUN", k, a)
		}
		seen[a] = true
	}
	return nil
}

func compareKeys(a, b ServiceKey) int {
	return cmp.Or(
		cmp.Compare(a.FWMark, b.FWMark),
		cmp.Compare(a.Family, b.Family),
		cmp.Compare(a.Protocol, b.Protocol),
		a.Addr.Compare(b.Addr),
	)
}

// sortServices orders services by key (fwmark services last) for stable output.
func sortServices(svcs []Service) {
	slices.SortFunc(svcs, func(a, b Service) int { return compareKeys(a.Key(), b.Key()) })
}

// MarshalText writes the key as String does ("TCP 198.18.0.1:80",
// "FWM 7 IPv6"), so that a set of owned keys can be kept in a state file.
func (k ServiceKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses what MarshalText wrote.
func (k *ServiceKey) UnmarshalText(b []byte) error {
	f := strings.Fields(string(b))
	bad := fmt.Errorf("ipvs: parse service key %q", b)
	switch {
	case len(f) >= 2 && len(f) <= 3 && f[0] == "FWM":
		m, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil || m == 0 {
			return bad
		}
		fam := IPv4
		if len(f) == 3 {
			if f[2] != "IPv6" {
				return bad
			}
			fam = IPv6
		}
		*k = ServiceKey{Family: fam, FWMark: uint32(m)}
		return nil
	case len(f) == 2:
		var p Proto
		switch f[0] {
		case "TCP":
			p = TCP
		case "UDP":
			p = UDP
		case "SCTP":
			p = SCTP
		default:
			return bad
		}
		ap, err := netip.ParseAddrPort(f[1])
		if err != nil {
			return bad
		}
		ap = unmapPort(ap)
		*k = ServiceKey{Family: familyOf(ap.Addr()), Protocol: p, Addr: ap}
		return nil
	}
	return bad
}
