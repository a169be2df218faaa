package config

import (
	"net/netip"
	"slices"
	"time"
)

// groupTracking gives a member instance its sync group's trackers (those it does not track itself).
func (b *builder) groupTracking(sg *SyncGroup, in *Instance) {
	add := func(dst *[]Track, src []Track, kw string, weighted bool) {
		for _, t := range src {
			if slices.ContainsFunc(*dst, func(o Track) bool { return o.Name == t.Name }) {
				continue
			}
			if !sg.TrackingWeight && weighted {
				if t.HasWeight && t.Weight != 0 && in.Name == sg.Group[0] {
					b.d.warnf(t.Pos, kw, "weight %d in vrrp_sync_group %s used as 0 (FAULT while failing) without sync_group_tracking_weight, as keepalived", t.Weight, sg.Name)
				}
				t.Weight, t.HasWeight = 0, true
			}
			*dst = append(*dst, t)
		}
	}
	add(&in.TrackScripts, sg.TrackScripts, "track_script", true)
	add(&in.TrackFiles, sg.TrackFiles, "track_file", true)
	add(&in.TrackProcs, sg.TrackProcs, "track_process", true)
	add(&in.TrackInterfaces, sg.TrackInterfaces, "track_interface", true)
}

// maxGroupAddrs bounds how many addresses virtual_server_group references may expand to, for
// one service and for the whole configuration.
const (
	maxGroupAddrs = 1 << 16
	maxTotalAddrs = 1 << 18
)

// resolve fills what is inherited across blocks: instance defaults from global_defs, sync-group
// membership, and the addresses of virtual servers defined by a group.
func (b *builder) resolve() {
	g := &b.cfg.Global
	if s := g.LVSSync; s != nil && s.SyncID < 0 {
		s.SyncID = 0 // keepalived: the instance's VRID, or 0
		for _, in := range b.cfg.Instances {
			if in.Name == s.Instance {
				s.SyncID = in.VRID
			}
		}
	}
	for _, in := range b.cfg.Instances {
		if in.Version == 0 {
			in.Version = g.VRRPVersion
		}
		if in.GarpMasterDelay == unset {
			in.GarpMasterDelay = g.VRRPGarpMasterDelay
		}
		if in.GarpMasterRepeat == unset {
			in.GarpMasterRepeat = g.VRRPGarpMasterRepeat
		}
		if in.GarpMasterRefresh == unset {
			in.GarpMasterRefresh = g.VRRPGarpMasterRefresh
		}
		if in.GarpMasterRefreshRepeat == unset {
			in.GarpMasterRefreshRepeat = g.VRRPGarpMasterRefreshRepeat
		}
		b.resolveVRRPExtra(g, in)
		if v, ok := b.instAccept[in]; ok {
			in.Accept = v
		} else {
			in.Accept = !g.VRRPStrict
		}
	}

	instances := map[string]*Instance{}
	for _, in := range b.cfg.Instances {
		if prev, ok := instances[in.Name]; ok {
			b.d.errorf(in.Pos, "vrrp_instance", "%s is already defined at %s", in.Name, prev.Pos)
			continue
		}
		instances[in.Name] = in
	}
	syncNames := map[string]*SyncGroup{}
	for _, sg := range b.cfg.SyncGroups {
		if prev, ok := syncNames[sg.Name]; ok {
			b.d.errorf(sg.Pos, "vrrp_sync_group", "%s is already defined at %s", sg.Name, prev.Pos)
		}
		syncNames[sg.Name] = sg
		if len(sg.Group) == 0 {
			b.d.warnf(sg.Pos, "vrrp_sync_group", "%s has no group { ... } of instances", sg.Name)
		}
		for _, m := range sg.Group {
			in, ok := instances[m]
			if !ok {
				b.d.errorf(sg.Pos, "group", "vrrp_sync_group %s: no vrrp_instance named %q", sg.Name, m)
				continue
			}
			if in.SyncGroup != "" && in.SyncGroup != sg.Name {
				b.d.errorf(sg.Pos, "group", "vrrp_instance %s is already in vrrp_sync_group %s", m, in.SyncGroup)
				continue
			}
			in.SyncGroup = sg.Name
			b.groupTracking(sg, in)
		}
	}

	groups := map[string]*VSGroup{}
	for _, vg := range b.cfg.VSGroups {
		if prev, ok := groups[vg.Name]; ok {
			b.d.errorf(vg.Pos, "virtual_server_group", "%s is already defined at %s", vg.Name, prev.Pos)
			continue
		}
		groups[vg.Name] = vg
	}
	for _, vs := range b.cfg.VirtualServers {
		switch vs.Kind {
		case VSAddr:
			if vs.Addr.IsValid() {
				vs.Addrs = []netip.AddrPort{vs.Addr}
			}
		case VSFwmark:
			vs.Fwmarks = []uint32{vs.Fwmark}
		case VSGroupRef:
			vg, ok := groups[vs.Group]
			if !ok {
				b.d.errorf(vs.Pos, "virtual_server", "no virtual_server_group named %q", vs.Group)
				continue
			}
			b.expandGroup(vs, vg)
		}
	}
}

