package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"halb/config"
	"halb/health"
	"halb/ipvs"
	"halb/proxy"
	"halb/proxy/balance"
	"halb/vrrp"
)

// service is the runtime of one virtual_server served by the userspace proxy.
type service struct {
	vs    *config.VirtualServer
	name  string         // vs.Name(): the key in admin commands ("198.18.0.10:80")
	pools []*servicePool // the default set first, then one per SNI name
	specs []string       // proxy service names (one per listen address)
	l7    *proxy.L7Spec  // proxy_mode http: routes, rules, TLS (l7.go); nil otherwise
}

// servicePool is one backend set of a service: the default set, or the servers of one SNI name.
type servicePool struct {
	key  string // "" for the default set, else the SNI name
	pool *balance.Pool
}

// generation is everything built from one config: swapped as a whole on reload.
type generation struct {
	cfg      *config.Config
	services []*service
	byName   map[string]*service
	// refs maps a health target ID ("SERVICE/BACKEND") to the service it belongs to.
	refs map[string]*service
}

// targetID is the health target and admin key of a real server: "SERVICE/BACKEND".
func targetID(svc, backend string) string { return svc + "/" + backend }

// maskBits converts persistence_granularity (a netmask such as 255.255.255.0) to prefix bits.
func maskBits(m netip.Addr, def int) int {
	if !m.IsValid() {
		return def
	}
	b := m.AsSlice()
	n := 0
	for _, x := range b {
		for i := 7; i >= 0; i-- {
			if x&(1<<i) == 0 {
				return n
			}
			n++
		}
	}
	return n
}

// members returns the balance members of the real servers that belong to the set key ("" = default set).
func members(vs *config.VirtualServer, key string) []balance.Member {
	var out []balance.Member
	for _, rs := range vs.RealServers {
		in := key == "" && len(rs.SNI) == 0 || key != "" && slices.Contains(rs.SNI, key)
		if !in {
			continue
		}
		m := balance.Member{Name: rs.Addr.String(), Addr: rs.Addr, Weight: rs.Weight, MaxConn: rs.MaxConn, Backup: rs.Backup}
		if rs.SendProxy != config.ProxyProtoNone {
			m.Data = &proxy.BackendOpts{SendProxy: proxyProto(rs.SendProxy)}
		}
		out = append(out, m)
	}
	return out
}

func proxyProto(p config.ProxyProtocol) proxy.ProxyProto {
	switch p {
	case config.ProxyProtoV1:
		return proxy.ProxyV1
	case config.ProxyProtoV2:
		return proxy.ProxyV2
	}
	return proxy.ProxyNone
}

func proxyMode(m config.ProxyMode) proxy.Mode {
	switch m {
	case config.ProxyHTTP:
		return proxy.ModeHTTP
	case config.ProxyTLS:
		return proxy.ModeTLS
	}
	return proxy.ModeTCP
}

// sniKeys lists the distinct SNI names of a service's real servers, in first-seen order.
func sniKeys(vs *config.VirtualServer) []string {
	var keys []string
	for _, rs := range vs.RealServers {
		for _, n := range rs.SNI {
			if !slices.Contains(keys, n) {
				keys = append(keys, n)
			}
		}
	}
	return keys
}

// proxied reports whether the userspace proxy serves vs (lb_kind NAT or none, or use_proxy).
func proxied(vs *config.VirtualServer) bool {
	if vs.Kind == config.VSFwmark || vs.Protocol != config.ProtoTCP {
		return false
	}
	return vs.LBKind == config.LBKindNAT || vs.UseProxy
}

// buildPools creates or updates the pools of every proxied service. Pools of a service whose name
// and algorithm are unchanged are updated in place, so backends keep their counters and state.
func buildPools(cfg *config.Config, old *generation) (*generation, error) {
	g := &generation{cfg: cfg, byName: map[string]*service{}, refs: map[string]*service{}}
	for _, vs := range cfg.VirtualServers {
		if !proxied(vs) && !udpProxied(vs) {
			continue
		}
		if err := g.addService(vs, vs.Name(), old); err != nil {
			return nil, err
		}
	}
	if err := g.addNamedPools(cfg, old); err != nil { // l7.go
		return nil, err
	}
	return g, nil
}

