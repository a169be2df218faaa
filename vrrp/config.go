package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// VIP is one virtual address (keepalived's virtual_ipaddress entry).
type VIP struct {
	Prefix netip.Prefix // address and prefix length (keepalived's default is /32, /128)
	Dev    string       // interface; empty: the instance's interface
	Label  string       // IPv4 label ("eth0:vip"); must start with the device name
	Brd    netip.Addr   // IPv4 broadcast; zero: computed by the kernel library
	Scope  string       // "global" (default), "site", "link", "host"
}

// TrackScriptRef is a track_script entry of an instance.
type TrackScriptRef struct {
	Name      string
	Weight    int
	WeightSet bool // Weight and Reverse override the script's
	Reverse   bool
}

// TrackIf is a track_interface entry. Weight 0: the instance goes FAULT
// when the link is down; otherwise keepalived's weight rule applies.
type TrackIf struct {
	Name   string
	Weight int
}

// InstanceConfig is one vrrp_instance.
type InstanceConfig struct {
	Name      string
	Interface string
	VRID      uint8
	Priority  uint8 // 1..255; 255 is the address owner
	AdvertInt time.Duration
	Version   int // 2 or 3; 0 means 2 (keepalived's default)
	Family    int // 4 or 6; 0 means 4
	AuthType  AuthType
	AuthPass  string
	VIPs      []VIP
	Excluded  []VIP // virtual_ipaddress_excluded: managed like VIPs, not advertised

	UnicastSrc   netip.Addr
	UnicastPeers []netip.Addr
	// UnicastPeerTTL bounds the TTL / hop limit of a unicast peer's adverts (unicast_peer's
	// min_ttl / max_ttl); peers not listed: any.
	UnicastPeerTTL []PeerTTL
	// AllowedPeers (vrrp_peers): when set, adverts whose source is in none of these prefixes
	// are dropped (DropNotAllowed), multicast or unicast.
	AllowedPeers []netip.Prefix
	McastSrc     netip.Addr

	NoPreempt    bool
	PreemptDelay time.Duration
	StartState   State // StateMaster or StateBackup (keepalived "state")

	TrackScripts    []TrackScriptRef
	TrackFiles      []TrackFileRef
	TrackProcs      []TrackProcRef
	TrackInterfaces []TrackIf

	Notify, NotifyMaster, NotifyBackup, NotifyFault, NotifyStop string

	GARPDelay         time.Duration // garp_master_delay (keepalived default 5 s)
	GARPRepeat        int           // garp_master_repeat (default 5)
	GARPRefresh       time.Duration // garp_master_refresh (default 0: off)
	GARPRefreshRepeat int           // garp_master_refresh_repeat (default 1)
	// GARPLowerPrioRepeat (garp_lower_prio_repeat): the burst a master sends when it hears a
	// lower priority master; 0: GARPRepeat (keepalived's default); negative: none.
	GARPLowerPrioRepeat int
	// GARPLowerPrioDelay (garp_lower_prio_delay): the second such burst after this delay;
	// 0: GARPDelay (keepalived's default); negative: none.
	GARPLowerPrioDelay   time.Duration
	LowerPrioNoAdvert    bool // lower_prio_no_advert
	HigherPrioSendAdvert bool // higher_prio_send_advert
	DontTrackPrimary     bool
	// FastHandover: take over at once on a priority-0 advert (two-node pairs; see MachineConfig).
	FastHandover bool
	// UseVMAC (use_vmac [NAME]): the VIPs of the instance's interface go on a macvlan
	// interface NAME (default vrrp.VRID, vrrp6.VRID for IPv6) with the VRRP virtual MAC, and
	// adverts are sent from it, unless VMACXmitBase (vmac_xmit_base; forced with unicast).
	UseVMAC      bool
	VMACName     string
	VMACXmitBase bool
}

// PeerTTL is the accepted TTL / hop limit range of one unicast peer.
type PeerTTL struct {
	Peer     netip.Addr
	Min, Max int
}

// ScriptConfig is one vrrp_script.
type ScriptConfig struct {
	Name     string
	Script   string // command line, split on blanks; quotes group words
	Interval time.Duration
	Timeout  time.Duration
	Weight   int
	Reverse  bool // weight ... reverse: see scriptState
	Rise     int
	Fall     int
	User     string
	InitFail bool
}

// SyncGroupConfig is one vrrp_sync_group.
type SyncGroupConfig struct {
	Name                                                        string
	Members                                                     []string
	Notify, NotifyMaster, NotifyBackup, NotifyFault, NotifyStop string
}

