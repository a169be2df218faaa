package daemon

import (
	"crypto/tls"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"halb/config"
	"halb/proxy"
)

// Layer 7 on the daemon side: top-level pools become services without a listener (their pools
// are health-checked, balanced, drained and shown like any service's, under the name "pool
// NAME"), and each proxy_mode http service gets its proxy.L7Spec built from the configuration.

// poolServiceName is a top-level pool's service name in health targets, the stats page, metrics
// and `halb ctl` ("pool api"; a real server is "pool api/198.18.0.31:8080").
func poolServiceName(name string) string { return "pool " + name }

// poolVS gives a pool the shape of a virtual_server, so that the code building a service's
// balance pool and health targets serves both.
func poolVS(p *config.Pool) *config.VirtualServer {
	return &config.VirtualServer{
		Pos: p.Pos, Kind: config.VSAddr, LBAlgo: p.LBAlgo, LBKind: config.LBKindNAT, Protocol: config.ProtoTCP,
		DelayLoop: p.DelayLoop, PersistenceTimeout: p.PersistenceTimeout, PersistenceGranularity: p.PersistenceGranularity,
		Quorum: p.Quorum, Hysteresis: p.Hysteresis, Alpha: p.Alpha, Omega: p.Omega, InhibitOnFailure: p.InhibitOnFailure,
		Rise: p.Rise, Fall: p.Fall, RealServers: p.RealServers,
	}
}

// addNamedPools adds a service for every top-level pool.
func (g *generation) addNamedPools(cfg *config.Config, old *generation) error {
	for _, p := range cfg.Pools {
		if err := g.addService(poolVS(p), poolServiceName(p.Name), old); err != nil {
			return err
		}
	}
	return nil
}

// buildL7 builds the L7 spec of every proxy_mode http service of g. A service that keeps its name
// across a reload keeps its certificate store, reloaded in place: listeners keep their
// tls.Config, handshakes in flight finish with the old certificates.
func buildL7(log *zap.Logger, g, old *generation) error {
	for _, svc := range g.services {
		if svc.vs.ProxyMode != config.ProxyHTTP {
			continue
		}
		var prev *proxy.CertStore
		if old != nil {
			if o := old.byName[svc.name]; o != nil && o.l7 != nil {
				prev = o.l7.TLS
			}
		}
		spec, err := l7Spec(log, svc.vs, g, prev)
		if err != nil {
			return fmt.Errorf("virtual_server %s at %s: %w", svc.name, svc.vs.Pos, err)
		}
		svc.l7 = spec
	}
	return nil
}