// addService builds the pools of one proxied service (or of a top-level pool, named name).
func (g *generation) addService(vs *config.VirtualServer, name string, old *generation) error {
	algo, err := balanceAlgo(vs.LBAlgo)
	if err != nil {
		return fmt.Errorf("virtual_server %s at %s: %w", name, vs.Pos, err)
	}
	opts := balance.Options{
		PersistTimeout: vs.PersistenceTimeout,
		PersistMask4:   maskBits(vs.PersistenceGranularity, 32),
		PersistMask6:   128,
	}
	if vs.SorryServer.IsValid() {
		opts.Sorry = &balance.Member{Name: "sorry " + vs.SorryServer.String(), Addr: vs.SorryServer, Weight: 1}
	}
	svc := &service{vs: vs, name: name}
	var prev *service
	if old != nil {
		prev = old.byName[svc.name]
	}
	keys := append([]string{""}, sniKeys(vs)...)
	for _, k := range keys {
		ms := members(vs, k)
		if k == "" && len(ms) == 0 && vs.ProxyMode == config.ProxyTLS && len(keys) > 1 {
			// TLS with every server named by SNI: no default set; unknown names are closed.
			continue
		}
		// The same set of the same service keeps its pool (backends keep counters, health
		// state and persistence); a changed scheduler or option is applied in one swap.
		var sp *servicePool
		if prev != nil {
			for _, p := range prev.pools {
				if p.key == k {
					sp = p
				}
			}
		}
		if sp != nil {
			sp.pool.Reconfigure(algo, ms, opts)
		} else {
			sp = &servicePool{key: k, pool: balance.NewPool(algo, ms, opts)}
		}
		svc.pools = append(svc.pools, sp)
	}
	g.services = append(g.services, svc)
	g.byName[svc.name] = svc
	for _, rs := range vs.RealServers {
		g.refs[targetID(svc.name, rs.Addr.String())] = svc
	}
	return nil
}

// proxySpecs returns the proxy's view of g: one ServiceSpec per listen address of each service.
func proxySpecs(g *generation, onPassive func(svc string, b *balance.Backend)) []proxy.ServiceSpec {
	var specs []proxy.ServiceSpec
	for _, svc := range g.services {
		vs := svc.vs
		if udpProxied(vs) {
			continue // udpSpecs
		}
		spec := proxy.ServiceSpec{
			Mode: proxyMode(vs.ProxyMode),
			Timeouts: proxy.Timeouts{
				Connect: vs.TimeoutConnect, Client: vs.TimeoutClient, Server: vs.TimeoutServer,
				HTTPRequest: vs.TimeoutHTTPRequest, HTTPKeepAlive: vs.TimeoutHTTPKeepAlive,
				Tunnel: vs.TimeoutTunnel, Queue: vs.TimeoutQueue,
			},
			MaxHeaderSize:    vs.MaxHeaderSize,
			MaxURISize:       vs.MaxURISize,
			L7:               svc.l7,
			MaxConn:          vs.MaxConn,
			MaxQueue:         vs.MaxQueue,
			Retries:          vs.Retries,
			SendProxy:        proxyProto(vs.SendProxy),
			AcceptProxy:      vs.AcceptProxy,
			TrustedProxies:   vs.TrustedProxies,
			TrustedUpstreams: vs.TrustedUpstreams,
			PassiveFail:      vs.PassiveFail,
		}
		name := svc.name
		if onPassive != nil && vs.PassiveFail > 0 {
			spec.OnPassiveFail = func(b *balance.Backend) { onPassive(name, b) }
		}
		for _, p := range svc.pools {
			if p.key == "" {
				spec.Pool = p.pool
			} else {
				spec.SNI = append(spec.SNI, proxy.SNIRoute{Names: []string{p.key}, Pool: p.pool})
			}
		}
		svc.specs = svc.specs[:0]
		for _, a := range vs.Addrs {
			s := spec
			s.Listen = a
			s.Name = svc.name
			if len(vs.Addrs) > 1 {
				s.Name = svc.name + "@" + a.String()
			}
			svc.specs = append(svc.specs, s.Name)
			specs = append(specs, s)
		}
	}
	return specs
}

