package config

import (
	"encoding/hex"
	"strings"
	"time"
)

// DNS query types DNS_CHECK accepts (keepalived's list).
var dnsTypes = []string{"A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"}

// moreCheckerKeywords adds the keywords of DNS_CHECK, SMTP_CHECK, UDP_CHECK and FILE_CHECK.
func moreCheckerKeywords(k CheckerKind, t table[ckBuild]) {
	switch k {
	case CheckDNS:
		t["type"] = func(b *builder, c *ckBuild, n *node) {
			if s, ok := b.one(n); ok {
				if i, ok := lookupEnum(s, dnsTypes); ok {
					c.ck.DNSType = dnsTypes[i]
				} else {
					b.d.errorf(n.pos, n.kw, "DNS type %q is not one of %s", s, strings.Join(dnsTypes, ", "))
				}
			}
		}
		t["name"] = func(b *builder, c *ckBuild, n *node) {
			if s, ok := b.one(n); ok {
				if !validDNSName(s) {
					b.d.errorf(n.pos, n.kw, "%q is not a domain name", s)
					return
				}
				c.ck.DNSName = s
			}
		}
	case CheckSMTP:
		t["helo_name"] = func(b *builder, c *ckBuild, n *node) { b.str(n, &c.ck.HeloName) }
		// keepalived 1.x wrote SMTP_CHECK's target as a nested host block.
		t["host"] = func(b *builder, c *ckBuild, n *node) {
			b.d.errorf(n.pos, n.kw, "SMTP_CHECK host blocks are keepalived 1.x syntax; use one SMTP_CHECK per address with connect_ip/connect_port")
		}
	case CheckUDP:
		t["payload"] = func(b *builder, c *ckBuild, n *node) {
			if s, ok := b.one(n); ok {
				if p, ok := b.hexBytes(n, s); ok {
					c.ck.Payload = p
				}
			}
		}
		t["require_reply"] = func(b *builder, c *ckBuild, n *node) {
			if !b.arity(n, 0, 1) {
				return
			}
			c.ck.RequireReply = true
			if len(n.args) == 1 {
				if p, ok := b.hexBytes(n, n.args[0]); ok {
					c.ck.Reply = p
				}
			}
		}
		t["min_reply_length"] = func(b *builder, c *ckBuild, n *node) { b.integer(n, &c.ck.MinReplyLength, 0, 65507) }
		t["max_reply_length"] = func(b *builder, c *ckBuild, n *node) { b.integer(n, &c.ck.MaxReplyLength, 0, 65507) }
	case CheckFile:
		for _, kw := range []string{"connect_ip", "connect_port", "bindto", "bind_port", "connect_timeout"} {
			delete(t, kw)
		}
		t["track_file"] = func(b *builder, c *ckBuild, n *node) { b.str(n, &c.ck.TrackFile) }
		t["dynamic"] = func(b *builder, c *ckBuild, n *node) { b.flag(n, &c.ck.FileDynamic) }
		t["weight"] = func(b *builder, c *ckBuild, n *node) {
			if !b.arity(n, 1, 2) {
				return
			}
			if len(n.args) == 2 {
				if n.args[1] != "reverse" {
					b.d.errorf(n.pos, n.kw, "expects WEIGHT [reverse], got %q", n.args[1])
					return
				}
				c.ck.FileReverse = true
			}
			if v, ok := b.parseInt(n, n.args[0], -2147483647, 2147483647); ok {
				c.ck.FileWeight, c.ck.fileWeightSet = v, true
			}
		}
	}
}

// finishMoreChecker applies the defaults of the checkers above once their block is read.
func finishMoreChecker(ck *Checker) {
	switch ck.Kind {
	case CheckDNS:
		if ck.DNSType == "" {
			ck.DNSType = "SOA"
		}
		if ck.DNSName == "" {
			ck.DNSName = "."
		}
	case CheckUDP:
		if ck.RequireReply && ck.MaxReplyLength == 0 {
			ck.MaxReplyLength = 255 // keepalived's default
		}
	}
}

