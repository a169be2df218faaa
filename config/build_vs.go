package config

import (
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Defaults of the LVS side, as keepalived's (check_data.c / check_api.c) and halb's own.
const (
	defaultDelayLoop        = 60 * time.Second
	defaultConnectTimeout   = 5 * time.Second
	defaultRetry            = 1
	defaultDelayBeforeRetry = time.Second
	defaultPersistence      = 360 * time.Second // persistence_timeout given without a value

	defaultTimeoutConnect     = 5 * time.Second
	defaultTimeoutClient      = 60 * time.Second
	defaultTimeoutServer      = 60 * time.Second
	defaultTimeoutHTTPRequest = 10 * time.Second
	defaultTimeoutTunnel      = time.Hour
	defaultTimeoutQueue       = 5 * time.Second
	defaultRetries            = 3
)

func (b *builder) buildVS(n *node) {
	if !b.needBlock(n) {
		return
	}
	vs := &VirtualServer{
		Pos: n.pos, DelayLoop: defaultDelayLoop, LBAlgo: AlgoWLC, LBKind: LBKindNAT, Protocol: ProtoTCP, Quorum: 1,
		ProxyMode:      ProxyTCP,
		TimeoutConnect: defaultTimeoutConnect, TimeoutClient: defaultTimeoutClient, TimeoutServer: defaultTimeoutServer,
		TimeoutHTTPRequest: defaultTimeoutHTTPRequest, TimeoutTunnel: defaultTimeoutTunnel, TimeoutQueue: defaultTimeoutQueue,
		Retries: defaultRetries, Rise: 1, Fall: 1,
	}
	valid := false
	switch {
	case len(n.args) == 2 && n.args[0] == "fwmark":
		vs.Kind = VSFwmark
		if v, ok := b.parseInt(n, n.args[1], 1, 1<<32-1); ok {
			vs.Fwmark, valid = uint32(v), true
		}
	case len(n.args) == 2 && n.args[0] == "group":
		vs.Kind = VSGroupRef
		vs.Group, valid = n.args[1], true
	case len(n.args) == 2:
		vs.Kind = VSAddr
		if ap, ok := b.addrPort(n, n.args[0], n.args[1], 1); ok {
			vs.Addr, valid = ap, true
		}
	case len(n.args) == 1 && strings.Count(n.args[0], ":") == 1:
		b.d.errorf(n.pos, n.kw, "expects ADDR PORT separated by a space, not %q", n.args[0])
	default:
		b.d.errorf(n.pos, n.kw, "expects ADDR PORT, fwmark N or group NAME")
	}
	vs.TimeoutHTTPKeepAlive, vs.MaxHeaderSize, vs.MaxURISize = defaultTimeoutHTTPKeepAlive, defaultMaxHeaderSize, defaultMaxURISize
	vb := &vsBuild{vs: vs, defs: newCheckerDefaults()}
	dispatch(b, &b.vs, vb, n.children)
	b.finishServers(vb)
	if valid {
		b.cfg.VirtualServers = append(b.cfg.VirtualServers, vs)
	}
}

// finishServers resolves the checker timings of a service's (or a pool's) real servers.
func (b *builder) finishServers(vb *vsBuild) {
	vb.defs.delayLoop = vb.vs.DelayLoop
	// retry and delay_before_retry stay unset here: their defaults depend on the checker's kind
	// (kindDefaults).
	vb.defs.inherit(checkerDefaults{connectTimeout: defaultConnectTimeout, retry: unset, delayBeforeRetry: unset})
	for _, rb := range vb.rss {
		rb.defs.inherit(vb.defs)
		for _, cb := range rb.cks {
			b.finishChecker(rb, cb)
		}
	}
}

func vsTable() table[vsBuild] {
	t := vsKeywords()
	t["smtp_alert"] = func(b *builder, v *vsBuild, n *node) { b.flag(n, &v.vs.SMTPAlert) }
	ipvsFlagKeywords(t)
	return t
}

func vsKeywords() table[vsBuild] {
	return table[vsBuild]{
		"delay_loop": func(b *builder, v *vsBuild, n *node) { b.seconds(n, &v.vs.DelayLoop) },
		"lb_algo":    lbAlgo,
		"lvs_sched":  lbAlgo,
		"lb_kind":    lbKind,
		"lvs_method": lbKind,
		"persistence_timeout": func(b *builder, v *vsBuild, n *node) {
			if len(n.args) == 0 {
				v.vs.PersistenceTimeout = defaultPersistence
				return
			}
			b.seconds(n, &v.vs.PersistenceTimeout)
		},
		"persistence_granularity": func(b *builder, v *vsBuild, n *node) {
			b.address(n, &v.vs.PersistenceGranularity)
		},
		"protocol": func(b *builder, v *vsBuild, n *node) {
			if x, ok := b.enum(n, protocolNames()); ok {
				v.vs.Protocol = Protocol(x)
			}
		},
		"sorry_server": func(b *builder, v *vsBuild, n *node) {
			if b.arity(n, 2, 2) {
				if ap, ok := b.addrPort(n, n.args[0], n.args[1], 0); ok {
					v.vs.SorryServer = ap
				}
			}
		},
		"sorry_server_inhibit": func(b *builder, v *vsBuild, n *node) { b.flag(n, &v.vs.SorryServerInhibit) },
		"quorum":               func(b *builder, v *vsBuild, n *node) { b.integer(n, &v.vs.Quorum, 1, 1<<30) },
		"hysteresis":           func(b *builder, v *vsBuild, n *node) { b.integer(n, &v.vs.Hysteresis, 0, 1<<30) },
		"quorum_up":            func(b *builder, v *vsBuild, n *node) { b.command(n, &v.vs.QuorumUp) },
		"quorum_down":          func(b *builder, v *vsBuild, n *node) { b.command(n, &v.vs.QuorumDown) },
		"alpha":                func(b *builder, v *vsBuild, n *node) { b.flag(n, &v.vs.Alpha) },
		"omega":                func(b *builder, v *vsBuild, n *node) { b.flag(n, &v.vs.Omega) },
		"inhibit_on_failure":   func(b *builder, v *vsBuild, n *node) { b.flag(n, &v.vs.InhibitOnFailure) },
		"virtualhost":          func(b *builder, v *vsBuild, n *node) { b.str(n, &v.vs.VirtualHost) },
		"ha_suspend":           func(b *builder, v *vsBuild, n *node) { b.flag(n, &v.vs.HASuspend) },
		"nat_mask": func(b *builder, v *vsBuild, n *node) {
			b.d.warnf(n.pos, n.kw, "ignored (keepalived ignores it too)")
		},
		// Checker defaults for the service's checkers (keepalived 2.x).
		"connect_timeout":    func(b *builder, v *vsBuild, n *node) { b.seconds(n, &v.defs.connectTimeout) },
		"retry":              func(b *builder, v *vsBuild, n *node) { b.integer(n, &v.defs.retry, 0, 1<<20) },
		"delay_before_retry": func(b *builder, v *vsBuild, n *node) { b.seconds(n, &v.defs.delayBeforeRetry) },
		"warmup":             func(b *builder, v *vsBuild, n *node) { b.seconds(n, &v.defs.warmup) },
		"real_server":        func(b *builder, v *vsBuild, n *node) { b.buildRS(v, n) },

		// halb's own keywords.
		"proxy_mode": func(b *builder, v *vsBuild, n *node) {
			if x, ok := b.enum(n, proxyModeNames()); ok {
				v.vs.ProxyMode = ProxyMode(x)
			}
		},
		"timeout_connect":      func(b *builder, v *vsBuild, n *node) { b.duration(n, &v.vs.TimeoutConnect) },
		"timeout_client":       func(b *builder, v *vsBuild, n *node) { b.duration(n, &v.vs.TimeoutClient) },
		"timeout_server":       func(b *builder, v *vsBuild, n *node) { b.duration(n, &v.vs.TimeoutServer) },
		"timeout_http_request": func(b *builder, v *vsBuild, n *node) { b.duration(n, &v.vs.TimeoutHTTPRequest) },
		"timeout_tunnel":       func(b *builder, v *vsBuild, n *node) { b.duration(n, &v.vs.TimeoutTunnel) },
		"timeout_queue":        func(b *builder, v *vsBuild, n *node) { b.duration(n, &v.vs.TimeoutQueue) },
		"maxconn":              func(b *builder, v *vsBuild, n *node) { b.integer(n, &v.vs.MaxConn, 0, 1<<30) },
		"maxqueue":             func(b *builder, v *vsBuild, n *node) { b.integer(n, &v.vs.MaxQueue, 0, 1<<30) },
		"retries":              func(b *builder, v *vsBuild, n *node) { b.integer(n, &v.vs.Retries, 0, 100) },
		"send_proxy":           func(b *builder, v *vsBuild, n *node) { b.proxyVersion(n, &v.vs.SendProxy) },
		"accept_proxy":         func(b *builder, v *vsBuild, n *node) { b.flag(n, &v.vs.AcceptProxy) },
		"trusted_proxies":      func(b *builder, v *vsBuild, n *node) { b.prefixes(n, &v.vs.TrustedProxies) },
		"trusted_upstreams":    func(b *builder, v *vsBuild, n *node) { b.prefixes(n, &v.vs.TrustedUpstreams) },
		"use_proxy":            func(b *builder, v *vsBuild, n *node) { b.flag(n, &v.vs.UseProxy) },
		"rise":                 func(b *builder, v *vsBuild, n *node) { b.integer(n, &v.vs.Rise, 1, 1<<20) },
		"fall":                 func(b *builder, v *vsBuild, n *node) { b.integer(n, &v.vs.Fall, 1, 1<<20) },
		"passive_fail":         func(b *builder, v *vsBuild, n *node) { b.integer(n, &v.vs.PassiveFail, 0, 1<<20) },
	}
}

func lbAlgo(b *builder, v *vsBuild, n *node) {
	if x, ok := b.enum(n, lbAlgoNames()); ok {
		v.vs.LBAlgo = LBAlgo(x)
	}
}

func lbKind(b *builder, v *vsBuild, n *node) {
	s, ok := b.one(n)
	if !ok {
		return
	}
	switch strings.ToUpper(s) {
	case "NAT", "MASQ":
		v.vs.LBKind = LBKindNAT
	case "DR", "DIRECT", "ROUTE":
		v.vs.LBKind = LBKindDR
	case "TUN", "TUNNEL":
		v.vs.LBKind = LBKindTUN
	default:
		b.d.errorf(n.pos, n.kw, "%q is not one of NAT|DR|TUN", s)
	}
}

func (b *builder) buildRS(v *vsBuild, n *node) {
	// keepalived accepts "real_server ADDR PORT" with no block: a server with no checker.
	rs := &RealServer{Pos: n.pos, Weight: 1}
	minPort := 1
	if v.vs.Kind == VSFwmark {
		minPort = 0
	}
	switch {
	case len(n.args) == 2:
		if ap, ok := b.addrPort(n, n.args[0], n.args[1], minPort); ok {
			rs.Addr = ap
		}
	case len(n.args) == 1 && v.vs.Kind == VSFwmark:
		if a, ok := b.parseAddr(n, n.args[0]); ok {
			rs.Addr = netip.AddrPortFrom(a, 0)
		}
	default:
		b.d.errorf(n.pos, n.kw, "expects ADDR PORT")
	}
	rb := &rsBuild{vs: v.vs, rs: rs, defs: newCheckerDefaults()}
	dispatch(b, &b.rs, rb, n.children)
	v.rss = append(v.rss, rb)
	v.vs.RealServers = append(v.vs.RealServers, rs)
}

func rsTable() table[rsBuild] {
	t := rsKeywords()
	t["smtp_alert"] = func(b *builder, r *rsBuild, n *node) { b.flag(n, &r.rs.SMTPAlert) }
	ipvsThresholdKeywords(t)
	return t
}

func rsKeywords() table[rsBuild] {
	checker := func(k CheckerKind) handler[rsBuild] {
		return func(b *builder, r *rsBuild, n *node) { b.buildChecker(r, k, n) }
	}
	return table[rsBuild]{
		"weight":             func(b *builder, r *rsBuild, n *node) { b.integer(n, &r.rs.Weight, 0, 65535) },
		"inhibit_on_failure": func(b *builder, r *rsBuild, n *node) { b.flag(n, &r.rs.InhibitOnFailure) },
		"notify_up":          func(b *builder, r *rsBuild, n *node) { b.command(n, &r.rs.NotifyUp) },
		"notify_down":        func(b *builder, r *rsBuild, n *node) { b.command(n, &r.rs.NotifyDown) },
		"TCP_CHECK":          checker(CheckTCP),
		"HTTP_GET":           checker(CheckHTTP),
		"SSL_GET":            checker(CheckSSL),
		"MISC_CHECK":         checker(CheckMisc),
		"PING_CHECK":         checker(CheckPing),
		"DNS_CHECK":          checker(CheckDNS),
		"SMTP_CHECK":         checker(CheckSMTP),
		"UDP_CHECK":          checker(CheckUDP),
		"FILE_CHECK":         checker(CheckFile),
		// Checker defaults for this server's checkers.
		"delay_loop":         func(b *builder, r *rsBuild, n *node) { b.seconds(n, &r.defs.delayLoop) },
		"connect_timeout":    func(b *builder, r *rsBuild, n *node) { b.seconds(n, &r.defs.connectTimeout) },
		"retry":              func(b *builder, r *rsBuild, n *node) { b.integer(n, &r.defs.retry, 0, 1<<20) },
		"delay_before_retry": func(b *builder, r *rsBuild, n *node) { b.seconds(n, &r.defs.delayBeforeRetry) },
		"warmup":             func(b *builder, r *rsBuild, n *node) { b.seconds(n, &r.defs.warmup) },
		// halb's own keywords.
		"maxconn":    func(b *builder, r *rsBuild, n *node) { b.integer(n, &r.rs.MaxConn, 0, 1<<30) },
		"send_proxy": func(b *builder, r *rsBuild, n *node) { b.proxyVersion(n, &r.rs.SendProxy) },
		"sni": func(b *builder, r *rsBuild, n *node) {
			if !b.arity(n, 1, -1) {
				return
			}
			for _, s := range n.args {
				if !validServerName(s) {
					b.d.errorf(n.pos, n.kw, "%q is not a server name (name.example.com or *.example.com)", s)
					continue
				}
				r.rs.SNI = append(r.rs.SNI, strings.ToLower(s))
			}
		},
		"backup": func(b *builder, r *rsBuild, n *node) { b.flag(n, &r.rs.Backup) },
	}
}

// validServerName accepts a DNS name, optionally with a leading "*." wildcard label.
func validServerName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func (b *builder) buildChecker(r *rsBuild, k CheckerKind, n *node) {
	if !b.needBlock(n) {
		return
	}
	if len(n.args) > 0 {
		b.d.errorf(n.pos, n.kw, "takes no argument")
	}
	cb := &ckBuild{ck: &Checker{Pos: n.pos, Kind: k}, defs: newCheckerDefaults(), connectPort: unset, miscTimeout: unset}
	dispatch(b, &b.checkers[k], cb, n.children)
	r.cks = append(r.cks, cb)
}

// finishChecker resolves what a checker inherits, once its real server is complete.
func (b *builder) finishChecker(r *rsBuild, cb *ckBuild) {
	ck := cb.ck
	cb.defs.inherit(r.defs)
	cb.defs.inherit(kindDefaults(ck.Kind, cb.defs.delayLoop))
	ck.DelayLoop = cb.defs.delayLoop
	ck.ConnectTimeout = cb.defs.connectTimeout
	ck.Retry = cb.defs.retry
	ck.DelayBeforeRetry = cb.defs.delayBeforeRetry
	ck.Warmup = max(cb.defs.warmup, 0)
	if !ck.ConnectIP.IsValid() {
		ck.ConnectIP = r.rs.Addr.Addr()
	}
	switch {
	case cb.connectPort != unset:
		ck.ConnectPort = cb.connectPort
	case ck.Kind != CheckPing && ck.Kind != CheckMisc && ck.Kind != CheckFile:
		ck.ConnectPort = int(r.rs.Addr.Port())
	}
	if ck.Kind == CheckMisc {
		ck.MiscTimeout = cb.miscTimeout
		if ck.MiscTimeout == unset {
			ck.MiscTimeout = ck.DelayLoop
		}
	}
	if ck.Kind == CheckHTTP || ck.Kind == CheckSSL {
		for i := range ck.URLs {
			if len(ck.URLs[i].StatusCodes) == 0 {
				ck.URLs[i].StatusCodes = []StatusRange{{200, 299}}
			}
		}
	}
	finishMoreChecker(ck)
	r.rs.Checkers = append(r.rs.Checkers, ck)
}

func checkerTable(k CheckerKind) table[ckBuild] {
	t := table[ckBuild]{
		"connect_ip": func(b *builder, c *ckBuild, n *node) { b.address(n, &c.ck.ConnectIP) },
		"connect_port": func(b *builder, c *ckBuild, n *node) {
			if s, ok := b.one(n); ok {
				if p, ok := b.parsePort(n, s, 1); ok {
					c.connectPort = int(p)
				}
			}
		},
		"bindto": func(b *builder, c *ckBuild, n *node) { b.address(n, &c.ck.BindTo) },
		"bind_port": func(b *builder, c *ckBuild, n *node) {
			if s, ok := b.one(n); ok {
				if p, ok := b.parsePort(n, s, 1); ok {
					c.ck.BindPort = int(p)
				}
			}
		},
		"connect_timeout":    func(b *builder, c *ckBuild, n *node) { b.seconds(n, &c.defs.connectTimeout) },
		"retry":              func(b *builder, c *ckBuild, n *node) { b.integer(n, &c.defs.retry, 0, 1<<20) },
		"nb_get_retry":       func(b *builder, c *ckBuild, n *node) { b.integer(n, &c.defs.retry, 0, 1<<20) },
		"delay_before_retry": func(b *builder, c *ckBuild, n *node) { b.seconds(n, &c.defs.delayBeforeRetry) },
		"warmup":             func(b *builder, c *ckBuild, n *node) { b.seconds(n, &c.defs.warmup) },
		"delay_loop":         func(b *builder, c *ckBuild, n *node) { b.seconds(n, &c.defs.delayLoop) },
	}
	switch k {
	case CheckHTTP, CheckSSL:
		t["url"] = func(b *builder, c *ckBuild, n *node) {
			if !b.needBlock(n) {
				return
			}
			u := URL{Pos: n.pos}
			dispatch(b, &b.url, &u, n.children)
			if u.Path == "" {
				b.d.errorf(n.pos, n.kw, "url without a path")
				return
			}
			c.ck.URLs = append(c.ck.URLs, u)
		}
		t["virtualhost"] = func(b *builder, c *ckBuild, n *node) { b.str(n, &c.ck.VirtualHost) }
	case CheckMisc:
		delete(t, "connect_port")
		delete(t, "bind_port")
		delete(t, "connect_timeout")
		t["misc_path"] = func(b *builder, c *ckBuild, n *node) { b.command(n, &c.ck.MiscPath) }
		t["misc_timeout"] = func(b *builder, c *ckBuild, n *node) { b.seconds(n, &c.miscTimeout) }
		t["misc_dynamic"] = func(b *builder, c *ckBuild, n *node) { b.flag(n, &c.ck.MiscDynamic) }
		t["user"] = func(b *builder, c *ckBuild, n *node) { b.userGroup(n, &c.ck.User, &c.ck.Group) }
	case CheckPing:
		delete(t, "connect_port")
		delete(t, "bind_port")
	default:
		moreCheckerKeywords(k, t)
	}
	return t
}

func urlTable() table[URL] {
	return table[URL]{
		"path": func(b *builder, u *URL, n *node) { b.str(n, &u.Path) },
		"digest": func(b *builder, u *URL, n *node) {
			if s, ok := b.one(n); ok {
				if _, err := hex.DecodeString(s); err != nil || len(s) != 32 {
					b.d.errorf(n.pos, n.kw, "%q is not an MD5 digest (32 hex digits)", s)
					return
				}
				u.Digest = strings.ToLower(s)
			}
		},
		"status_code": func(b *builder, u *URL, n *node) {
			if !b.arity(n, 1, -1) {
				return
			}
			for _, s := range n.args {
				lo, hi, isRange := strings.Cut(s, "-")
				if !isRange {
					hi = lo
				}
				l, err1 := strconv.Atoi(lo)
				h, err2 := strconv.Atoi(hi)
				if err1 != nil || err2 != nil || l < 100 || h > 599 || l > h {
					b.d.errorf(n.pos, n.kw, "%q is not an HTTP status code or range (100..599, like 200 or 200-299)", s)
					continue
				}
				u.StatusCodes = append(u.StatusCodes, StatusRange{l, h})
			}
		},
		"virtualhost": func(b *builder, u *URL, n *node) { b.str(n, &u.VirtualHost) },
	}
}

func (b *builder) buildVSGroup(n *node) {
	name, valid := b.named(n)
	if !n.block {
		return
	}
	g := &VSGroup{Pos: n.pos, Name: name}
	for _, c := range n.children {
		if c.block {
			b.d.errorf(c.pos, c.kw, "unexpected block in %s", n.kw)
			continue
		}
		if c.kw == "fwmark" {
			if b.arity(c, 1, 1) {
				if v, ok := b.parseInt(c, c.args[0], 1, 1<<32-1); ok {
					g.Entries = append(g.Entries, VSGroupEntry{Pos: c.pos, Fwmark: uint32(v)})
				}
			}
			continue
		}
		if len(c.args) != 1 {
			b.d.errorf(c.pos, c.kw, "expected ADDR PORT, ADDR-END PORT or fwmark N in %s", n.kw)
			continue
		}
		e := VSGroupEntry{Pos: c.pos}
		addr := c.kw
		var end string
		if i := strings.LastIndexByte(addr, '-'); i > 0 {
			addr, end = addr[:i], addr[i+1:]
		}
		ap, ok := b.addrPort(c, addr, c.args[0], 1)
		if !ok {
			continue
		}
		e.Addr = ap
		if end != "" {
			last, ok := rangeEnd(ap.Addr(), end)
			if !ok {
				b.d.errorf(c.pos, c.kw, "bad address range: %q must be a last %s greater than the first", end,
					map[bool]string{true: "octet", false: "hextet (hex)"}[ap.Addr().Is4()])
				continue
			}
			e.Last = last
		}
		g.Entries = append(g.Entries, e)
	}
	if valid {
		b.cfg.VSGroups = append(b.cfg.VSGroups, g)
	}
}

// rangeEnd computes the last address of "first-END": END replaces the last octet (IPv4, decimal)
// or the last 16-bit group (IPv6, hex), as keepalived.
func rangeEnd(first netip.Addr, end string) (netip.Addr, bool) {
	if first.Is4() {
		v, err := strconv.ParseUint(end, 10, 8)
		a := first.As4()
		if err != nil || byte(v) < a[3] {
			return netip.Addr{}, false
		}
		a[3] = byte(v)
		return netip.AddrFrom4(a), true
	}
	v, err := strconv.ParseUint(end, 16, 16)
	a := first.As16()
	cur := uint64(a[14])<<8 | uint64(a[15])
	if err != nil || v < cur {
		return netip.Addr{}, false
	}
	a[14], a[15] = byte(v>>8), byte(v)
	return netip.AddrFrom16(a).WithZone(first.Zone()), true
}