// healthTargets returns the health targets and quorum services of every proxied or IPVS service.
func healthTargets(cfg *config.Config, script health.ScriptOptions) ([]health.Target, []health.Service) {
	var targets []health.Target
	var services []health.Service
	for _, vs := range cfg.VirtualServers {
		targets, services = serviceTargets(targets, services, vs, vs.Name(), script)
	}
	for _, p := range cfg.Pools { // l7.go
		targets, services = serviceTargets(targets, services, poolVS(p), poolServiceName(p.Name), script)
	}
	return targets, services
}

// serviceTargets appends the health targets and the quorum service of one service (or pool).
func serviceTargets(targets []health.Target, services []health.Service, vs *config.VirtualServer, name string,
	script health.ScriptOptions) ([]health.Target, []health.Service) {
	services = append(services, health.Service{ID: name, Quorum: vs.Quorum, Hysteresis: vs.Hysteresis,
		QuorumUp: vs.QuorumUp, QuorumDown: vs.QuorumDown})
	for _, rs := range vs.RealServers {
		t := health.Target{
			ID:         targetID(name, rs.Addr.String()),
			Service:    name,
			Addr:       rs.Addr,
			NotifyUp:   rs.NotifyUp,
			NotifyDown: rs.NotifyDown,
			Weight:     rs.Weight,
			Inhibit:    rs.InhibitOnFailure || vs.InhibitOnFailure,
			Timing:     health.Timing{DelayLoop: vs.DelayLoop, Rise: vs.Rise, Fall: vs.Fall, Alpha: vs.Alpha, Omega: vs.Omega},
		}
		for i, c := range rs.Checkers {
			// keepalived times each checker alone; halb runs a server's checkers together, each attempt
			// within the checker's own connect_timeout, on the first one's delay_loop and retries.
			if i == 0 {
				t.Timing.DelayLoop = c.DelayLoop
				t.Timing.ConnectTimeout = c.ConnectTimeout
				t.Timing.Retry = c.Retry
				t.Timing.DelayBeforeRetry = c.DelayBeforeRetry
				t.Timing.Warmup = c.Warmup
			}
			if hc := checker(vs, rs, c, script); hc != nil {
				t.Checkers = append(t.Checkers, hc)
			}
		}
		targets = append(targets, t)
	}
	return targets, services
}

