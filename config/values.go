package config

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Argument helpers: each reports its own error (with the node's position and keyword) and says
// whether the value is good.

// arity checks the number of arguments; max < 0 means no upper bound.
func (b *builder) arity(n *node, lo, hi int) bool {
	switch {
	case len(n.args) < lo && lo == hi:
		b.d.errorf(n.pos, n.kw, "expects %d argument(s), got %d", lo, len(n.args))
	case len(n.args) < lo:
		b.d.errorf(n.pos, n.kw, "expects at least %d argument(s), got %d", lo, len(n.args))
	case hi >= 0 && len(n.args) > hi && lo == hi:
		b.d.errorf(n.pos, n.kw, "expects %d argument(s), got %d", lo, len(n.args))
	case hi >= 0 && len(n.args) > hi:
		b.d.errorf(n.pos, n.kw, "expects at most %d argument(s), got %d", hi, len(n.args))
	default:
		return true
	}
	return false
}

// one returns the single argument of n.
func (b *builder) one(n *node) (string, bool) {
	if !b.arity(n, 1, 1) {
		return "", false
	}
	return n.args[0], true
}

// str sets *dst to the single argument.
func (b *builder) str(n *node, dst *string) {
	if s, ok := b.one(n); ok {
		*dst = s
	}
}

// command sets *dst to the arguments joined by spaces (a script with its arguments, quoted or not).
func (b *builder) command(n *node, dst *string) {
	if b.arity(n, 1, -1) {
		*dst = strings.Join(n.args, " ")
	}
}

// flag sets *dst for a keyword that takes no argument or an optional boolean (on|off|true|false|yes|no).
func (b *builder) flag(n *node, dst *bool) {
	if !b.arity(n, 0, 1) {
		return
	}
	if len(n.args) == 0 {
		*dst = true
		return
	}
	if v, ok := b.parseBool(n, n.args[0]); ok {
		*dst = v
	}
}

func (b *builder) parseBool(n *node, s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "on", "true", "yes", "1":
		return true, true
	case "off", "false", "no", "0":
		return false, true
	}
	b.d.errorf(n.pos, n.kw, "%q is not a boolean (on|off|true|false|yes|no)", s)
	return false, false
}

func (b *builder) parseInt(n *node, s string, lo, hi int) (int, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		b.d.errorf(n.pos, n.kw, "%q is not an integer", s)
		return 0, false
	}
	if v < int64(lo) || v > int64(hi) {
		b.d.errorf(n.pos, n.kw, "%d is out of range %d..%d", v, lo, hi)
		return 0, false
	}
	return int(v), true
}

// integer sets *dst to the single integer argument, within lo..hi.
func (b *builder) integer(n *node, dst *int, lo, hi int) {
	if s, ok := b.one(n); ok {
		if v, ok := b.parseInt(n, s, lo, hi); ok {
			*dst = v
		}
	}
}

// maxSeconds bounds keepalived timers (about 31 years; keeps nanoseconds within int64).
const maxSeconds = 1e9

// parseSeconds reads a keepalived TIMER: seconds as an integer or a decimal ("3", "0.5").
func (b *builder) parseSeconds(n *node, s string) (time.Duration, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(s, "xXpP_") {
		b.d.errorf(n.pos, n.kw, "%q is not a number of seconds", s)
		return 0, false
	}
	if f < 0 || f > maxSeconds {
		b.d.errorf(n.pos, n.kw, "%s seconds is out of range 0..%d", s, int64(maxSeconds))
		return 0, false
	}
	// Microsecond resolution, as keepalived.
	return time.Duration(math.Round(f*1e6)) * time.Microsecond, true
}

// seconds sets *dst to the single TIMER argument.
func (b *builder) seconds(n *node, dst *time.Duration) {
	if s, ok := b.one(n); ok {
		if v, ok := b.parseSeconds(n, s); ok {
			*dst = v
		}
	}
}

