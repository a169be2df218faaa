package config

import (
	"strings"
	"testing"
	"time"
)

func TestBGPModel(t *testing.T) {
	cfg := mustParse(t, `bgp {
 router_id 198.18.1.11
 local_as 1.10
 neighbor 198.18.1.1 {
  remote_as 4200000000
  hold_time 6
  port 1179
  ebgp_multihop 2
 }
 med 7
 bgp_vip 198.18.0.20 community 65011:1 65011:2
}
virtual_server 198.18.0.10 80 {
 bgp_announce as_path_prepend 3
 real_server 198.18.2.1 80 { }
}`)
	g := cfg.BGP
	if g == nil || g.LocalAS != 1<<16|10 || g.DrainTime != DefaultBGPDrainTime || g.Interface != DefaultBGPInterface {
		t.Fatalf("bgp: %+v", g)
	}
	nb := g.Neighbors[0]
	if nb.RemoteAS != 4200000000 || nb.HoldTime != 6*time.Second || nb.Port != 1179 || nb.Multihop != 2 {
		t.Errorf("neighbor: %+v", nb)
	}
	v := g.VIPs[0]
	if len(v.Announce.Communities) != 2 || v.Announce.Communities[1] != 65011<<16|2 {
		t.Errorf("vip: %+v", v)
	}
	// The block's med is a default: merged into an announcement that has none.
	m := cfg.VirtualServers[0].BGPAnnounce.Merge(g.Announce)
	if !m.HasMED || m.MED != 7 || m.Prepend != 3 {
		t.Errorf("merged announce: %+v", m)
	}
}

func TestBGPDiagnostics(t *testing.T) {
	const head = "bgp {\n router_id 198.18.1.11\n local_as 65011\n bgp_vip 198.18.0.20\n"
	const nb = " neighbor 198.18.1.1 {\n  remote_as 65000\n"
	tests := []struct {
		name, src, want string
		isErr           bool
	}{
		{"no router id", "bgp {\n local_as 1\n bgp_vip 198.18.0.1\n neighbor 198.18.1.1 { remote_as 2 }\n}", "t.conf:1: router_id: bgp: router_id must be set", true},
		{"v6 router id", "bgp {\n router_id 2001:db8::1\n local_as 1\n}", "router_id must be set to an IPv4 address", true},
		{"no local as", "bgp {\n router_id 198.18.1.1\n}", "t.conf:1: local_as: bgp: local_as is missing", true},
		{"bad as", head + " local_as 0\n}", `t.conf:5: local_as: "0" is not an AS number`, true},
		{"as too big", head + " local_as 4294967296\n}", "is not an AS number", true},
		{"no neighbor", head + "}", "warning: bgp: no neighbor", false},
		{"no remote as", head + " neighbor 198.18.1.1 {\n }\n}", "t.conf:5: remote_as: neighbor 198.18.1.1: remote_as is missing", true},
		{"hold too short", head + nb + "  hold_time 2\n }\n}", "t.conf:7: hold_time: must be at least 3s (RFC 4271), not 2s", true},
		{"bad neighbor addr", head + " neighbor 198.18.1.300 {\n  remote_as 1\n }\n}", `t.conf:5: neighbor: "198.18.1.300" is not an IP address`, true},
		{"neighbor twice", head + nb + " }\n" + nb + " }\n}", "t.conf:8: neighbor: 198.18.1.1 is already a neighbor at t.conf:5", true},
		{"neighbor no block", head + " neighbor 198.18.1.1\n}", "t.conf:5: neighbor: expects a block", true},
		{"unknown in neighbor", head + nb + "  hold_tme 3\n }\n}", `t.conf:7: hold_tme: unknown keyword in neighbor; did you mean "hold_time"?`, true},
		{"family mix", head + nb + "  source_address 2001:db8::1\n }\n}", "source_address 2001:db8::1 is of another family", true},
		{"bad community", head + " community 65011:70000\n}", `t.conf:5: community: "65011:70000" is not a community`, true},
		{"bad med", head + " med x\n}", `t.conf:5: med:`, true},
		{"prepend range", head + " as_path_prepend 17\n}", "17 is out of range 0..16", true},
		{"vip option", head + " bgp_vip 198.18.0.21 colour red\n}", `t.conf:5: bgp_vip: "colour" is not an IP address`, true},
		{"vip no addr", head + " bgp_vip med 3\n}", "t.conf:5: bgp_vip: expects at least one address", true},
		{"vip twice", head + " bgp_vip 198.18.0.20\n}", "t.conf:5: bgp_vip: 198.18.0.20 is listed twice", true},
		{"two blocks", head + "}\nbgp {\n}", "t.conf:6: bgp: only one bgp block; the first is at t.conf:1", true},
		{"track unknown", head + " track_script nope\n}", `t.conf:5: track_script: bgp: no vrrp_script named "nope"`, true},
		{"announce without bgp", "virtual_server 198.18.0.10 80 {\n bgp_announce\n real_server 198.18.2.1 80 { }\n}", "t.conf:2: bgp_announce: there is no bgp block", true},
		{"announce option", head + "}\nvirtual_server 198.18.0.10 80 {\n bgp_announce weight 3\n}", `t.conf:7: bgp_announce: unknown option "weight"`, true},
		{"announce fwmark", head + "}\nvirtual_server fwmark 1 {\n bgp_announce\n}", "has no single address to announce", true},
		{"announce and vip", head + "}\nvirtual_server 198.18.0.20 80 {\n bgp_announce\n}", "198.18.0.20 is also a bgp_vip", true},
		{"bgp keyword elsewhere", "global_defs {\n local_as 3\n}", "t.conf:2: local_as: not valid in global_defs (it belongs in bgp)", true},
		{"drain negative", head + " drain_time -1s\n}", "drain_time", true},
		{"family without neighbor", head + nb + " }\n bgp_vip 2001:db8::20\n}", "t.conf:8: warning: bgp_vip: 2001:db8::20 has no neighbor of its address family", false},
		{"passive md5", head + nb + "  passive\n  password x\n }\n}", "t.conf:5: warning: password: neighbor 198.18.1.1: a passive session with a TCP MD5 password needs halb started with GODEBUG=multipathtcp=3", false},
		{"interface name", head + " vip_interface a/b\n}", `"a/b" is not an interface name`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags, err := parseSrc(t, tt.src)
			var found *Diagnostic
			for i := range diags {
				if strings.Contains(diags[i].String(), tt.want) {
					found = &diags[i]
					break
				}
			}
			if found == nil {
				t.Fatalf("no diagnostic containing %q in:\n%s", tt.want, joinDiags(diags))
			}
			if got := found.Severity == Error; got != tt.isErr {
				t.Errorf("%v: severity %v, want error=%v", found, found.Severity, tt.isErr)
			}
			if (cfg == nil) != (err != nil) {
				t.Errorf("cfg nil = %v with err = %v", cfg == nil, err)
			}
		})
	}
}