// checker is one real server's checker as the health package runs it.
func checker(vs *config.VirtualServer, rs *config.RealServer, c *config.Checker, script health.ScriptOptions) health.Checker {
	ip := c.ConnectIP
	if !ip.IsValid() {
		ip = rs.Addr.Addr()
	}
	port := uint16(c.ConnectPort)
	if port == 0 {
		port = rs.Addr.Port()
	}
	addr := netip.AddrPortFrom(ip, port)
	var bind netip.AddrPort
	if c.BindTo.IsValid() {
		bind = netip.AddrPortFrom(c.BindTo, uint16(c.BindPort))
	}
	switch c.Kind {
	case config.CheckTCP:
		return &health.TCPChecker{Addr: addr, BindTo: bind, ConnectTimeout: c.ConnectTimeout}
	case config.CheckHTTP, config.CheckSSL:
		vhost := c.VirtualHost
		if vhost == "" {
			vhost = vs.VirtualHost // keepalived: the virtual_server's virtualhost is the checkers' default
		}
		hc := &health.HTTPChecker{TLS: c.Kind == config.CheckSSL, Addr: addr, BindTo: bind, VirtualHost: vhost,
			ConnectTimeout: c.ConnectTimeout}
		for _, u := range c.URLs {
			hu := health.URL{Path: u.Path, Digest: strings.ToLower(u.Digest), VirtualHost: u.VirtualHost}
			for _, r := range u.StatusCodes {
				hu.Status = append(hu.Status, health.StatusRange{Lo: r.Lo, Hi: r.Hi})
			}
			hc.URLs = append(hc.URLs, hu)
		}
		return hc
	case config.CheckPing:
		return &health.PingChecker{Addr: ip, Source: c.BindTo, ConnectTimeout: c.ConnectTimeout}
	case config.CheckDNS:
		return &health.DNSChecker{Addr: addr, BindTo: bind, Type: c.DNSType, Name: c.DNSName, ConnectTimeout: c.ConnectTimeout}
	case config.CheckSMTP:
		return &health.SMTPChecker{Addr: addr, BindTo: bind, HeloName: c.HeloName, ConnectTimeout: c.ConnectTimeout}
	case config.CheckUDP:
		return &health.UDPChecker{Addr: addr, BindTo: bind, Payload: c.Payload, RequireReply: c.RequireReply, Reply: c.Reply,
			MinLen: c.MinReplyLength, MaxLen: c.MaxReplyLength, ConnectTimeout: c.ConnectTimeout}
	case config.CheckFile:
		return &health.FileChecker{Path: c.File, Weight: c.FileWeight, Reverse: c.FileReverse, Dynamic: c.FileDynamic, BaseWeight: rs.Weight}
	case config.CheckMisc:
		s := script
		if c.User != "" {
			s.User, s.Group = c.User, c.Group
		}
		timeout := c.MiscTimeout
		if timeout <= 0 {
			timeout = c.DelayLoop
		}
		if timeout <= 0 {
			timeout = time.Minute
		}
		return &health.MiscChecker{Command: c.MiscPath, Timeout: timeout, Dynamic: c.MiscDynamic, Script: s}
	}
	return nil
}

