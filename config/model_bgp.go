package config

import (
	"net/netip"
	"time"
)

// Defaults of the bgp block. They agree with package bgp's (a daemon test checks).
const (
	DefaultBGPHoldTime  = 90 * time.Second
	DefaultBGPDrainTime = 3 * time.Second
	DefaultBGPInterface = "halb0"
	minBGPHoldTime      = 3 * time.Second // RFC 4271: at least 3 s (0, no keepalives, is not offered)
)

// BGP is the top-level bgp block: halb's BGP speaker, which announces VIPs to routers for ECMP.
type BGP struct {
	Pos        Pos           `json:"pos"`
	RouterID   netip.Addr    `json:"router_id"`
	LocalAS    uint32        `json:"local_as"`
	ListenPort int           `json:"listen_port"`   // 0: halb does not listen (it connects), unless a neighbor is passive
	Interface  string        `json:"vip_interface"` // where announced VIPs are made local: a dummy halb owns, or lo
	DrainTime  time.Duration `json:"drain_time"`    // SIGTERM: withdraw, wait this long, then close the listeners
	// Announce holds the default attributes of every announcement (community, med, as_path_prepend).
	Announce     BGPAnnounce    `json:"announce"`
	Neighbors    []*BGPNeighbor `json:"neighbors"`
	VIPs         []BGPVIP       `json:"vips"`         // bgp_vip: announced with no virtual_server
	TrackScripts []Track        `json:"track_script"` // a failing vrrp_script withdraws every prefix
}

// BGPNeighbor is one neighbor block inside bgp.
type BGPNeighbor struct {
	Pos       Pos           `json:"pos"`
	Addr      netip.Addr    `json:"addr"`
	RemoteAS  uint32        `json:"remote_as"`
	Port      int           `json:"port"`      // 0: 179
	HoldTime  time.Duration `json:"hold_time"` // keepalive = hold_time / 3
	Password  string        `json:"password"`  // TCP MD5
	Passive   bool          `json:"passive"`
	SourceIP  netip.Addr    `json:"source_address"`
	Multihop  int           `json:"ebgp_multihop"` // 0: directly connected
	HasRemote bool          `json:"-"`
}

// BGPAnnounce is how a prefix is announced: bgp_announce in a virtual_server, the defaults of
// the bgp block, or the options of a bgp_vip line. Unset fields take the bgp block's values.
type BGPAnnounce struct {
	Pos         Pos      `json:"pos"`
	Communities []uint32 `json:"communities"` // AS<<16 | VALUE
	MED         uint32   `json:"med"`
	HasMED      bool     `json:"has_med"`
	Prepend     int      `json:"as_path_prepend"`
	HasPrepend  bool     `json:"has_prepend"`
}

// BGPVIP is one address of a bgp_vip line.
type BGPVIP struct {
	Addr     netip.Addr  `json:"addr"`
	Announce BGPAnnounce `json:"announce"`
}

// Merge returns a with the unset fields taken from def.
func (a BGPAnnounce) Merge(def BGPAnnounce) BGPAnnounce {
	if a.Communities == nil {
		a.Communities = def.Communities
	}
	if !a.HasMED {
		a.MED, a.HasMED = def.MED, def.HasMED
	}
	if !a.HasPrepend {
		a.Prepend, a.HasPrepend = def.Prepend, def.HasPrepend
	}
	return a
}
