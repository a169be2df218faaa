package config

import (
	"net/netip"
	"strconv"
	"strings"
)

// bgpKeywords adds the BGP keywords of other blocks (bgp_announce in virtual_server).
func (b *builder) bgpKeywords() {
	b.vs.kw["bgp_announce"] = func(b *builder, v *vsBuild, n *node) {
		a := BGPAnnounce{Pos: n.pos}
		b.announceOptions(n, n.args, &a) // a bad option is an error; the service still announces
		v.vs.BGPAnnounce = &a
	}
}

func bgpTable() table[BGP] {
	return table[BGP]{
		"router_id": func(b *builder, g *BGP, n *node) {
			b.address(n, &g.RouterID)
		},
		"local_as":      func(b *builder, g *BGP, n *node) { b.asn(n, &g.LocalAS) },
		"listen_port":   func(b *builder, g *BGP, n *node) { b.integer(n, &g.ListenPort, 1, 65535) },
		"vip_interface": func(b *builder, g *BGP, n *node) { b.str(n, &g.Interface) },
		"drain_time":    func(b *builder, g *BGP, n *node) { b.duration(n, &g.DrainTime) },
		"community": func(b *builder, g *BGP, n *node) {
			if b.arity(n, 1, 64) {
				b.communities(n, n.args, &g.Announce)
			}
		},
		"med": func(b *builder, g *BGP, n *node) {
			b.announceOptions(n, append([]string{"med"}, n.args...), &g.Announce)
		},
		"as_path_prepend": func(b *builder, g *BGP, n *node) {
			b.announceOptions(n, append([]string{"as_path_prepend"}, n.args...), &g.Announce)
		},
		"neighbor": func(b *builder, g *BGP, n *node) { b.buildNeighbor(g, n) },
		"bgp_vip":  func(b *builder, g *BGP, n *node) { b.bgpVIP(g, n) },
		"track_script": func(b *builder, g *BGP, n *node) {
			if n.block {
				g.TrackScripts = append(g.TrackScripts, b.tracks(n, true)...)
				return
			}
			for _, s := range n.args {
				g.TrackScripts = append(g.TrackScripts, Track{Pos: n.pos, Name: s})
			}
			if len(n.args) == 0 {
				b.d.errorf(n.pos, n.kw, "expects script names or a block { ... }")
			}
		},
	}
}

func neighborTable() table[BGPNeighbor] {
	return table[BGPNeighbor]{
		"remote_as": func(b *builder, nb *BGPNeighbor, n *node) {
			b.asn(n, &nb.RemoteAS)
			nb.HasRemote = true
		},
		"port": func(b *builder, nb *BGPNeighbor, n *node) { b.integer(n, &nb.Port, 1, 65535) },
		"hold_time": func(b *builder, nb *BGPNeighbor, n *node) {
			b.seconds(n, &nb.HoldTime)
			if nb.HoldTime < minBGPHoldTime {
				// RFC 4271 also allows 0 (no keepalives); GoBGP reads 0 as its default, 90 s.
				b.d.errorf(n.pos, n.kw, "must be at least 3s (RFC 4271), not %s", nb.HoldTime)
			}
		},
		"password":       func(b *builder, nb *BGPNeighbor, n *node) { b.str(n, &nb.Password) },
		"passive":        func(b *builder, nb *BGPNeighbor, n *node) { b.flag(n, &nb.Passive) },
		"source_address": func(b *builder, nb *BGPNeighbor, n *node) { b.address(n, &nb.SourceIP) },
		"ebgp_multihop":  func(b *builder, nb *BGPNeighbor, n *node) { b.integer(n, &nb.Multihop, 1, 255) },
	}
}

// buildBGP applies a top-level bgp block.
func (b *builder) buildBGP(n *node) {
	if !b.needBlock(n) {
		return
	}
	if len(n.args) > 0 {
		b.d.errorf(n.pos, n.kw, "takes no argument")
	}
	if prev := b.cfg.BGP; prev != nil {
		b.d.errorf(n.pos, n.kw, "only one bgp block; the first is at %s", prev.Pos)
		return
	}
	g := &BGP{Pos: n.pos, Interface: DefaultBGPInterface, DrainTime: DefaultBGPDrainTime}
	dispatch(b, &blockSpec[BGP]{"bgp", bgpTable()}, g, n.children)
	b.cfg.BGP = g
}