func (b *builder) expandGroup(vs *VirtualServer, vg *VSGroup) {
	for _, e := range vg.Entries {
		if !e.Addr.IsValid() {
			vs.Fwmarks = append(vs.Fwmarks, e.Fwmark)
			continue
		}
		a := e.Addr.Addr()
		for {
			if len(vs.Addrs) >= maxGroupAddrs {
				b.d.errorf(e.Pos, "virtual_server_group", "%s expands to more than %d addresses", vg.Name, maxGroupAddrs)
				return
			}
			if b.expanded >= maxTotalAddrs {
				b.d.errorf(vs.Pos, "virtual_server", "virtual_server_group references expand to more than %d addresses in all", maxTotalAddrs)
				return
			}
			b.expanded++
			vs.Addrs = append(vs.Addrs, netip.AddrPortFrom(a, e.Addr.Port()))
			if !e.Last.IsValid() || a == e.Last {
				break
			}
			a = a.Next()
		}
	}
}

// validate checks the model as a whole. It reports every problem it finds.
func (b *builder) validate() {
	b.validateGlobal()
	b.validateAlerts()
	if g := b.cfg.Global; (g.LVSSync != nil || g.LVSTimeouts != LVSTimeouts{}) && len(b.cfg.NeedsIPVS()) == 0 {
		b.d.warnf(g.Pos, "global_defs", "lvs_sync_daemon and lvs_timeouts act only on IPVS services, and no virtual_server here uses IPVS")
	}
	if s := b.cfg.Global.LVSSync; s != nil {
		switch {
		case s.Instance != "" && !slices.ContainsFunc(b.cfg.Instances, func(in *Instance) bool { return in.Name == s.Instance }):
			b.d.errorf(s.Pos, "lvs_sync_daemon", "no vrrp_instance named %q", s.Instance)
		case len(s.Interface) > 15:
			b.d.errorf(s.Pos, "lvs_sync_daemon", "interface name %q longer than 15 bytes", s.Interface)
		}
	}
	scripts := map[string]*Script{}
	for _, s := range b.cfg.Scripts {
		if prev, ok := scripts[s.Name]; ok {
			b.d.errorf(s.Pos, "vrrp_script", "%s is already defined at %s", s.Name, prev.Pos)
			continue
		}
		scripts[s.Name] = s
		if s.Script == "" {
			b.d.errorf(s.Pos, "vrrp_script", "%s has no script", s.Name)
		}
		if s.Interval <= 0 {
			b.d.errorf(s.Pos, "interval", "vrrp_script %s: interval must be > 0", s.Name)
		}
	}
	type vridKey struct {
		ifname string
		family int
		vrid   int
	}
	vrids := map[vridKey]*Instance{}
	vipOwner := map[netip.Addr]*Instance{}
	for _, in := range b.cfg.Instances {
		b.validateInstance(in, scripts)
		for _, v := range in.VIPs {
			a := v.Prefix.Addr()
			if prev, ok := vipOwner[a]; ok && prev != in {
				b.d.warnf(v.Pos, "virtual_ipaddress", "%s is also a VIP of vrrp_instance %s; two instances will fight over it", a, prev.Name)
				continue
			}
			vipOwner[a] = in
		}
		if in.Interface == "" || in.VRID == 0 {
			continue
		}
		k := vridKey{in.Interface, in.Family(), in.VRID}
		if prev, ok := vrids[k]; ok {
			b.d.errorf(in.Pos, "virtual_router_id", "%d is already used on %s (IPv%d) by vrrp_instance %s at %s",
				in.VRID, in.Interface, k.family, prev.Name, prev.Pos)
			continue
		}
		vrids[k] = in
	}
	type vsKey struct {
		kind   VSKind
		addr   netip.AddrPort
		fwmark uint32
		group  string
		proto  Protocol
	}
	seen := map[vsKey]*VirtualServer{}
	for _, vs := range b.cfg.VirtualServers {
		k := vsKey{vs.Kind, vs.Addr, vs.Fwmark, vs.Group, vs.Protocol}
		if prev, ok := seen[k]; ok {
			b.d.errorf(vs.Pos, "virtual_server", "%s (%s) is already defined at %s", vs.Name(), vs.Protocol, prev.Pos)
		}
		seen[k] = vs
		b.validateVS(vs)
		b.validateMoreCheckers(vs)
		b.validateProtocol(vs)
	}
	b.validateBGP() // build_bgp.go
	b.validateL7()
}

