package config

import (
	"net/netip"
	"strings"
	"time"
)

// VRRPExtra holds an instance's keywords for meeting another master, the unicast TTL rule and
// the advert source allow-list (embedded in Instance).
type VRRPExtra struct {
	// GarpLowerPrioDelay and GarpLowerPrioRepeat (garp_lower_prio_delay, garp_lower_prio_repeat):
	// a master that hears a lower priority master sends this many gratuitous ARPs / NAs at once
	// and again after the delay (0: no second burst). Defaults: the global vrrp_garp_lower_prio_*,
	// which default to vrrp_garp_master_delay and vrrp_garp_master_repeat; 0 with vrrp_strict.
	GarpLowerPrioDelay  time.Duration `json:"garp_lower_prio_delay"`
	GarpLowerPrioRepeat int           `json:"garp_lower_prio_repeat"`
	// LowerPrioNoAdvert: no advert in answer to a lower priority master (RFC behaviour).
	LowerPrioNoAdvert bool `json:"lower_prio_no_advert"`
	// HigherPrioSendAdvert: one advert with our priority before yielding to a higher one.
	HigherPrioSendAdvert bool `json:"higher_prio_send_advert"`
	// CheckUnicastSrc is keepalived's check_unicast_src; halb always refuses unicast adverts
	// whose source is not a unicast_peer, so this only records the keyword.
	CheckUnicastSrc bool `json:"check_unicast_src"`
	// UnicastPeerTTL: the min_ttl / max_ttl options of unicast_peer entries.
	UnicastPeerTTL []PeerTTL `json:"unicast_peer_ttl,omitempty"`
	// VRRPPeers (halb's vrrp_peers): adverts are accepted only from sources in these prefixes.
	VRRPPeers []netip.Prefix `json:"vrrp_peers,omitempty"`

	lowerDelaySet, lowerRepeatSet, noAdvertSet, higherSet, checkSrcSet bool
}

// PeerTTL is the accepted TTL / hop limit range of one unicast peer (keepalived's min_ttl,
// max_ttl; defaults 0 and 255).
type PeerTTL struct {
	Peer netip.Addr `json:"peer"`
	Min  int        `json:"min_ttl"`
	Max  int        `json:"max_ttl"`
}

// GlobalVRRPExtra holds the global_defs defaults of VRRPExtra (embedded in Global).
type GlobalVRRPExtra struct {
	VRRPGarpLowerPrioDelay   time.Duration `json:"vrrp_garp_lower_prio_delay"`
	VRRPGarpLowerPrioRepeat  int           `json:"vrrp_garp_lower_prio_repeat"`
	VRRPLowerPrioNoAdvert    bool          `json:"vrrp_lower_prio_no_advert"`
	VRRPHigherPrioSendAdvert bool          `json:"vrrp_higher_prio_send_advert"`
	VRRPCheckUnicastSrc      bool          `json:"vrrp_check_unicast_src"`

	lowerDelaySet, lowerRepeatSet bool
}

func withVRRPExtraGlobal(t table[Global]) table[Global] {
	t["vrrp_garp_lower_prio_delay"] = func(b *builder, g *Global, n *node) {
		b.seconds(n, &g.VRRPGarpLowerPrioDelay)
		g.GlobalVRRPExtra.lowerDelaySet = true
	}
	t["vrrp_garp_lower_prio_repeat"] = func(b *builder, g *Global, n *node) {
		b.integer(n, &g.VRRPGarpLowerPrioRepeat, 0, 1<<20)
		g.GlobalVRRPExtra.lowerRepeatSet = true
	}
	t["vrrp_lower_prio_no_advert"] = func(b *builder, g *Global, n *node) { b.flag(n, &g.VRRPLowerPrioNoAdvert) }
	t["vrrp_higher_prio_send_advert"] = func(b *builder, g *Global, n *node) { b.flag(n, &g.VRRPHigherPrioSendAdvert) }
	t["vrrp_check_unicast_src"] = func(b *builder, g *Global, n *node) { b.flag(n, &g.VRRPCheckUnicastSrc) }
	return t
}

