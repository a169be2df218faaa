package config

import (
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// handler applies one keyword to the object its block builds.
type handler[T any] func(b *builder, t *T, n *node)

// table maps a block's keywords to their handlers.
type table[T any] map[string]handler[T]

// blockSpec names a block kind (for messages) and lists its keywords.
type blockSpec[T any] struct {
	name string
	kw   table[T]
}

// unset marks a numeric field not given in the file, to be filled from an outer default.
const unset = -1

// checkerDefaults are the checker timings a virtual_server or real_server may set for its checkers.
type checkerDefaults struct {
	delayLoop, connectTimeout, delayBeforeRetry, warmup time.Duration
	retry                                               int
}

func newCheckerDefaults() checkerDefaults {
	return checkerDefaults{delayLoop: unset, connectTimeout: unset, delayBeforeRetry: unset, warmup: unset, retry: unset}
}

// inherit fills the unset fields of d from outer.
func (d *checkerDefaults) inherit(outer checkerDefaults) {
	if d.delayLoop == unset {
		d.delayLoop = outer.delayLoop
	}
	if d.connectTimeout == unset {
		d.connectTimeout = outer.connectTimeout
	}
	if d.delayBeforeRetry == unset {
		d.delayBeforeRetry = outer.delayBeforeRetry
	}
	if d.warmup == unset {
		d.warmup = outer.warmup
	}
	if d.retry == unset {
		d.retry = outer.retry
	}
}

// builder turns statements into the typed model. Its keyword tables are built once per Parse.
type builder struct {
	d   *diags
	cfg *Config

	global   blockSpec[Global]
	script   blockSpec[Script]
	tfile    blockSpec[TrackFile]
	tproc    blockSpec[TrackProcess]
	instance blockSpec[Instance]
	auth     blockSpec[Instance]
	sync     blockSpec[SyncGroup]
	vs       blockSpec[vsBuild]
	rs       blockSpec[rsBuild]
	checkers [numCheckerKinds]blockSpec[ckBuild]
	url      blockSpec[URL]
	l7       *l7Specs // pool, route, http_request/http_response (build_l7.go)

	instAccept map[*Instance]bool // explicit accept/no_accept
	allKW      map[string]string  // keyword -> a block it is valid in, for "not valid here" hints
	expanded   int                // addresses expanded from virtual_server_group references
	services   map[netip.AddrPort]bool
}

type vsBuild struct {
	vs   *VirtualServer
	defs checkerDefaults
	rss  []*rsBuild
}

type rsBuild struct {
	vs   *VirtualServer
	rs   *RealServer
	defs checkerDefaults
	cks  []*ckBuild
}

type ckBuild struct {
	ck          *Checker
	defs        checkerDefaults
	connectPort int
	miscTimeout time.Duration
}

func newBuilder(d *diags) *builder {
	b := &builder{
		d:          d,
		cfg:        &Config{Global: defaultGlobal()},
		instAccept: map[*Instance]bool{},
	}
	b.global = blockSpec[Global]{"global_defs", withVRRPExtraGlobal(globalTable())}
	b.script = blockSpec[Script]{"vrrp_script", scriptTable()}
	b.tfile = blockSpec[TrackFile]{"vrrp_track_file", trackFileTable()}
	b.tproc = blockSpec[TrackProcess]{"vrrp_track_process", trackProcTable()}
	b.instance = blockSpec[Instance]{"vrrp_instance", withVRRPExtraInstance(instanceTable())}
	b.auth = blockSpec[Instance]{"authentication", authTable()}
	b.sync = blockSpec[SyncGroup]{"vrrp_sync_group", syncTable()}
	b.vs = blockSpec[vsBuild]{"virtual_server", vsTable()}
	b.rs = blockSpec[rsBuild]{"real_server", rsTable()}
	b.l7 = newL7Specs(b.vs.kw)
	for k := range b.checkers {
		b.checkers[k] = blockSpec[ckBuild]{CheckerKind(k).String(), checkerTable(CheckerKind(k))}
	}
	b.url = blockSpec[URL]{"url", urlTable()}
	b.bgpKeywords() // build_bgp.go
	return b
}

// homeOf returns a block where kw is valid, for "not valid here" hints. The index is built on the
// first unknown keyword only.
func (b *builder) homeOf(kw string) (string, bool) {
	if b.allKW == nil {
		b.allKW = map[string]string{}
		note := func(block string, names []string) {
			for _, n := range names {
				if _, ok := b.allKW[n]; !ok {
					b.allKW[n] = block
				}
			}
		}
		note(b.global.name, keys(b.global.kw))
		note(b.script.name, keys(b.script.kw))
		note(b.instance.name, keys(b.instance.kw))
		note(b.auth.name, keys(b.auth.kw))
		note(b.sync.name, keys(b.sync.kw))
		note(b.vs.name, keys(b.vs.kw))
		note(b.rs.name, keys(b.rs.kw))
		note("HTTP_GET", keys(b.checkers[CheckHTTP].kw))
		note("MISC_CHECK", keys(b.checkers[CheckMisc].kw))
		note(b.url.name, keys(b.url.kw))
		note("bgp", keys(bgpTable()))
		note(b.l7.route.name, keys(b.l7.route.kw))
		note(b.l7.rules.name, keys(b.l7.rules.kw))
		note("the top level", topKeywords())
	}
	block, ok := b.allKW[kw]
	return block, ok
}

func keys[T any](t table[T]) []string {
	out := make([]string, 0, len(t))
	for k := range t {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func topKeywords() []string {
	return []string{"global_defs", "vrrp_script", "vrrp_track_file", "vrrp_track_process", "vrrp_instance", "vrrp_sync_group", "virtual_server", "virtual_server_group", "bgp", "pool"}
}

// dispatch applies every statement of a block through spec's table.
func dispatch[T any](b *builder, spec *blockSpec[T], t *T, children []*node) {
	for _, c := range children {
		if h, ok := spec.kw[c.kw]; ok {
			if c.block && !takesBlock(c.kw) {
				b.d.errorf(c.pos, c.kw, "does not take a block")
				continue
			}
			h(b, t, c)
			if why, ok := inert(spec.name, c.kw); ok {
				b.d.warnf(c.pos, c.kw, "accepted but not acted on by halb: %s", why)
			}
			continue
		}
		b.unknown(c, spec.name, func() []string { return keys(spec.kw) })
	}
}

// takesBlock lists the keywords whose statement opens a block.
func takesBlock(kw string) bool {
	switch kw {
	case "global_defs", "vrrp_script", "vrrp_instance", "vrrp_sync_group", "virtual_server", "virtual_server_group",
		"notification_email", "authentication", "virtual_ipaddress", "virtual_ipaddress_excluded", "unicast_peer",
		"track_script", "track_file", "vrrp_track_file", "track_process", "vrrp_track_process", "track_interface", "track_virtual_server", "group", "real_server",
		"TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK", "PING_CHECK", "DNS_CHECK", "SMTP_CHECK", "UDP_CHECK", "FILE_CHECK", "url",
		"bgp", "neighbor":
		return true
	}
	return l7TakesBlock(kw)
}

// needBlock reports an error when a block keyword came without its block.
func (b *builder) needBlock(n *node) bool {
	if !n.block {
		b.d.errorf(n.pos, n.kw, "expects a block { ... }")
		return false
	}
	return true
}

// unknown reports a keyword that the block does not know: a warning for a keepalived keyword
// halb does not implement (the statement and its block are skipped), an error otherwise.
func (b *builder) unknown(n *node, block string, candidates func() []string) {
	if bfdKeyword(n.kw) {
		b.d.warnf(n.pos, n.kw, "%s", bfdAlternative)
		return
	}
	if unimplemented(n.kw) {
		b.d.warnf(n.pos, n.kw, "keepalived keyword not implemented by halb; ignored")
		return
	}
	if b.d.full() { // no need to spend time on hints nobody will see
		b.d.errorf(n.pos, n.kw, "unknown keyword in %s", block)
		return
	}
	if other, ok := b.homeOf(n.kw); ok {
		b.d.errorf(n.pos, n.kw, "not valid in %s (it belongs in %s)", block, other)
		return
	}
	if s := suggest(n.kw, candidates()); s != "" {
		b.d.errorf(n.pos, n.kw, "unknown keyword in %s; did you mean %q?", block, s)
		return
	}
	b.d.errorf(n.pos, n.kw, "unknown keyword in %s", block)
}

// build applies the top-level statements.
func (b *builder) build(top []*node) {
	for _, n := range top {
		switch n.kw {
		case "global_defs":
			if b.needBlock(n) {
				if len(n.args) > 0 {
					b.d.errorf(n.pos, n.kw, "takes no argument")
				}
				b.cfg.Global.Pos = n.pos
				dispatch(b, &b.global, &b.cfg.Global, n.children)
			}
		case "vrrp_script":
			b.buildScript(n)
		case "vrrp_track_file", "track_file":
			b.buildTrackFile(n)
		case "vrrp_track_process":
			b.buildTrackProc(n)
		case "vrrp_instance":
			b.buildInstance(n)
		case "vrrp_sync_group":
			b.buildSyncGroup(n)
		case "virtual_server":
			b.buildVS(n)
		case "virtual_server_group":
			b.buildVSGroup(n)
		case "bgp":
			b.buildBGP(n)
		case "pool":
			b.buildPool(n)
		default:
			b.unknown(n, "the top level", topKeywords)
		}
	}
}

func defaultGlobal() Global {
	return Global{
		SMTPPort:                    25,
		SMTPConnectTimeout:          30 * time.Second,
		VRRPGarpMasterDelay:         5 * time.Second,
		VRRPGarpMasterRepeat:        5,
		VRRPGarpMasterRefreshRepeat: 1,
		VRRPVersion:                 2,
		VRRPMcastGroup4:             netip.MustParseAddr("224.0.0.18"),
		VRRPMcastGroup6:             netip.MustParseAddr("ff02::12"),
		AdminSocket:                 "/run/halb/halb.sock",
		AdminSocketMode:             0o600,
		LogLevel:                    LogInfo,
		LogSample:                   1,
		ShutdownTimeout:             30 * time.Second,
	}
}

// lvsSync parses lvs_sync_daemon INTERFACE [[inst] VRRP_INSTANCE] [id N] [maxlen N] [port N]
// [ttl N] [group ADDR]. The multicast options are warned about and ignored: the kernel's defaults
// apply.
func (b *builder) lvsSync(n *node, g *Global) {
	if !b.arity(n, 1, 14) {
		return
	}
	s := &LVSSync{Pos: n.pos, Interface: n.args[0], SyncID: -1}
	args := n.args[1:]
	for len(args) > 0 {
		switch a := args[0]; a {
		case "inst", "id", "maxlen", "port", "ttl", "group":
			if len(args) < 2 {
				b.d.errorf(n.pos, n.kw, "%s needs a value", a)
				return
			}
			switch a {
			case "inst":
				s.Instance = args[1]
			case "id":
				if v, ok := b.parseInt(n, args[1], 0, 255); ok {
					s.SyncID = v
				}
			default:
				b.d.warnf(n.pos, n.kw, "%s %s not implemented by halb; the kernel's default applies", a, args[1])
			}
			args = args[2:]
		default:
			if s.Instance != "" {
				b.d.errorf(n.pos, n.kw, "unexpected %q", a)
				return
			}
			s.Instance = a
			args = args[1:]
		}
	}
	g.LVSSync = s
}

// lvsTimeouts parses lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS].
func (b *builder) lvsTimeouts(n *node, g *Global) {
	if len(n.args) == 0 || len(n.args)%2 != 0 {
		b.d.errorf(n.pos, n.kw, "expects [tcp SECS] [tcpfin SECS] [udp SECS]")
		return
	}
	for i := 0; i < len(n.args); i += 2 {
		v, ok := b.parseInt(n, n.args[i+1], 1, 86400*31)
		if !ok {
			continue
		}
		d := time.Duration(v) * time.Second
		switch n.args[i] {
		case "tcp":
			g.LVSTimeouts.TCP = d
		case "tcpfin":
			g.LVSTimeouts.TCPFin = d
		case "udp":
			g.LVSTimeouts.UDP = d
		default:
			b.d.errorf(n.pos, n.kw, "%q is not tcp, tcpfin or udp", n.args[i])
		}
	}
}

func globalTable() table[Global] {
	t := globalKeywords()
	alertKeywords(t)
	return t
}

func globalKeywords() table[Global] {
	return table[Global]{
		"router_id":               func(b *builder, g *Global, n *node) { b.str(n, &g.RouterID) },
		"lvs_id":                  func(b *builder, g *Global, n *node) { b.str(n, &g.LVSID) },
		"lvs_sync_daemon":         func(b *builder, g *Global, n *node) { b.lvsSync(n, g) },
		"lvs_timeouts":            func(b *builder, g *Global, n *node) { b.lvsTimeouts(n, g) },
		"notification_email_from": func(b *builder, g *Global, n *node) { b.str(n, &g.NotificationEmailFrom) },
		"notification_email": func(b *builder, g *Global, n *node) {
			if b.needBlock(n) {
				g.NotificationEmail = append(g.NotificationEmail, listItems(n)...)
			}
		},
		"smtp_server": func(b *builder, g *Global, n *node) {
			if b.arity(n, 1, 2) {
				g.SMTPServer = n.args[0]
				if len(n.args) == 2 {
					if p, ok := b.parsePort(n, n.args[1], 1); ok {
						g.SMTPPort = int(p)
					}
				}
			}
		},
		"smtp_connect_timeout":   func(b *builder, g *Global, n *node) { b.seconds(n, &g.SMTPConnectTimeout) },
		"enable_script_security": func(b *builder, g *Global, n *node) { b.flag(n, &g.EnableScriptSecurity) },
		"script_user":            func(b *builder, g *Global, n *node) { b.userGroup(n, &g.ScriptUser, &g.ScriptGroup) },
		"vrrp_garp_master_delay": func(b *builder, g *Global, n *node) { b.seconds(n, &g.VRRPGarpMasterDelay) },
		"vrrp_garp_master_repeat": func(b *builder, g *Global, n *node) {
			b.integer(n, &g.VRRPGarpMasterRepeat, 0, 1<<20)
		},
		"vrrp_garp_master_refresh": func(b *builder, g *Global, n *node) { b.seconds(n, &g.VRRPGarpMasterRefresh) },
		"vrrp_garp_master_refresh_repeat": func(b *builder, g *Global, n *node) {
			b.integer(n, &g.VRRPGarpMasterRefreshRepeat, 0, 1<<20)
		},
		"vrrp_garp_interval": func(b *builder, g *Global, n *node) { b.seconds(n, &g.VRRPGarpInterval) },
		"vrrp_gna_interval":  func(b *builder, g *Global, n *node) { b.seconds(n, &g.VRRPGnaInterval) },
		"vrrp_version":       func(b *builder, g *Global, n *node) { b.integer(n, &g.VRRPVersion, 2, 3) },
		"vrrp_strict":        func(b *builder, g *Global, n *node) { b.flag(n, &g.VRRPStrict) },
		"vrrp_mcast_group4": func(b *builder, g *Global, n *node) {
			b.mcastGroup(n, &g.VRRPMcastGroup4, false)
		},
		"vrrp_mcast_group6": func(b *builder, g *Global, n *node) {
			b.mcastGroup(n, &g.VRRPMcastGroup6, true)
		},
		"vrrp_skip_check_adv_addr": func(b *builder, g *Global, n *node) { b.flag(n, &g.VRRPSkipCheckAdvAddr) },

		"admin_socket": func(b *builder, g *Global, n *node) { b.str(n, &g.AdminSocket) },
		"admin_socket_mode": func(b *builder, g *Global, n *node) {
			if s, ok := b.one(n); ok {
				v, err := strconv.ParseUint(s, 8, 32)
				if err != nil || v > 0o777 {
					b.d.errorf(n.pos, n.kw, "%q is not an octal permission mode (like 0600)", s)
					return
				}
				g.AdminSocketMode = FileMode(v)
			}
		},
		"admin_socket_owner": func(b *builder, g *Global, n *node) {
			if s, ok := b.one(n); ok {
				user, group, _ := strings.Cut(s, ":")
				if user == "" && group == "" {
					b.d.errorf(n.pos, n.kw, "expects USER[:GROUP]")
					return
				}
				g.AdminSocketOwner, g.AdminSocketGroup = user, group
			}
		},
		"stats_listen": func(b *builder, g *Global, n *node) {
			if s, ok := b.one(n); ok {
				ap, err := netip.ParseAddrPort(s)
				if err != nil || ap.Port() == 0 {
					b.d.errorf(n.pos, n.kw, "%q is not ADDR:PORT (like 127.0.0.1:8404 or [::1]:8404)", s)
					return
				}
				g.StatsListen = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			}
		},
		"stats_auth": func(b *builder, g *Global, n *node) {
			if s, ok := b.one(n); ok {
				user, pass, found := strings.Cut(s, ":")
				if !found || user == "" {
					b.d.errorf(n.pos, n.kw, "expects USER:PASSWORD")
					return
				}
				g.StatsUser, g.StatsPassword = user, pass
			}
		},
		"maxconn": func(b *builder, g *Global, n *node) { b.integer(n, &g.MaxConn, 0, 1<<30) },
		"log_level": func(b *builder, g *Global, n *node) {
			if v, ok := b.enum(n, logLevelNames()); ok {
				g.LogLevel = LogLevel(v)
			}
		},
		"log_sample":       func(b *builder, g *Global, n *node) { b.integer(n, &g.LogSample, 0, 1<<30) },
		"shutdown_timeout": func(b *builder, g *Global, n *node) { b.duration(n, &g.ShutdownTimeout) },
	}
}

func (b *builder) mcastGroup(n *node, dst *netip.Addr, v6 bool) {
	var a netip.Addr
	b.address(n, &a)
	if !a.IsValid() {
		return
	}
	if a.Is6() != v6 || !a.IsMulticast() {
		fam := "IPv4"
		if v6 {
			fam = "IPv6"
		}
		b.d.errorf(n.pos, n.kw, "%s is not an %s multicast address", a, fam)
		return
	}
	*dst = a
}

// listItems returns every word of a list block (one or several per line).
func listItems(n *node) []string {
	var out []string
	for _, c := range n.children {
		out = append(out, c.kw)
		out = append(out, c.args...)
	}
	return out
}

// named checks "KEYWORD NAME {" and returns NAME and whether the header is valid. A block with a
// bad header is still read, for its own errors, but not kept.
func (b *builder) named(n *node) (string, bool) {
	if !b.needBlock(n) {
		return "", false
	}
	if len(n.args) != 1 {
		b.d.errorf(n.pos, n.kw, "expects a name, got %d words", len(n.args))
		return "", false
	}
	return n.args[0], true
}

func (b *builder) buildScript(n *node) {
	name, valid := b.named(n)
	if !n.block {
		return
	}
	s := &Script{Pos: n.pos, Name: name, Interval: time.Second, Timeout: unset, Rise: 1, Fall: 1}
	dispatch(b, &b.script, s, n.children)
	if s.Timeout == unset {
		s.Timeout = s.Interval
	}
	if valid {
		b.cfg.Scripts = append(b.cfg.Scripts, s)
	}
}

// weightReverse parses "weight N [reverse]", N in lo..hi.
func (b *builder) weightReverse(n *node, lo, hi int, w *int, rev *bool) {
	if !b.arity(n, 1, 2) {
		return
	}
	if v, ok := b.parseInt(n, n.args[0], lo, hi); ok {
		*w = v
	}
	if len(n.args) == 2 {
		if n.args[1] != "reverse" {
			b.d.errorf(n.pos, n.kw, "expects \"reverse\" after the weight, got %q", n.args[1])
			return
		}
		*rev = true
	}
}

func (b *builder) buildTrackFile(n *node) {
	name, valid := b.named(n)
	if !n.block {
		return
	}
	f := &TrackFile{Pos: n.pos, Name: name, Weight: 1}
	dispatch(b, &b.tfile, f, n.children)
	if f.File == "" {
		b.d.errorf(n.pos, n.kw, "%s: no file", name)
		valid = false
	}
	if valid {
		b.cfg.TrackFiles = append(b.cfg.TrackFiles, f)
	}
}

func trackFileTable() table[TrackFile] {
	return table[TrackFile]{
		"file": func(b *builder, f *TrackFile, n *node) {
			if b.arity(n, 1, 1) {
				f.File = n.args[0]
			}
		},
		"weight": func(b *builder, f *TrackFile, n *node) { b.weightReverse(n, -254, 254, &f.Weight, &f.Reverse) },
		"init_file": func(b *builder, f *TrackFile, n *node) {
			if !b.arity(n, 0, 2) {
				return
			}
			f.Init = true
			for _, a := range n.args {
				if a == "overwrite" {
					f.Overwrite = true
					continue
				}
				if v, ok := b.parseInt(n, a, math.MinInt32, math.MaxInt32); ok {
					f.InitValue = v
				}
			}
		},
	}
}

func (b *builder) buildTrackProc(n *node) {
	name, valid := b.named(n)
	if !n.block {
		return
	}
	p := &TrackProcess{Pos: n.pos, Name: name, Quorum: 1, QuorumMax: -1}
	dispatch(b, &b.tproc, p, n.children)
	if p.Process == "" {
		b.d.errorf(n.pos, n.kw, "%s: no process", name)
		valid = false
	}
	if p.QuorumMax >= 0 && p.QuorumMax < p.Quorum {
		b.d.errorf(n.pos, "quorum_max", "%s: quorum_max %d is below quorum %d", name, p.QuorumMax, p.Quorum)
		valid = false
	}
	if valid {
		b.cfg.TrackProcs = append(b.cfg.TrackProcs, p)
	}
}

func trackProcTable() table[TrackProcess] {
	return table[TrackProcess]{
		"process": func(b *builder, p *TrackProcess, n *node) {
			if b.arity(n, 1, 64) {
				p.Process, p.Params = n.args[0], slices.Clone(n.args[1:])
			}
		},
		"param_match": func(b *builder, p *TrackProcess, n *node) {
			if !b.arity(n, 0, 1) {
				return
			}
			p.ParamsSet = true
			if len(n.args) == 1 {
				if n.args[0] != "initial" && n.args[0] != "partial" {
					b.d.errorf(n.pos, n.kw, "%q is not initial or partial", n.args[0])
					return
				}
				p.ParamMatch = n.args[0]
			}
		},
		"weight":          func(b *builder, p *TrackProcess, n *node) { b.weightReverse(n, -254, 254, &p.Weight, &p.Reverse) },
		"quorum":          func(b *builder, p *TrackProcess, n *node) { b.integer(n, &p.Quorum, 0, 1<<16) },
		"quorum_max":      func(b *builder, p *TrackProcess, n *node) { b.integer(n, &p.QuorumMax, 0, 1<<16) },
		"fork_delay":      func(b *builder, p *TrackProcess, n *node) { b.seconds(n, &p.ForkDelay) },
		"terminate_delay": func(b *builder, p *TrackProcess, n *node) { b.seconds(n, &p.TerminateDelay) },
		"delay": func(b *builder, p *TrackProcess, n *node) {
			b.seconds(n, &p.ForkDelay)
			p.TerminateDelay = p.ForkDelay
		},
		"full_command": func(b *builder, p *TrackProcess, n *node) { b.flag(n, &p.FullCommand) },
	}
}

func scriptTable() table[Script] {
	return table[Script]{
		"script":    func(b *builder, s *Script, n *node) { b.command(n, &s.Script) },
		"interval":  func(b *builder, s *Script, n *node) { b.seconds(n, &s.Interval) },
		"timeout":   func(b *builder, s *Script, n *node) { b.seconds(n, &s.Timeout) },
		"weight":    func(b *builder, s *Script, n *node) { b.weightReverse(n, -253, 253, &s.Weight, &s.WeightReverse) },
		"rise":      func(b *builder, s *Script, n *node) { b.integer(n, &s.Rise, 1, 1<<20) },
		"fall":      func(b *builder, s *Script, n *node) { b.integer(n, &s.Fall, 1, 1<<20) },
		"user":      func(b *builder, s *Script, n *node) { b.userGroup(n, &s.User, &s.Group) },
		"init_fail": func(b *builder, s *Script, n *node) { b.flag(n, &s.InitFail) },
	}
}

func (b *builder) buildInstance(n *node) {
	name, valid := b.named(n)
	if !n.block {
		return
	}
	in := &Instance{
		Pos: n.pos, Name: name, State: StateBackup, Priority: 100, AdvertInt: time.Second,
		Version: 0, AuthType: AuthNone,
		GarpMasterDelay: unset, GarpMasterRepeat: unset, GarpMasterRefresh: unset, GarpMasterRefreshRepeat: unset,
	}
	dispatch(b, &b.instance, in, n.children)
	if valid {
		b.cfg.Instances = append(b.cfg.Instances, in)
	}
}

func instanceTable() table[Instance] {
	t := instanceKeywords()
	// keepalived 2.2's preempt undoes an earlier nopreempt; preempting is the default.
	t["preempt"] = func(b *builder, in *Instance, n *node) {
		if b.arity(n, 0, 0) {
			in.NoPreempt = false
		}
	}
	return t
}

func instanceKeywords() table[Instance] {
	script := func(dst func(*Instance) *string) handler[Instance] {
		return func(b *builder, in *Instance, n *node) { b.command(n, dst(in)) }
	}
	return table[Instance]{
		"state": func(b *builder, in *Instance, n *node) {
			if v, ok := b.enum(n, initialStateNames()); ok {
				in.State = InitialState(v)
			}
		},
		"interface":         func(b *builder, in *Instance, n *node) { b.str(n, &in.Interface) },
		"virtual_router_id": func(b *builder, in *Instance, n *node) { b.integer(n, &in.VRID, 1, 255) },
		"priority":          func(b *builder, in *Instance, n *node) { b.integer(n, &in.Priority, 1, 255) },
		"advert_int":        func(b *builder, in *Instance, n *node) { b.seconds(n, &in.AdvertInt) },
		"version":           func(b *builder, in *Instance, n *node) { b.integer(n, &in.Version, 2, 3) },
		"authentication": func(b *builder, in *Instance, n *node) {
			if b.needBlock(n) {
				dispatch(b, &b.auth, in, n.children)
			}
		},
		"virtual_ipaddress": func(b *builder, in *Instance, n *node) {
			if b.needBlock(n) {
				in.VIPs = append(in.VIPs, b.vips(n)...)
			}
		},
		"virtual_ipaddress_excluded": func(b *builder, in *Instance, n *node) {
			if b.needBlock(n) {
				in.ExcludedVIPs = append(in.ExcludedVIPs, b.vips(n)...)
			}
		},
		"unicast_src_ip": func(b *builder, in *Instance, n *node) { b.address(n, &in.UnicastSrcIP) },
		"mcast_src_ip":   func(b *builder, in *Instance, n *node) { b.address(n, &in.McastSrcIP) },
		"unicast_peer": func(b *builder, in *Instance, n *node) {
			if !b.needBlock(n) {
				return
			}
			for _, c := range n.children {
				if a, ok := b.parseAddr(c, c.kw); ok {
					in.UnicastPeers = append(in.UnicastPeers, a)
				}
				if len(c.args) > 0 {
					b.d.warnf(c.pos, c.kw, "peer options %q not implemented by halb; ignored", strings.Join(c.args, " "))
				}
			}
		},
		"nopreempt":     func(b *builder, in *Instance, n *node) { b.flag(n, &in.NoPreempt) },
		"preempt_delay": func(b *builder, in *Instance, n *node) { b.seconds(n, &in.PreemptDelay) },
		"track_mode": func(b *builder, in *Instance, n *node) {
			if v, ok := b.enum(n, trackModeNames()); ok {
				in.TrackMode = TrackMode(v)
			}
		},
		"track_script": func(b *builder, in *Instance, n *node) {
			if b.needBlock(n) {
				in.TrackScripts = append(in.TrackScripts, b.tracks(n, true)...)
			}
		},
		"track_file": func(b *builder, in *Instance, n *node) {
			if b.needBlock(n) {
				in.TrackFiles = append(in.TrackFiles, b.tracks(n, true)...)
			}
		},
		"track_process": func(b *builder, in *Instance, n *node) {
			if b.needBlock(n) {
				in.TrackProcs = append(in.TrackProcs, b.tracks(n, true)...)
			}
		},
		"track_interface": func(b *builder, in *Instance, n *node) {
			if b.needBlock(n) {
				in.TrackInterfaces = append(in.TrackInterfaces, b.tracks(n, false)...)
			}
		},
		"track_virtual_server": func(b *builder, in *Instance, n *node) {
			if b.needBlock(n) {
				in.TrackVirtServers = append(in.TrackVirtServers, b.trackVS(n)...)
			}
		},
		"notify":        script(func(in *Instance) *string { return &in.Notify }),
		"notify_master": script(func(in *Instance) *string { return &in.NotifyMaster }),
		"notify_backup": script(func(in *Instance) *string { return &in.NotifyBackup }),
		"notify_fault":  script(func(in *Instance) *string { return &in.NotifyFault }),
		"notify_stop":   script(func(in *Instance) *string { return &in.NotifyStop }),
		"garp_master_delay": func(b *builder, in *Instance, n *node) {
			b.seconds(n, &in.GarpMasterDelay)
		},
		"garp_master_repeat": func(b *builder, in *Instance, n *node) {
			b.integer(n, &in.GarpMasterRepeat, 0, 1<<20)
		},
		"garp_master_refresh": func(b *builder, in *Instance, n *node) {
			b.seconds(n, &in.GarpMasterRefresh)
		},
		"garp_master_refresh_repeat": func(b *builder, in *Instance, n *node) {
			b.integer(n, &in.GarpMasterRefreshRepeat, 0, 1<<20)
		},
		"dont_track_primary": func(b *builder, in *Instance, n *node) { b.flag(n, &in.DontTrackPrimary) },
		"fast_handover":      func(b *builder, in *Instance, n *node) { b.flag(n, &in.FastHandover) },
		"use_vmac": func(b *builder, in *Instance, n *node) {
			if b.arity(n, 0, 1) {
				in.UseVMAC = true
				if len(n.args) == 1 {
					in.VMACName = n.args[0]
				}
			}
		},
		"vmac_xmit_base": func(b *builder, in *Instance, n *node) { b.flag(n, &in.VMACXmitBase) },
		"smtp_alert":     func(b *builder, in *Instance, n *node) { b.flag(n, &in.SMTPAlert) },
		"accept": func(b *builder, in *Instance, n *node) {
			if b.arity(n, 0, 0) {
				b.instAccept[in] = true
			}
		},
		"no_accept": func(b *builder, in *Instance, n *node) {
			if b.arity(n, 0, 0) {
				b.instAccept[in] = false
			}
		},
	}
}

func authTable() table[Instance] {
	return table[Instance]{
		"auth_type": func(b *builder, in *Instance, n *node) {
			if s, ok := b.one(n); ok {
				switch strings.ToUpper(s) {
				case "PASS":
					in.AuthType = AuthPass
				case "AH":
					in.AuthType = AuthAH
				default:
					b.d.errorf(n.pos, n.kw, "%q is not PASS or AH", s)
				}
			}
		},
		"auth_pass": func(b *builder, in *Instance, n *node) {
			if b.arity(n, 1, -1) {
				in.AuthPass = strings.Join(n.args, " ")
				if len(in.AuthPass) > 8 {
					b.d.warnf(n.pos, n.kw, "password longer than 8 characters; truncated to 8 characters (as keepalived)")
					in.AuthPass = in.AuthPass[:8]
				}
			}
		},
	}
}

// vips parses the lines of virtual_ipaddress: ADDR[/LEN] [brd ADDR] [dev IF] [scope SCOPE] [label LABEL].
func (b *builder) vips(n *node) []VIP {
	var out []VIP
	for _, c := range n.children {
		if c.block {
			b.d.errorf(c.pos, c.kw, "unexpected block in %s", n.kw)
			continue
		}
		p, ok := b.parsePrefix(c, c.kw)
		if !ok {
			continue
		}
		v := VIP{Pos: c.pos, Prefix: p}
		for i := 0; i < len(c.args); i++ {
			opt := c.args[i]
			needArg := func() (string, bool) {
				if i+1 >= len(c.args) {
					b.d.errorf(c.pos, c.kw, "%s needs a value", opt)
					return "", false
				}
				i++
				return c.args[i], true
			}
			switch opt {
			case "brd", "broadcast":
				if s, ok := needArg(); ok {
					if a, ok := b.parseAddr(c, s); ok {
						v.Broadcast = a
					}
				}
			case "dev":
				if s, ok := needArg(); ok {
					v.Dev = s
				}
			case "scope":
				if s, ok := needArg(); ok {
					if sc, ok := parseScope(s); ok {
						v.Scope = sc
					} else {
						b.d.errorf(c.pos, c.kw, "scope %q is not global|site|link|host|nowhere (0, 200, 253, 254, 255)", s)
					}
				}
			case "label":
				if s, ok := needArg(); ok {
					v.Label = s
				}
			case "preferred_lft", "peer", "track_group", "metric":
				if s, ok := needArg(); ok {
					b.d.warnf(c.pos, c.kw, "address option %q %q not implemented by halb; ignored", opt, s)
				}
			case "no_track", "home", "nodad", "-nodad", "noprefixroute", "autojoin", "mngtmpaddr":
				b.d.warnf(c.pos, c.kw, "address option %q not implemented by halb; ignored", opt)
			default:
				b.d.errorf(c.pos, c.kw, "unknown address option %q (brd, dev, scope, label)", opt)
			}
		}
		out = append(out, v)
	}
	return out
}

// tracks parses track_script / track_interface lines: NAME [weight N [reverse]].
func (b *builder) tracks(n *node, script bool) []Track {
	var out []Track
	for _, c := range n.children {
		if c.block {
			b.d.errorf(c.pos, c.kw, "unexpected block in %s", n.kw)
			continue
		}
		t := Track{Pos: c.pos, Name: c.kw}
		args := c.args
		if len(args) >= 2 && args[0] == "weight" {
			if v, ok := b.parseInt(c, args[1], -254, 254); ok {
				t.Weight, t.HasWeight = v, true
			}
			args = args[2:]
			if script && len(args) > 0 && (args[0] == "reverse" || args[0] == "noreverse") {
				t.Reverse = args[0] == "reverse"
				args = args[1:]
			}
		}
		if len(args) > 0 {
			b.d.errorf(c.pos, c.kw, "unexpected %q (expected NAME [weight N%s])", strings.Join(args, " "),
				map[bool]string{true: " [reverse|noreverse]", false: ""}[script])
			continue
		}
		out = append(out, t)
	}
	return out
}

// trackVS parses track_virtual_server lines: ADDR PORT [weight N].
func (b *builder) trackVS(n *node) []TrackVS {
	var out []TrackVS
	for _, c := range n.children {
		if c.block || (len(c.args) != 1 && len(c.args) != 3) || (len(c.args) == 3 && c.args[1] != "weight") {
			b.d.errorf(c.pos, n.kw, "expected ADDR PORT [weight N]")
			continue
		}
		ap, ok := b.addrPort(c, c.kw, c.args[0], 1)
		if !ok {
			continue
		}
		t := TrackVS{Pos: c.pos, Addr: ap}
		if len(c.args) == 3 {
			v, ok := b.parseInt(c, c.args[2], -254, 254)
			if !ok {
				continue
			}
			t.Weight, t.HasWeight = v, true
		}
		out = append(out, t)
	}
	return out
}

func (b *builder) buildSyncGroup(n *node) {
	name, valid := b.named(n)
	if !n.block {
		return
	}
	g := &SyncGroup{Pos: n.pos, Name: name}
	dispatch(b, &b.sync, g, n.children)
	if valid {
		b.cfg.SyncGroups = append(b.cfg.SyncGroups, g)
	}
}

func syncTable() table[SyncGroup] {
	return table[SyncGroup]{
		"group": func(b *builder, g *SyncGroup, n *node) {
			if b.needBlock(n) {
				g.Group = append(g.Group, listItems(n)...)
			}
		},
		"notify":        func(b *builder, g *SyncGroup, n *node) { b.command(n, &g.Notify) },
		"notify_master": func(b *builder, g *SyncGroup, n *node) { b.command(n, &g.NotifyMaster) },
		"notify_backup": func(b *builder, g *SyncGroup, n *node) { b.command(n, &g.NotifyBackup) },
		"notify_fault":  func(b *builder, g *SyncGroup, n *node) { b.command(n, &g.NotifyFault) },
		"smtp_alert":    func(b *builder, g *SyncGroup, n *node) { b.flag(n, &g.SMTPAlert) },
		"track_script": func(b *builder, g *SyncGroup, n *node) {
			if b.needBlock(n) {
				g.TrackScripts = append(g.TrackScripts, b.tracks(n, true)...)
			}
		},
		"track_interface": func(b *builder, g *SyncGroup, n *node) {
			if b.needBlock(n) {
				g.TrackInterfaces = append(g.TrackInterfaces, b.tracks(n, false)...)
			}
		},
		"track_file": func(b *builder, g *SyncGroup, n *node) {
			if b.needBlock(n) {
				g.TrackFiles = append(g.TrackFiles, b.tracks(n, true)...)
			}
		},
		"track_process": func(b *builder, g *SyncGroup, n *node) {
			if b.needBlock(n) {
				g.TrackProcs = append(g.TrackProcs, b.tracks(n, true)...)
			}
		},
		"sync_group_tracking_weight": func(b *builder, g *SyncGroup, n *node) { b.flag(n, &g.TrackingWeight) },
	}
}