// parseDuration reads a halb duration: a Go duration ("5s", "500ms", "1m") or bare seconds.
func (b *builder) parseDuration(n *node, s string) (time.Duration, bool) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			b.d.errorf(n.pos, n.kw, "negative duration %q", s)
			return 0, false
		}
		return d, true
	}
	if s != "" && (s[0] >= '0' && s[0] <= '9' || s[0] == '.') {
		return b.parseSeconds(n, s)
	}
	b.d.errorf(n.pos, n.kw, "%q is not a duration (like 5s, 500ms, 1m, or seconds)", s)
	return 0, false
}

// duration sets *dst to the single halb duration argument.
func (b *builder) duration(n *node, dst *time.Duration) {
	if s, ok := b.one(n); ok {
		if v, ok := b.parseDuration(n, s); ok {
			*dst = v
		}
	}
}

func (b *builder) parseAddr(n *node, s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		b.d.errorf(n.pos, n.kw, "%q is not an IP address", s)
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// address sets *dst to the single address argument.
func (b *builder) address(n *node, dst *netip.Addr) {
	if s, ok := b.one(n); ok {
		if a, ok := b.parseAddr(n, s); ok {
			*dst = a
		}
	}
}

func (b *builder) parsePort(n *node, s string, lo int) (uint16, bool) {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil || int(v) < lo {
		b.d.errorf(n.pos, n.kw, "%q is not a port number (%d..65535)", s, lo)
		return 0, false
	}
	return uint16(v), true
}

// addrPort parses "ADDR PORT" from two words.
func (b *builder) addrPort(n *node, addr, port string, minPort int) (netip.AddrPort, bool) {
	a, ok1 := b.parseAddr(n, addr)
	p, ok2 := b.parsePort(n, port, minPort)
	if !ok1 || !ok2 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, p), true
}

// parsePrefix reads ADDR[/LEN]; a bare address gets its full length.
func (b *builder) parsePrefix(n *node, s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			b.d.errorf(n.pos, n.kw, "%q is not an address/length", s)
			return netip.Prefix{}, false
		}
		return p, true
	}
	a, ok := b.parseAddr(n, s)
	if !ok {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// parseEnum reads one of names (case-insensitive).
func (b *builder) parseEnum(n *node, s string, names []string) (int, bool) {
	if i, ok := lookupEnum(s, names); ok {
		return i, true
	}
	b.d.errorf(n.pos, n.kw, "%q is not one of %s", s, strings.Join(names, "|"))
	return 0, false
}

// enum parses the single argument as one of names.
func (b *builder) enum(n *node, names []string) (int, bool) {
	s, ok := b.one(n)
	if !ok {
		return 0, false
	}
	return b.parseEnum(n, s, names)
}

// userGroup reads "USER [GROUP]".
func (b *builder) userGroup(n *node, user, group *string) {
	if b.arity(n, 1, 2) {
		*user = n.args[0]
		if len(n.args) == 2 {
			*group = n.args[1]
		}
	}
}

// proxyVersion reads send_proxy's argument.
func (b *builder) proxyVersion(n *node, dst *ProxyProtocol) {
	if !b.arity(n, 0, 1) {
		return
	}
	if len(n.args) == 0 { // "send_proxy" alone: v1, as HAProxy's send-proxy
		*dst = ProxyProtoV1
		return
	}
	switch strings.ToLower(n.args[0]) {
	case "v1", "1":
		*dst = ProxyProtoV1
	case "v2", "2":
		*dst = ProxyProtoV2
	default:
		b.d.errorf(n.pos, n.kw, "%q is not a PROXY protocol version (v1|v2)", n.args[0])
	}
}

// prefixes reads a list of CIDRs (a bare address is a /32 or /128).
func (b *builder) prefixes(n *node, dst *[]netip.Prefix) {
	if !b.arity(n, 1, -1) {
		return
	}
	for _, s := range n.args {
		if p, ok := b.parsePrefix(n, s); ok {
			*dst = append(*dst, p.Masked())
		}
	}
}
