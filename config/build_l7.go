package config

import (
	"crypto/tls"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults of the HTTP front (issue 13): they match the proxy's (proxy.DefaultHTTPKeepAliveTimeout,
// proxy.DefaultMaxHeaderSize, proxy.DefaultMaxURISize); a daemon test asserts they agree.
const (
	defaultTimeoutHTTPKeepAlive = 10 * time.Second
	defaultMaxHeaderSize        = 16 << 10
	defaultMaxURISize           = 8 << 10

	maxErrorPageSize = 1 << 20 // an error page is held in memory and sent whole
)

// l7Specs are the keyword tables of the layer-7 blocks, and what the build learns for validation.
type l7Specs struct {
	pool     blockSpec[vsBuild]
	route    blockSpec[Route]
	rules    blockSpec[ruleBuild]
	readFile func(string) ([]byte, error)
	// used records, per service, the first layer-7 keyword given (for "needs proxy_mode http"),
	// and at records where each was first given.
	used map[*VirtualServer]l7Use
	at   map[*VirtualServer]map[string]Pos
}

type l7Use struct {
	pos Pos
	kw  string
}

// ruleBuild collects the lines of an http_request or http_response block.
type ruleBuild struct{ rules *[]HeaderRule }

// newL7Specs makes the layer-7 tables; the pool block reuses the virtual_server handlers vs.
func newL7Specs(vs table[vsBuild]) *l7Specs {
	s := &l7Specs{used: map[*VirtualServer]l7Use{}, at: map[*VirtualServer]map[string]Pos{}, readFile: readRegularFile}
	pool := table[vsBuild]{}
	for _, k := range []string{"lb_algo", "lvs_sched", "delay_loop", "real_server", "connect_timeout", "retry",
		"delay_before_retry", "warmup", "rise", "fall", "alpha", "omega", "inhibit_on_failure", "persistence_timeout",
		"persistence_granularity", "quorum", "hysteresis"} {
		pool[k] = vs[k]
	}
	s.pool = blockSpec[vsBuild]{"pool", pool}
	s.route = blockSpec[Route]{"route", routeTable()}
	s.rules = blockSpec[ruleBuild]{"http_request", ruleTable()}
	addL7VSKeywords(s, vs)
	return s
}

// l7TakesBlock lists the layer-7 keywords that open a block.
func l7TakesBlock(kw string) bool {
	return kw == "pool" || kw == "route" || kw == "http_request" || kw == "http_response"
}

// addL7VSKeywords adds the virtual_server keywords of layer 7 and of the HTTP front.
func addL7VSKeywords(s *l7Specs, t table[vsBuild]) {
	// l7 wraps a handler to record that the service uses a layer-7 keyword.
	l7 := func(h handler[vsBuild]) handler[vsBuild] {
		return func(b *builder, v *vsBuild, n *node) {
			if _, ok := s.used[v.vs]; !ok {
				s.used[v.vs] = l7Use{n.pos, n.kw}
				s.at[v.vs] = map[string]Pos{}
			}
			if _, ok := s.at[v.vs][n.kw]; !ok {
				s.at[v.vs][n.kw] = n.pos
			}
			h(b, v, n)
		}
	}
	t["timeout_http_keep_alive"] = func(b *builder, v *vsBuild, n *node) { b.duration(n, &v.vs.TimeoutHTTPKeepAlive) }
	t["max_header_size"] = func(b *builder, v *vsBuild, n *node) { b.sizeInt(n, &v.vs.MaxHeaderSize, 1<<10, 1<<20) }
	t["max_uri_size"] = func(b *builder, v *vsBuild, n *node) { b.sizeInt(n, &v.vs.MaxURISize, 64, 1<<20) }

	t["tls_certificate"] = l7(func(b *builder, v *vsBuild, n *node) {
		if !b.arity(n, 1, 2) {
			return
		}
		c := TLSCertificate{Pos: n.pos, Cert: relPath(n.pos, n.args[0])}
		if len(n.args) == 2 {
			c.Key = relPath(n.pos, n.args[1])
		}
		v.vs.L7.Certificates = append(v.vs.L7.Certificates, c)
	})
	t["tls_min_version"] = l7(func(b *builder, v *vsBuild, n *node) {
		if x, ok := b.enum(n, tlsVersionNames()); ok {
			v.vs.L7.TLSMinVersion = TLSVersion(x)
		}
	})
	t["alpn"] = l7(func(b *builder, v *vsBuild, n *node) {
		if !b.arity(n, 1, 2) {
			return
		}
		v.vs.L7.ALPN = v.vs.L7.ALPN[:0]
		for _, p := range n.args {
			if p != "h2" && p != "http/1.1" {
				b.d.errorf(n.pos, n.kw, "%q is not h2 or http/1.1", p)
				continue
			}
			v.vs.L7.ALPN = append(v.vs.L7.ALPN, p)
		}
	})
	t["route"] = l7(func(b *builder, v *vsBuild, n *node) {
		if !b.needBlock(n) {
			return
		}
		if len(n.args) > 0 {
			b.d.errorf(n.pos, n.kw, "takes no argument")
		}
		r := &Route{Pos: n.pos}
		dispatch(b, &s.route, r, n.children)
		switch {
		case r.Pool == "" && r.Redirect == nil:
			b.d.errorf(n.pos, n.kw, "needs an action: pool NAME or redirect CODE LOCATION")
		case r.Pool != "" && r.Redirect != nil:
			b.d.errorf(n.pos, n.kw, "has both pool and redirect; give one")
		default:
			v.vs.L7.Routes = append(v.vs.L7.Routes, r)
		}
	})
	rules := func(dst func(*L7) *[]HeaderRule) handler[vsBuild] {
		return l7(func(b *builder, v *vsBuild, n *node) {
			if !b.needBlock(n) {
				return
			}
			if len(n.args) > 0 {
				b.d.errorf(n.pos, n.kw, "takes no argument")
			}
			dispatch(b, &s.rules, &ruleBuild{dst(&v.vs.L7)}, n.children)
		})
	}
	t["http_request"] = rules(func(l *L7) *[]HeaderRule { return &l.RequestRules })
	t["http_response"] = rules(func(l *L7) *[]HeaderRule { return &l.ResponseRules })
	t["persistence_cookie"] = l7(func(b *builder, v *vsBuild, n *node) {
		if !b.arity(n, 2, 2) {
			return
		}
		if !isToken(n.args[0]) {
			b.d.errorf(n.pos, n.kw, "%q is not a cookie name", n.args[0])
			return
		}
		if x, ok := b.parseEnum(n, n.args[1], cookieModeNames()); ok {
			v.vs.L7.PersistenceCookie = &PersistenceCookie{Pos: n.pos, Name: n.args[0], Mode: CookieMode(x)}
		}
	})
	t["error_page"] = l7(func(b *builder, v *vsBuild, n *node) {
		if !b.arity(n, 2, 2) {
			return
		}
		code, ok := b.parseInt(n, n.args[0], 400, 599)
		if !ok {
			return
		}
		for _, p := range v.vs.L7.ErrorPages {
			if p.Code == code {
				b.d.errorf(n.pos, n.kw, "%d already has a page at %s", code, p.Pos)
				return
			}
		}
		v.vs.L7.ErrorPages = append(v.vs.L7.ErrorPages, ErrorPage{Pos: n.pos, Code: code, File: relPath(n.pos, n.args[1])})
	})
	t["max_body_size"] = l7(func(b *builder, v *vsBuild, n *node) {
		if s, ok := b.one(n); ok {
			if x, ok := b.parseSize(n, s, 0, 1<<40); ok {
				v.vs.L7.MaxBodySize = x
			}
		}
	})
	t["request_id"] = l7(func(b *builder, v *vsBuild, n *node) {
		if s, ok := b.one(n); ok {
			if !isToken(s) {
				b.d.errorf(n.pos, n.kw, "%q is not a header name", s)
				return
			}
			v.vs.L7.RequestID = s
		}
	})
	t["redirect_scheme"] = l7(func(b *builder, v *vsBuild, n *node) {
		if !b.arity(n, 1, 2) {
			return
		}
		r := &SchemeRedirect{Pos: n.pos, Scheme: strings.ToLower(n.args[0]), Code: 302}
		if r.Scheme != "https" && r.Scheme != "http" {
			b.d.errorf(n.pos, n.kw, "%q is not https or http", n.args[0])
			return
		}
		if len(n.args) == 2 {
			c, ok := b.redirectCode(n, n.args[1])
			if !ok {
				return
			}
			r.Code = c
		}
		v.vs.L7.RedirectScheme = r
	})
}

// relPath resolves a file named in the configuration against the directory of that file.
func relPath(pos Pos, p string) string {
	if filepath.IsAbs(p) || pos.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(pos.File), p)
}