func withVRRPExtraInstance(t table[Instance]) table[Instance] {
	t["garp_lower_prio_delay"] = func(b *builder, in *Instance, n *node) {
		b.seconds(n, &in.GarpLowerPrioDelay)
		in.VRRPExtra.lowerDelaySet = true
	}
	t["garp_lower_prio_repeat"] = func(b *builder, in *Instance, n *node) {
		b.integer(n, &in.GarpLowerPrioRepeat, 0, 1<<20)
		in.VRRPExtra.lowerRepeatSet = true
	}
	t["lower_prio_no_advert"] = func(b *builder, in *Instance, n *node) {
		b.flag(n, &in.LowerPrioNoAdvert)
		in.VRRPExtra.noAdvertSet = true
	}
	t["higher_prio_send_advert"] = func(b *builder, in *Instance, n *node) {
		b.flag(n, &in.HigherPrioSendAdvert)
		in.VRRPExtra.higherSet = true
	}
	t["check_unicast_src"] = func(b *builder, in *Instance, n *node) {
		b.flag(n, &in.CheckUnicastSrc)
		in.VRRPExtra.checkSrcSet = true
	}
	t["vrrp_peers"] = func(b *builder, in *Instance, n *node) { b.prefixes(n, &in.VRRPPeers) }
	t["unicast_peer"] = func(b *builder, in *Instance, n *node) {
		if !b.needBlock(n) {
			return
		}
		for _, c := range n.children {
			a, ok := b.parseAddr(c, c.kw)
			if !ok {
				continue
			}
			in.UnicastPeers = append(in.UnicastPeers, a)
			b.peerTTL(c, in, a)
		}
	}
	return t
}

// peerTTL parses the options of a unicast_peer line: [min_ttl N] [max_ttl N].
func (b *builder) peerTTL(c *node, in *Instance, a netip.Addr) {
	pt := PeerTTL{Peer: a, Min: 0, Max: 255}
	set := false
	for i := 0; i < len(c.args); i++ {
		opt := c.args[i]
		if opt != "min_ttl" && opt != "max_ttl" {
			b.d.errorf(c.pos, c.kw, "unknown peer option %q (min_ttl N, max_ttl N)", opt)
			return
		}
		if i+1 >= len(c.args) {
			b.d.errorf(c.pos, c.kw, "%s needs a value", opt)
			return
		}
		i++
		v, ok := b.parseInt(c, c.args[i], 0, 255)
		if !ok {
			return
		}
		if opt == "min_ttl" {
			pt.Min = v
		} else {
			pt.Max = v
		}
		set = true
	}
	if !set {
		return
	}
	if pt.Min > pt.Max {
		b.d.errorf(c.pos, c.kw, "min_ttl %d is above max_ttl %d", pt.Min, pt.Max)
		return
	}
	in.UnicastPeerTTL = append(in.UnicastPeerTTL, pt)
}

// resolveVRRPExtra fills an instance's unset keywords from global_defs, as keepalived 2.2.7 does.
func (b *builder) resolveVRRPExtra(g *Global, in *Instance) {
	gx := &g.GlobalVRRPExtra
	if !gx.lowerRepeatSet {
		gx.VRRPGarpLowerPrioRepeat = g.VRRPGarpMasterRepeat
	}
	if !gx.lowerDelaySet {
		gx.VRRPGarpLowerPrioDelay = g.VRRPGarpMasterDelay
	}
	x := &in.VRRPExtra
	if !x.lowerRepeatSet {
		x.GarpLowerPrioRepeat = gx.VRRPGarpLowerPrioRepeat
		if g.VRRPStrict {
			x.GarpLowerPrioRepeat = 0
		}
	}
	if !x.lowerDelaySet {
		x.GarpLowerPrioDelay = gx.VRRPGarpLowerPrioDelay
		if g.VRRPStrict {
			x.GarpLowerPrioDelay = 0
		}
	}
	if !x.noAdvertSet {
		x.LowerPrioNoAdvert = gx.VRRPLowerPrioNoAdvert
	}
	if !x.higherSet {
		x.HigherPrioSendAdvert = gx.VRRPHigherPrioSendAdvert
	}
	if !x.checkSrcSet {
		x.CheckUnicastSrc = gx.VRRPCheckUnicastSrc
	}
	if in.UseVMAC && (len(in.VMACName) > 15 || strings.ContainsAny(in.VMACName, "/ \t")) {
		b.d.errorf(in.Pos, "use_vmac", "%s: %q is not a valid interface name (at most 15 characters, no '/' or blank)", in.Name, in.VMACName)
	}
	for _, p := range x.VRRPPeers {
		if !p.IsValid() {
			continue
		}
		if fam := in.Family(); (fam == 6) != p.Addr().Is6() {
			b.d.warnf(in.Pos, "vrrp_peers", "%s: %v is not IPv%d; it matches no advert of this instance", in.Name, p, fam)
		}
	}
	if len(x.VRRPPeers) > 0 && in.Family() == 6 && !strings.Contains(prefixList(x.VRRPPeers), "fe80") {
		b.d.warnf(in.Pos, "vrrp_peers", "%s: IPv6 multicast adverts come from link-local (fe80::/10) addresses; none is allowed", in.Name)
	}
}

func prefixList(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}