func (b *builder) validateGlobal() {
	g := &b.cfg.Global
	if g.StatsUser != "" && !g.StatsListen.IsValid() {
		b.d.warnf(g.Pos, "stats_auth", "set without stats_listen; the stats page is off")
	}
}

func (b *builder) validateInstance(in *Instance, scripts map[string]*Script) {
	if in.Interface == "" {
		b.d.errorf(in.Pos, "interface", "vrrp_instance %s: missing interface", in.Name)
	}
	if in.VRID == 0 {
		b.d.errorf(in.Pos, "virtual_router_id", "vrrp_instance %s: missing virtual_router_id (1..255)", in.Name)
	}
	if in.Priority == 255 {
		b.d.warnf(in.Pos, "priority", "vrrp_instance %s: priority 255 means this router owns the VIP address "+
			"(it is configured on an interface here); use 254 or less otherwise", in.Name)
	}
	if in.NoPreempt && in.State == StateMaster {
		b.d.warnf(in.Pos, "nopreempt", "vrrp_instance %s: nopreempt with state MASTER; treated as BACKUP (as keepalived)", in.Name)
		in.State = StateBackup
	}
	if len(in.VIPs) == 0 {
		b.d.warnf(in.Pos, "virtual_ipaddress", "vrrp_instance %s has no virtual_ipaddress", in.Name)
	}
	fam := in.Family()
	for _, v := range in.VIPs {
		if vf := familyOf(v.Prefix.Addr()); vf != fam {
			b.d.errorf(v.Pos, "virtual_ipaddress", "%s is IPv%d but vrrp_instance %s is IPv%d (its first VIP); "+
				"put it in virtual_ipaddress_excluded or in another instance", v.Prefix, vf, in.Name, fam)
		}
	}
	if fam == 6 && in.Version == 2 {
		b.d.warnf(in.Pos, "version", "vrrp_instance %s: IPv6 needs VRRPv3; using version 3", in.Name)
		in.Version = 3
	}
	if in.Version == 3 && in.AuthType != AuthNone {
		b.d.warnf(in.Pos, "authentication", "vrrp_instance %s: VRRPv3 has no authentication; ignored", in.Name)
		in.AuthType, in.AuthPass = AuthNone, ""
	}
	if in.AuthType == AuthAH {
		b.d.warnf(in.Pos, "auth_type", "vrrp_instance %s: AH authentication is deprecated and not implemented by halb", in.Name)
	}
	if in.AuthType == AuthPass && in.AuthPass == "" {
		b.d.errorf(in.Pos, "auth_pass", "vrrp_instance %s: auth_type PASS without auth_pass", in.Name)
	}
	b.validateAdvert(in)
	for _, t := range in.TrackScripts {
		if _, ok := scripts[t.Name]; !ok {
			b.d.errorf(t.Pos, "track_script", "no vrrp_script named %q", t.Name)
		}
	}
	for _, t := range in.TrackProcs {
		if !slices.ContainsFunc(b.cfg.TrackProcs, func(p *TrackProcess) bool { return p.Name == t.Name }) {
			b.d.errorf(t.Pos, "track_process", "no vrrp_track_process named %q", t.Name)
		}
	}
	for _, t := range in.TrackFiles {
		if !slices.ContainsFunc(b.cfg.TrackFiles, func(f *TrackFile) bool { return f.Name == t.Name }) {
			b.d.errorf(t.Pos, "track_file", "no vrrp_track_file named %q", t.Name)
		}
	}
	for _, p := range in.UnicastPeers {
		if familyOf(p) != fam {
			b.d.errorf(in.Pos, "unicast_peer", "vrrp_instance %s: peer %s is not IPv%d like the instance", in.Name, p, fam)
		}
	}
	if in.UnicastSrcIP.IsValid() {
		if familyOf(in.UnicastSrcIP) != fam {
			b.d.errorf(in.Pos, "unicast_src_ip", "vrrp_instance %s: %s is not IPv%d like the instance", in.Name, in.UnicastSrcIP, fam)
		}
		for _, p := range in.UnicastPeers {
			if p == in.UnicastSrcIP {
				b.d.warnf(in.Pos, "unicast_peer", "vrrp_instance %s: unicast_peer lists our own unicast_src_ip %s", in.Name, p)
			}
		}
	}
	for _, t := range in.TrackVirtServers {
		if !b.hasService(t.Addr) {
			b.d.errorf(t.Pos, "track_virtual_server", "no virtual_server %s", t.Addr)
		}
	}
}

