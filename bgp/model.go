package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Defaults a neighbor gets when the config leaves them out.
const (
	DefaultHoldTime     = 90 * time.Second // RFC 4271's suggestion; halb's lab uses 3 s
	DefaultConnectRetry = 5 * time.Second
	// DefaultIdleHold is the back-off after a session was reset by an error (a NOTIFICATION, a
	// hold timer expiry): GoBGP stays idle this long before it connects again.
	DefaultIdleHold = 5 * time.Second
	// DefaultDrain is how long halb waits, on SIGTERM, between withdrawing its routes and closing
	// its listeners: long enough for the routers to converge and move new flows elsewhere.
	DefaultDrain = 3 * time.Second
)

// Config is the speaker's configuration: who we are and whom we talk to.
type Config struct {
	RouterID netip.Addr
	LocalAS  uint32
	// ListenPort is the port halb accepts BGP sessions on; 0: no listener (halb connects out),
	// unless a neighbor is passive, then 179.
	ListenPort int
	Neighbors  []Neighbor
}

// Neighbor is one BGP peer.
type Neighbor struct {
	Addr      netip.Addr
	RemoteAS  uint32
	Port      uint16        // remote port; 0: 179
	HoldTime  time.Duration // 0: DefaultHoldTime; at least 3 s; the keepalive interval is a third of it
	Password  string        // TCP MD5 signature (RFC 2385); "" = none
	Passive   bool          // wait for the peer to connect
	LocalAddr netip.Addr    // source address; zero: the kernel's choice
	Multihop  int           // eBGP multihop TTL; 0: directly connected (TTL 1)
}

// Keepalive is the neighbor's keepalive interval: a third of the hold time in whole seconds (BGP
// counts seconds), at least 1 s.
func (n Neighbor) Keepalive() time.Duration {
	return max((n.hold() / 3).Truncate(time.Second), time.Second)
}

func (n Neighbor) hold() time.Duration {
	if n.HoldTime <= 0 {
		return DefaultHoldTime
	}
	return n.HoldTime
}

// Route is one prefix halb announces, with its path attributes.
type Route struct {
	Prefix      netip.Prefix
	Communities []uint32 // RFC 1997 communities, (AS<<16 | value)
	MED         uint32
	HasMED      bool
	Prepend     int // extra copies of the local AS in the AS path (for active/backup over BGP)
}

// HostRoute is the /32 or /128 of a VIP.
func HostRoute(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

// Equal reports whether r and o announce the same thing.
func (r Route) Equal(o Route) bool {
	return r.Prefix == o.Prefix && slices.Equal(r.Communities, o.Communities) &&
		r.MED == o.MED && r.HasMED == o.HasMED && r.Prepend == o.Prepend
}

// Community formats a community as "AS:VALUE".
func Community(c uint32) string { return fmt.Sprintf("%d:%d", c>>16, c&0xffff) }

// Session is the state of one neighbor, for `halb ctl show bgp` and metrics.
type Session struct {
	Neighbor    netip.Addr `json:"neighbor"`
	RemoteAS    uint32     `json:"remote_as"`
	State       string     `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Up          bool       `json:"up"`
	Since       time.Time  `json:"since"` // last state change
	Flaps       uint32     `json:"flaps"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt time.Time  `json:"last_error_at,omitzero"`
	Accepted    int        `json:"received"` // prefixes received from the peer
}

// Status is what the speaker reports: its sessions and the routes it announces.
type Status struct {
	RouterID  netip.Addr `json:"router_id"`
	LocalAS   uint32     `json:"local_as"`
	Sessions  []Session  `json:"sessions"`
	Announced []Route    `json:"announced"`
}