func (b *builder) redirectCode(n *node, s string) (int, bool) {
	switch s {
	case "301", "302", "303", "307", "308":
		c, _ := strconv.Atoi(s)
		return c, true
	}
	b.d.errorf(n.pos, n.kw, "%q is not a redirect status (301|302|303|307|308)", s)
	return 0, false
}

func routeTable() table[Route] {
	single := func(set func(r *Route) *string, check func(b *builder, n *node, s string) bool) handler[Route] {
		return func(b *builder, r *Route, n *node) {
			s, ok := b.one(n)
			if !ok || !check(b, n, s) {
				return
			}
			dst := set(r)
			if *dst != "" {
				b.d.errorf(n.pos, n.kw, "given twice in one route")
				return
			}
			*dst = s
		}
	}
	absPath := func(b *builder, n *node, s string) bool {
		if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\r\n?#") {
			b.d.errorf(n.pos, n.kw, "%q is not a path (it starts with / and has no space, ? or #)", s)
			return false
		}
		return true
	}
	return table[Route]{
		"host": func(b *builder, r *Route, n *node) {
			if !b.arity(n, 1, -1) {
				return
			}
			for _, h := range n.args {
				h = strings.TrimSuffix(strings.ToLower(h), ".")
				if !validServerName(h) {
					b.d.errorf(n.pos, n.kw, "%q is not a host name (www.example.com or *.example.com)", h)
					continue
				}
				r.Hosts = append(r.Hosts, h)
			}
		},
		"path_prefix": single(func(r *Route) *string { return &r.PathPrefix }, absPath),
		"path_exact":  single(func(r *Route) *string { return &r.PathExact }, absPath),
		"path_regex": single(func(r *Route) *string { return &r.PathRegex }, func(b *builder, n *node, s string) bool {
			if _, err := regexp.Compile(s); err != nil {
				b.d.errorf(n.pos, n.kw, "invalid regular expression: %v", err)
				return false
			}
			return true
		}),
		"method": func(b *builder, r *Route, n *node) {
			if !b.arity(n, 1, -1) {
				return
			}
			for _, m := range n.args {
				if !isToken(m) {
					b.d.errorf(n.pos, n.kw, "%q is not a method", m)
					continue
				}
				r.Methods = append(r.Methods, strings.ToUpper(m))
			}
		},
		"header": func(b *builder, r *Route, n *node) {
			if !b.arity(n, 2, 2) {
				return
			}
			if !isToken(n.args[0]) || !validHeaderValue(n.args[1]) {
				b.d.errorf(n.pos, n.kw, "expects a header NAME and VALUE")
				return
			}
			r.Headers = append(r.Headers, HeaderMatch{Name: n.args[0], Value: n.args[1]})
		},
		"src":  func(b *builder, r *Route, n *node) { b.prefixes(n, &r.Sources) },
		"pool": single(func(r *Route) *string { return &r.Pool }, func(*builder, *node, string) bool { return true }),
		"redirect": func(b *builder, r *Route, n *node) {
			if !b.arity(n, 2, 2) {
				return
			}
			c, ok := b.redirectCode(n, n.args[0])
			if !ok {
				return
			}
			if !validHeaderValue(n.args[1]) || strings.ContainsAny(n.args[1], " \t") || n.args[1] == "" {
				b.d.errorf(n.pos, n.kw, "%q is not a Location (a URL or a path, without spaces)", n.args[1])
				return
			}
			if r.Redirect != nil {
				b.d.errorf(n.pos, n.kw, "given twice in one route")
				return
			}
			r.Redirect = &Redirect{Code: c, Location: n.args[1]}
		},
	}
}