// Config is everything the VRRP part of halb runs.
type Config struct {
	Instances []InstanceConfig
	Scripts   []ScriptConfig
	Files     []FileConfig
	Procs     []ProcConfig
	TrackPoll time.Duration // how often tracked files and processes are looked at (0: 1 s)
	// OnTransition, when set, is told of every state change of every instance, from the
	// instance's goroutine; it must return quickly and must not call into the Router.
	OnTransition   func(instance string, to State) `json:"-"`
	SyncGroups     []SyncGroupConfig
	ScriptUser     string // default user of scripts (global_defs script_user)
	ScriptSecurity bool   // enable_script_security: refuse scripts writable by others
	// NotifyTimeout bounds notify scripts; 0 means 30 s.
	NotifyTimeout time.Duration
}

func (c InstanceConfig) version() int {
	if c.Version == 0 {
		return 2
	}
	return c.Version
}

func (c InstanceConfig) family() int {
	if c.Family == 0 {
		return 4
	}
	return c.Family
}

type instKey struct {
	Interface string
	VRID      uint8
	Family    int
}

func (c InstanceConfig) key() instKey { return instKey{c.Interface, c.VRID, c.family()} }

// validate checks what the state machine and transport rely on. config
// validates the file; this guards programmatic use.
func (c *Config) validate() error {
	var errs []error
	names := map[string]bool{}
	keys := map[instKey]string{}
	scripts := map[string]bool{}
	for _, s := range c.Scripts {
		scripts[s.Name] = true
		if s.Script == "" {
			errs = append(errs, fmt.Errorf("vrrp_script %s: empty script", s.Name))
		}
	}
	for i := range c.Instances {
		in := &c.Instances[i]
		e := func(f string, a ...any) {
			errs = append(errs, fmt.Errorf("vrrp_instance %s: "+f, append([]any{in.Name}, a...)...))
		}
		if names[in.Name] {
			e("duplicate name")
		}
		names[in.Name] = true
		if o, ok := keys[in.key()]; ok {
			e("same interface, VRID and family as %s", o)
		}
		keys[in.key()] = in.Name
		if in.Interface == "" {
			e("no interface")
		}
		if in.VRID == 0 {
			e("virtual_router_id must be 1..255")
		}
		if in.Priority == 0 {
			e("priority must be 1..255")
		}
		v := in.version()
		if v != 2 && v != 3 {
			e("version %d", v)
		}
		f := in.family()
		if f != 4 && f != 6 {
			e("family %d", f)
		}
		if v == 2 && f == 6 {
			e("VRRPv2 carries IPv4 only; use version 3 for IPv6")
		}
		if v == 2 && (in.AdvertInt < time.Second || in.AdvertInt%time.Second != 0 || in.AdvertInt > 255*time.Second) {
			e("advert_int %v: VRRPv2 needs whole seconds 1..255", in.AdvertInt)
		}
		if v == 3 && (in.AdvertInt < 10*time.Millisecond || in.AdvertInt > 40950*time.Millisecond) {
			e("advert_int %v out of 0.01..40.95 s", in.AdvertInt)
		}
		if v == 3 && in.AuthType != AuthNone {
			e("VRRPv3 has no authentication")
		}
		if in.AuthType == AuthAH {
			e("auth_type AH is not supported")
		}
		if len(in.VIPs) == 0 {
			e("no virtual_ipaddress")
		}
		for _, vip := range append(append([]VIP(nil), in.VIPs...), in.Excluded...) {
			if !vip.Prefix.IsValid() {
				e("invalid VIP")
				continue
			}
			if (vip.Prefix.Addr().Is4()) != (f == 4) && vip.Dev == "" {
				e("VIP %v is not IPv%d", vip.Prefix, f)
			}
		}
		for _, ts := range in.TrackScripts {
			if !scripts[ts.Name] {
				e("track_script %s: no such vrrp_script", ts.Name)
			}
		}
		for _, tp := range in.TrackProcs {
			if !slices.ContainsFunc(c.Procs, func(p ProcConfig) bool { return p.Name == tp.Name }) {
				e("track_process %s: no such vrrp_track_process", tp.Name)
			}
		}
		for _, tf := range in.TrackFiles {
			if !slices.ContainsFunc(c.Files, func(f FileConfig) bool { return f.Name == tf.Name }) {
				e("track_file %s: no such vrrp_track_file", tf.Name)
			}
		}
	}
	for _, g := range c.SyncGroups {
		for _, m := range g.Members {
			if !names[m] {
				errs = append(errs, fmt.Errorf("vrrp_sync_group %s: no instance %s", g.Name, m))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vrrp: config: %w", err)
	}
	return nil
}