func familyOf(a netip.Addr) int {
	if a.Is6() && !a.Is4In6() {
		return 6
	}
	return 4
}

// validateAdvert applies keepalived's rules to advert_int: VRRPv2 counts whole seconds (1..255),
// VRRPv3 centiseconds (0.01..40.95 s).
func (b *builder) validateAdvert(in *Instance) {
	a := in.AdvertInt
	if a <= 0 {
		b.d.errorf(in.Pos, "advert_int", "vrrp_instance %s: advert_int must be > 0", in.Name)
		return
	}
	if in.Version == 3 {
		if a > 4095*10*time.Millisecond {
			b.d.errorf(in.Pos, "advert_int", "vrrp_instance %s: advert_int %s exceeds VRRPv3's maximum 40.95s", in.Name, a)
			return
		}
		r := a.Round(10 * time.Millisecond)
		if r == 0 {
			r = 10 * time.Millisecond
		}
		if r != a {
			b.d.warnf(in.Pos, "advert_int", "vrrp_instance %s: VRRPv3 counts centiseconds; %s rounded to %s", in.Name, a, r)
			in.AdvertInt = r
		}
		return
	}
	if a > 255*time.Second {
		b.d.errorf(in.Pos, "advert_int", "vrrp_instance %s: advert_int %s exceeds VRRPv2's maximum 255s", in.Name, a)
		return
	}
	r := a.Round(time.Second)
	if r < time.Second {
		r = time.Second
	}
	if r != a {
		b.d.warnf(in.Pos, "advert_int", "vrrp_instance %s: VRRPv2 counts whole seconds; %s rounded to %s "+
			"(use version 3 for sub-second adverts)", in.Name, a, r)
		in.AdvertInt = r
	}
}

func (b *builder) hasService(ap netip.AddrPort) bool {
	if b.services == nil {
		b.services = map[netip.AddrPort]bool{}
		for _, vs := range b.cfg.VirtualServers {
			for _, a := range vs.Addrs {
				b.services[a] = true
			}
		}
	}
	return b.services[ap]
}