// framingHeaders may not be changed by header rules: they decide where a message ends and
// whether the connection stays open, which the proxy alone owns.
var framingHeaders = []string{"content-length", "transfer-encoding", "connection", "keep-alive",
	"proxy-connection", "te", "trailer", "upgrade"}

func ruleTable() table[ruleBuild] {
	rule := func(a HeaderAction) handler[ruleBuild] {
		return func(b *builder, r *ruleBuild, n *node) {
			lo, hi := 2, 2
			if a == HeaderDel {
				lo, hi = 1, 1
			}
			if !b.arity(n, lo, hi) {
				return
			}
			name := n.args[0]
			if !isToken(name) {
				b.d.errorf(n.pos, n.kw, "%q is not a header name", name)
				return
			}
			for _, f := range framingHeaders {
				if strings.EqualFold(name, f) {
					b.d.errorf(n.pos, n.kw, "%s is a framing header the proxy owns; it cannot be rewritten", name)
					return
				}
			}
			hr := HeaderRule{Pos: n.pos, Action: a, Name: name}
			if a != HeaderDel {
				if !validHeaderValue(n.args[1]) {
					b.d.errorf(n.pos, n.kw, "%q is not a header value (no control characters)", n.args[1])
					return
				}
				hr.Value = n.args[1]
			}
			*r.rules = append(*r.rules, hr)
		}
	}
	return table[ruleBuild]{
		"set_header": rule(HeaderSet),
		"add_header": rule(HeaderAdd),
		"del_header": rule(HeaderDel),
	}
}