// vrrpConfig translates the config model into the VRRP router's.
func vrrpConfig(cfg *config.Config) vrrp.Config {
	g := cfg.Global
	out := vrrp.Config{ScriptUser: g.ScriptUser, ScriptSecurity: g.EnableScriptSecurity}
	for _, s := range cfg.Scripts {
		out.Scripts = append(out.Scripts, vrrp.ScriptConfig{Name: s.Name, Script: s.Script, Interval: s.Interval, Timeout: s.Timeout,
			Weight: s.Weight, Reverse: s.WeightReverse, Rise: s.Rise, Fall: s.Fall, User: s.User, InitFail: s.InitFail})
	}
	for _, f := range cfg.TrackFiles {
		out.Files = append(out.Files, vrrp.FileConfig{Name: f.Name, Path: f.File, Weight: f.Weight, Reverse: f.Reverse,
			Init: f.Init, InitValue: f.InitValue, Overwrite: f.Overwrite})
	}
	for _, p := range cfg.TrackProcs {
		out.Procs = append(out.Procs, vrrp.ProcConfig{Name: p.Name, Process: p.Process, Params: p.Params, ParamMatch: p.ParamMatch,
			ParamsSet: p.ParamsSet, FullCommand: p.FullCommand, Weight: p.Weight, Reverse: p.Reverse, Quorum: p.Quorum,
			QuorumMax: p.QuorumMax, ForkDelay: p.ForkDelay, TerminateDelay: p.TerminateDelay})
	}
	for _, in := range cfg.Instances {
		ic := vrrp.InstanceConfig{
			Name: in.Name, Interface: in.Interface, VRID: uint8(in.VRID), Priority: uint8(in.Priority), AdvertInt: in.AdvertInt,
			Version: in.Version, Family: in.Family(), AuthPass: in.AuthPass,
			UnicastSrc: in.UnicastSrcIP, UnicastPeers: in.UnicastPeers, McastSrc: in.McastSrcIP,
			NoPreempt: in.NoPreempt, PreemptDelay: in.PreemptDelay, StartState: vrrp.StateBackup,
			Notify: in.Notify, NotifyMaster: in.NotifyMaster, NotifyBackup: in.NotifyBackup, NotifyFault: in.NotifyFault, NotifyStop: in.NotifyStop,
			GARPDelay: in.GarpMasterDelay, GARPRepeat: in.GarpMasterRepeat, GARPRefresh: in.GarpMasterRefresh,
			GARPRefreshRepeat: in.GarpMasterRefreshRepeat, DontTrackPrimary: in.DontTrackPrimary, FastHandover: in.FastHandover,
		}
		vrrpExtra(&ic, in)
		if in.State == config.StateMaster && !in.NoPreempt {
			ic.StartState = vrrp.StateMaster
		}
		switch in.AuthType {
		case config.AuthPass:
			ic.AuthType = vrrp.AuthPass
		case config.AuthAH:
			ic.AuthType = vrrp.AuthAH
		}
		for _, v := range in.VIPs {
			ic.VIPs = append(ic.VIPs, vrrp.VIP{Prefix: v.Prefix, Dev: v.Dev, Label: v.Label, Brd: v.Broadcast, Scope: v.Scope.String()})
		}
		for _, v := range in.ExcludedVIPs {
			ic.Excluded = append(ic.Excluded, vrrp.VIP{Prefix: v.Prefix, Dev: v.Dev, Label: v.Label, Brd: v.Broadcast, Scope: v.Scope.String()})
		}
		// track_mode fault: weight 0 is keepalived's "FAULT while failing" for scripts and interfaces.
		fault := in.TrackMode == config.TrackFault
		for _, t := range in.TrackScripts {
			w, set, rev := trackRef(t, fault)
			ic.TrackScripts = append(ic.TrackScripts, vrrp.TrackScriptRef{Name: t.Name, Weight: w, WeightSet: set, Reverse: rev})
		}
		for _, t := range in.TrackFiles {
			w, set, rev := trackRef(t, fault)
			ic.TrackFiles = append(ic.TrackFiles, vrrp.TrackFileRef{Name: t.Name, Weight: w, WeightSet: set, Reverse: rev})
		}
		for _, t := range in.TrackProcs {
			w, set, rev := trackRef(t, fault)
			ic.TrackProcs = append(ic.TrackProcs, vrrp.TrackProcRef{Name: t.Name, Weight: w, WeightSet: set, Reverse: rev})
		}
		for _, t := range in.TrackInterfaces {
			w := t.Weight
			if fault {
				w = 0
			}
			ic.TrackInterfaces = append(ic.TrackInterfaces, vrrp.TrackIf{Name: t.Name, Weight: w})
		}
		out.Instances = append(out.Instances, ic)
	}
	for _, sg := range cfg.SyncGroups {
		out.SyncGroups = append(out.SyncGroups, vrrp.SyncGroupConfig{Name: sg.Name, Members: sg.Group, Notify: sg.Notify,
			NotifyMaster: sg.NotifyMaster, NotifyBackup: sg.NotifyBackup, NotifyFault: sg.NotifyFault})
	}
	return out
}

// trackRef is a tracker reference's weight as the VRRP router takes it: with
// track_mode fault every weight becomes 0, keepalived's "FAULT while failing".
func trackRef(t config.Track, fault bool) (weight int, set, reverse bool) {
	if fault {
		return 0, true, t.Reverse
	}
	return t.Weight, t.HasWeight, t.Reverse
}