// hexBytes decodes a keepalived HEX_STR (an even number of hex digits).
func (b *builder) hexBytes(n *node, s string) ([]byte, bool) {
	p, err := hex.DecodeString(s)
	if err != nil || len(p) == 0 {
		b.d.errorf(n.pos, n.kw, "%q is not a hex string (pairs of hex digits, like 00ff)", s)
		return nil, false
	}
	return p, true
}

// validDNSName accepts "." and dotted labels of at most 63 bytes, 253 in all.
func validDNSName(s string) bool {
	if s == "." {
		return true
	}
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || strings.ContainsAny(l, " \t\"\\") {
			return false
		}
	}
	return true
}

// validateMoreCheckers resolves FILE_CHECK's track_file and checks UDP_CHECK's bounds, once the
// whole file is read.
func (b *builder) validateMoreCheckers(vs *VirtualServer) {
	for _, rs := range vs.RealServers {
		for _, ck := range rs.Checkers {
			switch ck.Kind {
			case CheckUDP:
				if ck.MaxReplyLength > 0 && ck.MinReplyLength > ck.MaxReplyLength {
					b.d.errorf(ck.Pos, ck.Kind.String(), "min_reply_length %d is above max_reply_length %d", ck.MinReplyLength, ck.MaxReplyLength)
				}
				if !ck.RequireReply && (ck.Reply != nil || ck.MinReplyLength > 0) {
					b.d.errorf(ck.Pos, ck.Kind.String(), "reply lengths need require_reply")
				}
			case CheckFile:
				if ck.TrackFile == "" {
					b.d.errorf(ck.Pos, ck.Kind.String(), "real_server %s: FILE_CHECK without track_file", rs.Addr)
					continue
				}
				var tf *TrackFile
				for _, f := range b.cfg.TrackFiles {
					if f.Name == ck.TrackFile {
						tf = f
					}
				}
				if tf == nil {
					b.d.errorf(ck.Pos, ck.Kind.String(), "real_server %s: no track_file block named %q", rs.Addr, ck.TrackFile)
					continue
				}
				ck.File = tf.File
				if !ck.fileWeightSet {
					ck.FileWeight = tf.Weight
					ck.FileReverse = ck.FileReverse || tf.Reverse
				}
			}
		}
	}
}

// bfdKeyword reports keepalived's BFD keywords. halb has no BFD: no maintained Go
// implementation of RFC 5880 is available to it, so these are refused with the alternative.
func bfdKeyword(kw string) bool {
	switch kw {
	case "BFD_CHECK", "bfd_instance", "track_bfd", "vrrp_track_bfd":
		return true
	}
	return false
}

const bfdAlternative = "BFD is not implemented by halb (there is no maintained Go BFD implementation); ignored. " +
	"Use PING_CHECK or TCP_CHECK with a short delay_loop (e.g. delay_loop 1, retry 0), or run a BFD daemon " +
	"(FRR's bfdd) and follow its peer state with a MISC_CHECK / vrrp_script"

// kindDefaults are retry and delay_before_retry when no block sets them: keepalived's 1 and 1 s,
// except DNS_CHECK's 3 retries spaced by delay_loop (keepalived.conf(5)). (keepalived also has
// 3 s for HTTP_GET/SSL_GET and retry 0 for MISC_CHECK; halb keeps 1 s and 1 there, as before.)
func kindDefaults(k CheckerKind, delayLoop time.Duration) checkerDefaults {
	d := checkerDefaults{delayLoop: unset, connectTimeout: unset, warmup: unset, retry: defaultRetry, delayBeforeRetry: defaultDelayBeforeRetry}
	if k == CheckDNS {
		d.retry, d.delayBeforeRetry = 3, delayLoop
	}
	return d
}
