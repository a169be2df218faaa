package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"halb/config"
	"halb/health"
	"halb/proxy"
	"halb/proxy/balance"
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
		if !proxied(vs) {
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
	algo, err := balance.ParseAlgo(vs.LBAlgo.String())
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
		spec := proxy.ServiceSpec{
			Mode: proxyMode(vs.ProxyMode),
			Timeouts: proxy.Timeouts{
				Connect: vs.TimeoutConnect, Client: vs.TimeoutClient, Server: vs.TimeoutServer,
				HTTPRequest: vs.TimeoutHTTPRequest, Tunnel: vs.TimeoutTunnel, Queue: vs.TimeoutQueue,
			},
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
			if hc := checker(rs, c, script); hc != nil {
				t.Checkers = append(t.Checkers, hc)
			}
		}
		targets = append(targets, t)
	}
	return targets, services
}

func checker(rs *config.RealServer, c *config.Checker, script health.ScriptOptions) health.Checker {
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
		hc := &health.HTTPChecker{TLS: c.Kind == config.CheckSSL, Addr: addr, BindTo: bind, VirtualHost: c.VirtualHost,
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