func (b *builder) buildNeighbor(g *BGP, n *node) {
	if !b.needBlock(n) {
		return
	}
	nb := &BGPNeighbor{Pos: n.pos, HoldTime: DefaultBGPHoldTime}
	if len(n.args) != 1 {
		b.d.errorf(n.pos, n.kw, "expects one neighbor address")
	} else if a, ok := b.parseAddr(n, n.args[0]); ok {
		nb.Addr = a
	}
	dispatch(b, &blockSpec[BGPNeighbor]{"neighbor", neighborTable()}, nb, n.children)
	if nb.Addr.IsValid() {
		g.Neighbors = append(g.Neighbors, nb)
	}
}

// bgpVIP parses `bgp_vip ADDR... [community C...] [med N] [as_path_prepend N]`.
func (b *builder) bgpVIP(g *BGP, n *node) {
	i := 0
	for i < len(n.args) && !isAnnounceOption(n.args[i]) {
		i++
	}
	if i == 0 {
		b.d.errorf(n.pos, n.kw, "expects at least one address")
		return
	}
	a := BGPAnnounce{Pos: n.pos}
	if !b.announceOptions(n, n.args[i:], &a) {
		return
	}
	for _, s := range n.args[:i] {
		if ip, ok := b.parseAddr(n, s); ok {
			g.VIPs = append(g.VIPs, BGPVIP{Addr: ip, Announce: a})
		}
	}
}

func isAnnounceOption(s string) bool {
	switch s {
	case "community", "med", "as_path_prepend":
		return true
	}
	return false
}

// announceOptions parses `[community C...] [med N] [as_path_prepend N]` into a.
func (b *builder) announceOptions(n *node, args []string, a *BGPAnnounce) bool {
	ok := true
	for i := 0; i < len(args); {
		opt := args[i]
		i++
		switch opt {
		case "community":
			j := i
			for j < len(args) && !isAnnounceOption(args[j]) {
				j++
			}
			if j == i {
				b.d.errorf(n.pos, n.kw, "community expects AS:VALUE")
				return false
			}
			ok = b.communities(n, args[i:j], a) && ok
			i = j
		case "med", "as_path_prepend":
			if i >= len(args) {
				b.d.errorf(n.pos, n.kw, "%s expects a number", opt)
				return false
			}
			if opt == "med" {
				v, good := b.parseInt(n, args[i], 0, 1<<32-1)
				a.MED, a.HasMED, ok = uint32(v), good, ok && good
			} else {
				v, good := b.parseInt(n, args[i], 0, 16)
				a.Prepend, a.HasPrepend, ok = v, good, ok && good
			}
			i++
		default:
			b.d.errorf(n.pos, n.kw, "unknown option %q (community, med, as_path_prepend)", opt)
			return false
		}
	}
	return ok
}

// communities parses RFC 1997 communities "AS:VALUE" (each 0..65535).
func (b *builder) communities(n *node, args []string, a *BGPAnnounce) bool {
	for _, s := range args {
		hi, lo, found := strings.Cut(s, ":")
		x, err1 := strconv.ParseUint(hi, 10, 16)
		y, err2 := strconv.ParseUint(lo, 10, 16)
		if !found || err1 != nil || err2 != nil {
			b.d.errorf(n.pos, n.kw, "%q is not a community AS:VALUE (each 0..65535)", s)
			return false
		}
		a.Communities = append(a.Communities, uint32(x)<<16|uint32(y))
	}
	return true
}

// asn parses an AS number, 1..4294967295 (4-byte ASNs, RFC 6793), also in asdot ("1.10").
func (b *builder) asn(n *node, dst *uint32) {
	s, ok := b.one(n)
	if !ok {
		return
	}
	var v uint64
	var err error
	if hi, lo, dot := strings.Cut(s, "."); dot {
		var x, y uint64
		x, err = strconv.ParseUint(hi, 10, 16)
		if err == nil {
			y, err = strconv.ParseUint(lo, 10, 16)
		}
		v = x<<16 | y
	} else {
		v, err = strconv.ParseUint(s, 10, 32)
	}
	if err != nil || v == 0 {
		b.d.errorf(n.pos, n.kw, "%q is not an AS number (1..4294967295)", s)
		return
	}
	*dst = uint32(v)
}