// l7Spec builds the proxy's layer-7 view of one proxy_mode http service. Route pools are looked
// up among g's named pools; prev, if not nil, is the service's certificate store to reload.
func l7Spec(log *zap.Logger, vs *config.VirtualServer, g *generation, prev *proxy.CertStore) (*proxy.L7Spec, error) {
	l := &vs.L7
	spec := &proxy.L7Spec{
		MaxBodySize: l.MaxBodySize,
		RequestID:   l.RequestID,
	}
	var routes []proxy.RouteSpec
	for _, r := range l.Routes {
		rs := proxy.RouteSpec{Hosts: r.Hosts, PathPrefix: r.PathPrefix, PathExact: r.PathExact, PathRegex: r.PathRegex,
			Methods: r.Methods, Sources: r.Sources}
		for _, h := range r.Headers {
			rs.Headers = append(rs.Headers, proxy.HeaderMatch{Name: h.Name, Value: h.Value})
		}
		switch {
		case r.Redirect != nil:
			rs.Target = proxy.RouteTarget{Redirect: &proxy.Redirect{Code: r.Redirect.Code, Location: r.Redirect.Location}}
		default:
			i := slices.Index(spec.PoolNames, r.Pool)
			if i < 0 {
				svc := g.byName[poolServiceName(r.Pool)]
				if svc == nil || len(svc.pools) == 0 {
					return nil, fmt.Errorf("route at %s: no pool %q", r.Pos, r.Pool)
				}
				i = len(spec.Pools)
				spec.Pools = append(spec.Pools, svc.pools[0].pool)
				spec.PoolNames = append(spec.PoolNames, r.Pool)
			}
			rs.Target = proxy.RouteTarget{Pool: i}
		}
		routes = append(routes, rs)
	}
	var err error
	if len(routes) > 0 {
		if spec.Router, err = proxy.NewRouter(routes); err != nil {
			return nil, err
		}
	}
	if spec.Request, err = proxy.NewHeaderRules(headerRules(l.RequestRules)); err != nil {
		return nil, err
	}
	if spec.Response, err = proxy.NewHeaderRules(headerRules(l.ResponseRules)); err != nil {
		return nil, err
	}
	if c := l.PersistenceCookie; c != nil {
		spec.Cookie = &proxy.CookiePersistence{Name: c.Name, Mode: cookieMode(c.Mode)}
	}
	if len(l.ErrorPages) > 0 {
		files := map[int]string{}
		for _, p := range l.ErrorPages {
			files[p.Code] = p.File
		}
		if spec.ErrorPages, err = proxy.LoadErrorPages(files); err != nil {
			return nil, err
		}
	}
	if l.RequestID != "" {
		if spec.RequestIDs, err = proxy.NewRequestIDs(); err != nil {
			return nil, err
		}
	}
	if r := l.RedirectScheme; r != nil {
		spec.SchemeRedirect = &proxy.SchemeRedirect{Scheme: r.Scheme, Code: r.Code}
	}
	if l.Terminates() {
		files := make([]proxy.CertFile, 0, len(l.Certificates))
		for _, c := range l.Certificates {
			files = append(files, proxy.CertFile{Cert: c.Cert, Key: c.Key})
		}
		if prev != nil && sameTLS(prev, l) {
			if err := prev.Reload(files); err != nil {
				return nil, err
			}
			spec.TLS = prev
		} else {
			opts := proxy.TLSOptions{MinVersion: tls.VersionTLS12, ALPN: l.ALPN}
			if l.TLSMinVersion == config.TLS13 {
				opts.MinVersion = tls.VersionTLS13
			}
			if spec.TLS, err = proxy.NewCertStore(log, files, opts); err != nil {
				return nil, err
			}
		}
		spec.H2 = slices.Contains(spec.TLS.Config().NextProtos, "h2")
	}
	return spec, nil
}

// sameTLS reports whether store was made with l's version and ALPN (then a reload only swaps
// certificates; otherwise a new store and tls.Config are made).
func sameTLS(store *proxy.CertStore, l *config.L7) bool {
	cfg := store.Config()
	minV := uint16(tls.VersionTLS12)
	if l.TLSMinVersion == config.TLS13 {
		minV = tls.VersionTLS13
	}
	alpn := l.ALPN
	if len(alpn) == 0 {
		alpn = []string{"http/1.1"}
	}
	return cfg.MinVersion == minV && slices.Equal(cfg.NextProtos, alpn)
}

func headerRules(in []config.HeaderRule) []proxy.HeaderRule {
	out := make([]proxy.HeaderRule, 0, len(in))
	for _, r := range in {
		op := proxy.HeaderSet
		switch r.Action {
		case config.HeaderAdd:
			op = proxy.HeaderAdd
		case config.HeaderDel:
			op = proxy.HeaderDel
		}
		out = append(out, proxy.HeaderRule{Op: op, Name: r.Name, Value: r.Value})
	}
	return out
}

func cookieMode(m config.CookieMode) proxy.CookieMode {
	switch m {
	case config.CookieRewrite:
		return proxy.CookieRewrite
	case config.CookiePrefix:
		return proxy.CookiePrefix
	}
	return proxy.CookieInsert
}