// isToken reports whether s is an RFC 9110 token (a header name, a method, a cookie name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters (CR, LF, NUL...) in a header value.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseSize reads a byte size: a number with an optional k, m or g suffix (powers of 1024).
func (b *builder) parseSize(n *node, s string, lo, hi int64) (int64, bool) {
	num, mult := s, int64(1)
	if l := len(s); l > 0 {
		switch s[l-1] {
		case 'k', 'K':
			num, mult = s[:l-1], 1<<10
		case 'm', 'M':
			num, mult = s[:l-1], 1<<20
		case 'g', 'G':
			num, mult = s[:l-1], 1<<30
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > hi/mult || v*mult < lo {
		b.d.errorf(n.pos, n.kw, "%q is not a size from %d to %d bytes (like 512k, 10m)", s, lo, hi)
		return 0, false
	}
	return v * mult, true
}

func (b *builder) sizeInt(n *node, dst *int, lo, hi int64) {
	if s, ok := b.one(n); ok {
		if v, ok := b.parseSize(n, s, lo, hi); ok {
			*dst = int(v)
		}
	}
}

// buildPool parses a top-level pool block with the virtual_server's keyword handlers.
func (b *builder) buildPool(n *node) {
	name, valid := b.named(n)
	if !n.block {
		return
	}
	vs := &VirtualServer{Pos: n.pos, Kind: VSAddr, DelayLoop: defaultDelayLoop, LBAlgo: AlgoWLC, LBKind: LBKindNAT,
		Protocol: ProtoTCP, Quorum: 1, Rise: 1, Fall: 1}
	vb := &vsBuild{vs: vs, defs: newCheckerDefaults()}
	dispatch(b, &b.l7.pool, vb, n.children)
	b.finishServers(vb)
	if !valid {
		return
	}
	b.cfg.Pools = append(b.cfg.Pools, &Pool{
		Pos: n.pos, Name: name, LBAlgo: vs.LBAlgo, DelayLoop: vs.DelayLoop,
		PersistenceTimeout: vs.PersistenceTimeout, PersistenceGranularity: vs.PersistenceGranularity,
		Quorum: vs.Quorum, Hysteresis: vs.Hysteresis, Alpha: vs.Alpha, Omega: vs.Omega,
		InhibitOnFailure: vs.InhibitOnFailure, Rise: vs.Rise, Fall: vs.Fall, RealServers: vs.RealServers,
	})
}

// validateL7 checks the pools and every service's layer-7 keywords, reading the files they name.
func (b *builder) validateL7() {
	pools := map[string]*Pool{}
	for _, p := range b.cfg.Pools {
		if prev, ok := pools[p.Name]; ok {
			b.d.errorf(p.Pos, "pool", "%s is already defined at %s", p.Name, prev.Pos)
			continue
		}
		pools[p.Name] = p
		if len(p.RealServers) == 0 {
			b.d.warnf(p.Pos, "pool", "%s has no real_server", p.Name)
		}
		seen := map[string]Pos{}
		for _, rs := range p.RealServers {
			if prev, ok := seen[rs.Addr.String()]; ok && rs.Addr.IsValid() {
				b.d.errorf(rs.Pos, "real_server", "%s is already defined in this pool at %s", rs.Addr, prev)
			}
			seen[rs.Addr.String()] = rs.Pos
			if len(rs.SNI) > 0 {
				b.d.warnf(rs.Pos, "sni", "real_server %s: sni has no effect in a pool; ignored", rs.Addr)
			}
			for _, ck := range rs.Checkers {
				b.validateChecker(rs, ck)
			}
		}
	}
	used := map[string]bool{}
	for _, vs := range b.cfg.VirtualServers {
		l := &vs.L7
		for _, r := range l.Routes {
			if r.Pool == "" {
				continue
			}
			used[r.Pool] = true
			if _, ok := pools[r.Pool]; !ok {
				b.d.errorf(r.Pos, "pool", "no pool named %q", r.Pool)
			}
		}
		if u, ok := b.l7.used[vs]; ok && vs.ProxyMode != ProxyHTTP {
			if vs.ProxyMode == ProxyTLS && l.Terminates() {
				b.d.errorf(l.Certificates[0].Pos, "tls_certificate", "%s: proxy_mode tls passes TLS through to the servers; "+
					"a service can't both pass through and terminate (use proxy_mode http to terminate)", vs.Name())
			} else {
				b.d.errorf(u.pos, u.kw, "%s: needs proxy_mode http (this service is %s)", vs.Name(), vs.ProxyMode)
			}
			continue
		}
		if !l.Terminates() && (len(l.ALPN) > 0 || l.TLSMinVersion != TLS12) {
			kw := "alpn"
			if len(l.ALPN) == 0 {
				kw = "tls_min_version"
			}
			b.d.errorf(b.l7.at[vs][kw], kw, "%s: needs tls_certificate (TLS termination)", vs.Name())
		}
		if r := l.RedirectScheme; r != nil && l.Terminates() && r.Scheme == "https" {
			b.d.errorf(r.Pos, "redirect_scheme", "%s: this service terminates TLS; redirecting it to https would loop", vs.Name())
		}
		for _, c := range l.Certificates {
			b.checkCertificate(c)
		}
		for _, p := range l.ErrorPages {
			data, err := b.l7.readFile(p.File)
			switch {
			case err != nil:
				b.d.errorf(p.Pos, "error_page", "%v", unwrapPathErr(err, p.File))
			case len(data) > maxErrorPageSize:
				b.d.errorf(p.Pos, "error_page", "%s is larger than %d KiB", p.File, maxErrorPageSize>>10)
			}
		}
	}
	for _, p := range b.cfg.Pools {
		if !used[p.Name] {
			b.d.warnf(p.Pos, "pool", "%s is not used by any route", p.Name)
		}
	}
}

// checkCertificate loads a certificate and its key as the proxy will, so that a missing file or a
// key that does not match is refused at load time with its line.
func (b *builder) checkCertificate(c TLSCertificate) {
	certPEM, err := b.l7.readFile(c.Cert)
	if err != nil {
		b.d.errorf(c.Pos, "tls_certificate", "%v", unwrapPathErr(err, c.Cert))
		return
	}
	keyPEM := certPEM
	if c.Key != "" {
		if keyPEM, err = b.l7.readFile(c.Key); err != nil {
			b.d.errorf(c.Pos, "tls_certificate", "%v", unwrapPathErr(err, c.Key))
			return
		}
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		b.d.errorf(c.Pos, "tls_certificate", "%s: %v", c.Cert, err)
	}
}