// validateBGP checks the bgp block and the bgp_announce of services.
func (b *builder) validateBGP() {
	g := b.cfg.BGP
	var announced []*VirtualServer
	for _, vs := range b.cfg.VirtualServers {
		if vs.BGPAnnounce == nil {
			continue
		}
		announced = append(announced, vs)
		if vs.Kind != VSAddr {
			b.d.errorf(vs.BGPAnnounce.Pos, "bgp_announce", "virtual_server %s has no single address to announce; use bgp_vip in the bgp block", vs.Name())
		}
		if g == nil {
			b.d.errorf(vs.BGPAnnounce.Pos, "bgp_announce", "there is no bgp block")
		}
	}
	if g == nil {
		return
	}
	if !g.RouterID.IsValid() || !g.RouterID.Is4() {
		b.d.errorf(g.Pos, "router_id", "bgp: router_id must be set to an IPv4 address")
	}
	if g.LocalAS == 0 {
		b.d.errorf(g.Pos, "local_as", "bgp: local_as is missing")
	}
	if g.DrainTime < 0 {
		b.d.errorf(g.Pos, "drain_time", "bgp: drain_time must be >= 0")
	}
	if g.Interface == "" || len(g.Interface) > 15 || strings.ContainsAny(g.Interface, "/ ") {
		b.d.errorf(g.Pos, "vip_interface", "bgp: %q is not an interface name", g.Interface)
	}
	if len(g.Neighbors) == 0 {
		b.d.warnf(g.Pos, "bgp", "no neighbor: nothing is announced to anyone")
	}
	seen := map[netip.Addr]*BGPNeighbor{}
	for _, nb := range g.Neighbors {
		if prev, ok := seen[nb.Addr]; ok {
			b.d.errorf(nb.Pos, "neighbor", "%s is already a neighbor at %s", nb.Addr, prev.Pos)
		}
		seen[nb.Addr] = nb
		if !nb.HasRemote {
			b.d.errorf(nb.Pos, "remote_as", "neighbor %s: remote_as is missing", nb.Addr)
		}
		if nb.Passive && nb.Password != "" {
			// Go (1.24+) opens listeners as MPTCP sockets, and MPTCP takes no TCP MD5 key.
			b.d.warnf(nb.Pos, "password", "neighbor %s: a passive session with a TCP MD5 password needs halb started with GODEBUG=multipathtcp=3 (Go's listeners are MPTCP sockets, which take no MD5 key); otherwise it does not come up", nb.Addr)
		}
		if len(nb.Password) > 80 {
			b.d.errorf(nb.Pos, "password", "neighbor %s: a TCP MD5 key is at most 80 bytes", nb.Addr)
		}
		if nb.SourceIP.IsValid() && nb.SourceIP.Is4() != nb.Addr.Is4() {
			b.d.errorf(nb.Pos, "source_address", "neighbor %s: source_address %s is of another family", nb.Addr, nb.SourceIP)
		}
	}
	if len(g.VIPs) == 0 && len(announced) == 0 {
		b.d.warnf(g.Pos, "bgp", "nothing to announce: no bgp_vip and no virtual_server with bgp_announce")
	}
	vips := map[netip.Addr]bool{}
	for _, v := range g.VIPs {
		if vips[v.Addr] {
			b.d.errorf(v.Announce.Pos, "bgp_vip", "%s is listed twice", v.Addr)
		}
		vips[v.Addr] = true
	}
	for _, vs := range announced {
		if vs.Kind == VSAddr && vips[vs.Addr.Addr()] {
			b.d.errorf(vs.BGPAnnounce.Pos, "bgp_announce", "%s is also a bgp_vip; announce it one way", vs.Addr.Addr())
		}
	}
	// A session carries the family of its neighbor's address: a VIP needs a neighbor of its family.
	fams := map[bool]bool{}
	for _, nb := range g.Neighbors {
		fams[nb.Addr.Is4()] = true
	}
	if len(g.Neighbors) > 0 {
		for _, v := range g.VIPs {
			if !fams[v.Addr.Is4()] {
				b.d.warnf(v.Announce.Pos, "bgp_vip", "%s has no neighbor of its address family: it is announced to no one", v.Addr)
			}
		}
		for _, vs := range announced {
			if a := vs.Addr.Addr(); vs.Kind == VSAddr && !fams[a.Is4()] {
				b.d.warnf(vs.BGPAnnounce.Pos, "bgp_announce", "%s has no neighbor of its address family: it is announced to no one", a)
			}
		}
	}
	for _, in := range b.cfg.Instances {
		for _, v := range in.VIPs {
			if vips[v.Prefix.Addr()] {
				b.d.warnf(v.Pos, "virtual_ipaddress", "%s is announced over BGP too; VRRP and BGP will both claim it", v.Prefix.Addr())
			}
		}
	}
	scripts := map[string]bool{}
	for _, s := range b.cfg.Scripts {
		scripts[s.Name] = true
	}
	for _, t := range g.TrackScripts {
		if !scripts[t.Name] {
			b.d.errorf(t.Pos, "track_script", "bgp: no vrrp_script named %q", t.Name)
		}
	}
}