func (b *builder) validateVS(vs *VirtualServer) {
	name := vs.Name()
	if len(vs.RealServers) == 0 {
		if vs.L7.RedirectScheme == nil && len(vs.L7.Routes) == 0 { // those serve without servers of their own
			b.d.warnf(vs.Pos, "virtual_server", "%s has no real_server", name)
		}
	} else {
		allZero := true
		for _, rs := range vs.RealServers {
			if rs.Weight != 0 {
				allZero = false
			}
		}
		if allZero {
			b.d.warnf(vs.Pos, "weight", "%s: every real_server has weight 0; no traffic will be sent", name)
		}
		if vs.Quorum > len(vs.RealServers) {
			b.d.warnf(vs.Pos, "quorum", "%s: quorum %d is more than its %d real servers; it can never be met",
				name, vs.Quorum, len(vs.RealServers))
		}
	}
	switch {
	case (vs.LBKind == LBKindDR || vs.LBKind == LBKindTUN) && !vs.UseProxy:
		b.d.warnf(vs.Pos, "lb_kind", "%s: lb_kind %s needs the kernel's IPVS (or use_proxy to serve it with the userspace proxy)",
			name, vs.LBKind)
	case len(vs.Fwmarks) > 0:
		b.d.warnf(vs.Pos, "fwmark", "%s: firewall-mark services need the kernel's IPVS", name)
	}
	if vs.ProxyMode != ProxyTCP && vs.Protocol != ProtoTCP {
		b.d.errorf(vs.Pos, "proxy_mode", "%s: proxy_mode %s needs protocol TCP, not %s", name, vs.ProxyMode, vs.Protocol)
	}
	if vs.ProxyMode == ProxyHTTP && !vs.L7.Terminates() {
		for _, a := range vs.Addrs {
			if a.Port() == 443 {
				b.d.warnf(vs.Pos, "proxy_mode", "%s: proxy_mode http on port 443 expects plain HTTP; "+
					"for HTTPS use proxy_mode tls (passthrough) or tcp", name)
				break
			}
		}
	}
	if vs.AcceptProxy && len(vs.TrustedProxies) == 0 {
		b.d.warnf(vs.Pos, "accept_proxy", "%s: accept_proxy without trusted_proxies trusts a PROXY header from any client", name)
	}
	if !vs.AcceptProxy && len(vs.TrustedProxies) > 0 {
		b.d.warnf(vs.Pos, "trusted_proxies", "%s: trusted_proxies has no effect without accept_proxy", name)
	}
	if vs.MaxQueue > 0 && vs.MaxConn == 0 {
		allLimited := len(vs.RealServers) > 0
		for _, rs := range vs.RealServers {
			if rs.MaxConn == 0 {
				allLimited = false
			}
		}
		if !allLimited {
			b.d.warnf(vs.Pos, "maxqueue", "%s: maxqueue has no effect without maxconn", name)
		}
	}
	rsSeen := map[netip.AddrPort]*RealServer{}
	for _, rs := range vs.RealServers {
		if prev, ok := rsSeen[rs.Addr]; ok && rs.Addr.IsValid() {
			b.d.errorf(rs.Pos, "real_server", "%s is already defined in this virtual_server at %s", rs.Addr, prev.Pos)
		}
		rsSeen[rs.Addr] = rs
		if len(rs.SNI) > 0 && vs.ProxyMode != ProxyTLS {
			b.d.warnf(rs.Pos, "sni", "real_server %s: sni only routes in proxy_mode tls (this service is %s); ignored",
				rs.Addr, vs.ProxyMode)
		}
		for _, ck := range rs.Checkers {
			b.validateChecker(rs, ck)
		}
	}
}

func (b *builder) validateChecker(rs *RealServer, ck *Checker) {
	switch ck.Kind {
	case CheckHTTP, CheckSSL:
		if len(ck.URLs) == 0 {
			b.d.warnf(ck.Pos, ck.Kind.String(), "no url block; checking GET / for status 200-299")
			ck.URLs = []URL{{Pos: ck.Pos, Path: "/", StatusCodes: []StatusRange{{200, 299}}}}
		}
		if ck.Kind == CheckHTTP && ck.ConnectPort == 443 {
			b.d.warnf(ck.Pos, "HTTP_GET", "real_server %s: HTTP_GET on port 443 speaks plain HTTP to a TLS port; did you mean SSL_GET?", rs.Addr)
		}
		if ck.Kind == CheckSSL && ck.ConnectPort == 80 {
			b.d.warnf(ck.Pos, "SSL_GET", "real_server %s: SSL_GET on port 80 speaks TLS to a plain HTTP port; did you mean HTTP_GET?", rs.Addr)
		}
	case CheckMisc:
		if ck.MiscPath == "" {
			b.d.errorf(ck.Pos, "MISC_CHECK", "real_server %s: MISC_CHECK without misc_path", rs.Addr)
		}
	}
	if ck.DelayLoop <= 0 {
		b.d.errorf(ck.Pos, "delay_loop", "real_server %s: %s delay_loop must be > 0", rs.Addr, ck.Kind)
	}
	if ck.Kind != CheckMisc && ck.ConnectTimeout <= 0 {
		b.d.errorf(ck.Pos, "connect_timeout", "real_server %s: %s connect_timeout must be > 0", rs.Addr, ck.Kind)
	}
}