func ipvsProto(p config.Protocol) ipvs.Proto {
	switch p {
	case config.ProtoUDP:
		return ipvs.UDP
	case config.ProtoSCTP:
		return ipvs.SCTP
	}
	return ipvs.TCP
}

func ipvsMethod(k config.LBKind) ipvs.Method {
	switch k {
	case config.LBKindDR:
		return ipvs.DR
	case config.LBKindTUN:
		return ipvs.TUN
	}
	return ipvs.NAT
}

// ipvsKey is the kernel key of a single-address virtual server.
func ipvsKey(vs *config.VirtualServer) ipvs.ServiceKey {
	return ipvs.Service{Addr: vs.Addr, Protocol: ipvsProto(vs.Protocol)}.Key()
}

// ipvsServices is the desired kernel table: every virtual server that needs IPVS.
func ipvsServices(cfg *config.Config) []ipvs.Service {
	var out []ipvs.Service
	for _, vs := range cfg.NeedsIPVS() {
		base := ipvs.Service{Scheduler: vs.LBAlgo.String(), Timeout: vs.PersistenceTimeout,
			Netmask: maskBits(vs.PersistenceGranularity, 0), Protocol: ipvsProto(vs.Protocol), Flags: ipvsFlags(vs)}
		for _, rs := range vs.RealServers {
			base.Dests = append(base.Dests, ipvs.Dest{Addr: rs.Addr, Weight: rs.Weight, Method: ipvsMethod(vs.LBKind),
				UThreshold: uint32(rs.UThreshold), LThreshold: uint32(rs.LThreshold),
				InhibitOnFailure: rs.InhibitOnFailure || vs.InhibitOnFailure})
		}
		for _, a := range vs.Addrs {
			s := base
			s.Addr = a
			out = append(out, s)
		}
		for _, m := range vs.Fwmarks {
			s := base
			s.FWMark = m
			out = append(out, s)
		}
	}
	return out
}

// scriptOptions is how health scripts run: script_user, enable_script_security.
func scriptOptions(cfg *config.Config) health.ScriptOptions {
	return health.ScriptOptions{User: cfg.Global.ScriptUser, Group: cfg.Global.ScriptGroup, Security: cfg.Global.EnableScriptSecurity}
}

// proxyGlobal is the proxy's process-wide settings.
func proxyGlobal(cfg *config.Config) proxy.Global {
	return proxy.Global{MaxConn: cfg.Global.MaxConn, LogSample: cfg.Global.LogSample}
}

// balanceAlgo maps lb_algo to the userspace balancer. The kernel-only schedulers map as the
// balance package documents: lblc, lblcr, sed, nq → wlc; fo, ovf → wrr.
func balanceAlgo(a config.LBAlgo) (balance.Algo, error) {
	switch a {
	case config.AlgoRR:
		return balance.RR, nil
	case config.AlgoWRR, config.AlgoFO, config.AlgoOVF:
		return balance.WRR, nil
	case config.AlgoLC:
		return balance.LC, nil
	case config.AlgoWLC, config.AlgoLBLC, config.AlgoLBLCR, config.AlgoSED, config.AlgoNQ:
		return balance.WLC, nil
	case config.AlgoSH:
		return balance.SH, nil
	case config.AlgoDH:
		return balance.DH, nil
	case config.AlgoMH:
		return balance.MH, nil
	}
	return 0, fmt.Errorf("daemon: lb_algo %s: no userspace scheduler", a)
}

// ipvsFlags are the service flags of ops, sh-/mh-port, sh-/mh-fallback and flag-1..3.
func ipvsFlags(vs *config.VirtualServer) uint32 {
	var f uint32
	for _, x := range []struct {
		on   bool
		flag uint32
	}{{vs.OnePacket, ipvs.FlagOnePacket}, {vs.Sched1, ipvs.FlagSched1}, {vs.Sched2, ipvs.FlagSched2}, {vs.Sched3, ipvs.FlagSched3}} {
		if x.on {
			f |= x.flag
		}
	}
	return f
}
