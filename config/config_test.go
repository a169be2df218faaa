package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json")

func parseSrc(t *testing.T, src string) (*Config, []Diagnostic, error) {
	t.Helper()
	return Parse("t.conf", []byte(src))
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, diags, err := parseSrc(t, src)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg == nil {
		t.Fatalf("nil config without error; diags %v", diags)
	}
	return cfg
}

func TestExamples(t *testing.T) {
	tests := []struct {
		file string
		want Summary
	}{
		{"dual-master-dr-lvs1.conf", Summary{Instances: 2, VIPs: 2, VirtualServers: 2, RealServers: 4, Checkers: 4}},
		{"dual-master-dr-lvs2.conf", Summary{Instances: 2, VIPs: 2, VirtualServers: 2, RealServers: 4, Checkers: 4}},
		{"haproxy-pair-keepalived.conf", Summary{Instances: 2, VIPs: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, diags, err := Load(filepath.Join("testdata", "examples", tt.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			for _, d := range diags {
				if d.Severity != Warning {
					t.Errorf("non-warning diagnostic: %v", d)
				}
			}
			if got := cfg.Summary(); got != tt.want {
				t.Errorf("Summary = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSummaryString(t *testing.T) {
	s := Summary{Instances: 2, VIPs: 2, VirtualServers: 2, RealServers: 4, Checkers: 4}
	if got, want := s.String(), "2 vrrp instances, 2 VIPs, 2 virtual servers, 4 real servers, 4 checkers"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	s = Summary{Instances: 1, VIPs: 1, VirtualServers: 1, RealServers: 1, Checkers: 1}
	if got, want := s.String(), "1 vrrp instance, 1 VIP, 1 virtual server, 1 real server, 1 checker"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDualMasterModel(t *testing.T) {
	cfg, _, err := Load("testdata/examples/dual-master-dr-lvs1.conf")
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Instances[0]
	if in.Name != "VI_1" || in.State != StateMaster || in.Interface != "ens33" || in.VRID != 90 ||
		in.Priority != 100 || in.AdvertInt != time.Second || in.AuthType != AuthPass || in.AuthPass != "1015" {
		t.Errorf("instance = %+v", in)
	}
	if got := in.VIPs[0].Prefix; got != netip.MustParsePrefix("172.17.250.11/32") {
		t.Errorf("VIP = %v", got)
	}
	vs := cfg.VirtualServers[1]
	if vs.Addr != netip.MustParseAddrPort("172.17.250.12:443") || vs.LBAlgo != AlgoWRR || vs.LBKind != LBKindDR ||
		vs.DelayLoop != 6*time.Second || vs.PersistenceTimeout != 120*time.Second || vs.Protocol != ProtoTCP {
		t.Errorf("vs = %+v", vs)
	}
	ck := vs.RealServers[0].Checkers[0]
	want := &Checker{
		Pos: ck.Pos, Kind: CheckHTTP, ConnectIP: netip.MustParseAddr("172.17.0.66"), ConnectPort: 443,
		ConnectTimeout: 3 * time.Second, Retry: 3, DelayBeforeRetry: 3 * time.Second, DelayLoop: 6 * time.Second,
		URLs: []URL{{Pos: ck.URLs[0].Pos, Path: "/", StatusCodes: []StatusRange{{200, 299}}}},
	}
	if !jsonEqual(t, ck, want) {
		t.Errorf("checker = %s\nwant %s", mustJSON(t, ck), mustJSON(t, want))
	}
	if got := cfg.NeedsIPVS(); len(got) != 2 {
		t.Errorf("NeedsIPVS = %d services, want 2", len(got))
	}
}

func jsonEqual(t *testing.T, a, b any) bool { return mustJSON(t, a) == mustJSON(t, b) }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, `
vrrp_script s { script "/bin/true" }
vrrp_instance V {
  interface eth0
  virtual_router_id 1
  virtual_ipaddress { 198.18.0.1 }
}
virtual_server 198.18.0.1 80 {
  real_server 198.18.1.1 8080 {
    TCP_CHECK { }
    MISC_CHECK { misc_path /bin/true }
  }
}`)
	g := cfg.Global
	if g.VRRPVersion != 2 || g.VRRPGarpMasterDelay != 5*time.Second || g.VRRPGarpMasterRepeat != 5 ||
		g.SMTPConnectTimeout != 30*time.Second || g.AdminSocket != "/run/halb/halb.sock" || g.AdminSocketMode != 0o600 ||
		g.StatsListen.IsValid() || g.MaxConn != 0 || g.LogLevel != LogInfo || g.ShutdownTimeout != 30*time.Second ||
		g.VRRPMcastGroup4 != netip.MustParseAddr("224.0.0.18") || g.VRRPMcastGroup6 != netip.MustParseAddr("ff02::12") {
		t.Errorf("global defaults = %+v", g)
	}
	s := cfg.Scripts[0]
	if s.Interval != time.Second || s.Timeout != time.Second || s.Rise != 1 || s.Fall != 1 || s.Weight != 0 {
		t.Errorf("script defaults = %+v", s)
	}
	in := cfg.Instances[0]
	if in.State != StateBackup || in.Priority != 100 || in.AdvertInt != time.Second || in.Version != 2 ||
		in.GarpMasterDelay != 5*time.Second || in.GarpMasterRepeat != 5 || in.GarpMasterRefreshRepeat != 1 ||
		!in.Accept || in.AuthType != AuthNone {
		t.Errorf("instance defaults = %+v", in)
	}
	vs := cfg.VirtualServers[0]
	if vs.DelayLoop != 60*time.Second || vs.LBAlgo != AlgoWLC || vs.LBKind != LBKindNAT || vs.Protocol != ProtoTCP ||
		vs.ProxyMode != ProxyTCP || vs.Retries != 3 || vs.Rise != 1 || vs.Fall != 1 || vs.Quorum != 1 ||
		vs.TimeoutConnect != 5*time.Second || vs.PassiveFail != 0 || vs.SendProxy != ProxyProtoNone {
		t.Errorf("virtual_server defaults = %+v", vs)
	}
	rs := vs.RealServers[0]
	if rs.Weight != 1 {
		t.Errorf("weight = %d", rs.Weight)
	}
	tcp, misc := rs.Checkers[0], rs.Checkers[1]
	if tcp.ConnectTimeout != 5*time.Second || tcp.Retry != 1 || tcp.DelayBeforeRetry != time.Second ||
		tcp.DelayLoop != 60*time.Second || tcp.ConnectIP != netip.MustParseAddr("198.18.1.1") || tcp.ConnectPort != 8080 {
		t.Errorf("TCP_CHECK defaults = %+v", tcp)
	}
	if misc.MiscTimeout != 60*time.Second || misc.ConnectPort != 0 {
		t.Errorf("MISC_CHECK defaults = %+v", misc)
	}
	if got := cfg.NeedsIPVS(); len(got) != 0 {
		t.Errorf("NeedsIPVS = %v", got)
	}
}

func TestInheritance(t *testing.T) {
	cfg := mustParse(t, `
global_defs {
  vrrp_garp_master_delay 2
  vrrp_version 3
  vrrp_strict
}
vrrp_instance V {
  interface eth0
  virtual_router_id 1
  garp_master_repeat 9
  virtual_ipaddress { 198.18.0.1 }
}
virtual_server 198.18.0.1 80 {
  connect_timeout 7
  real_server 198.18.1.1 80 {
    delay_loop 4
    HTTP_GET {
      url {
        path /a
        status_code 200 301-302
      }
      connect_port 81
    }
    TCP_CHECK {
      connect_timeout 2
      delay_loop 3
    }
  }
  delay_loop 10
  real_server 198.18.1.2 80 { TCP_CHECK { } }
}`)
	in := cfg.Instances[0]
	if in.Version != 3 || in.GarpMasterDelay != 2*time.Second || in.GarpMasterRepeat != 9 || in.Accept {
		t.Errorf("instance = %+v", in)
	}
	vs := cfg.VirtualServers[0]
	h := vs.RealServers[0].Checkers[0]
	if h.DelayLoop != 4*time.Second || h.ConnectTimeout != 7*time.Second || h.ConnectPort != 81 {
		t.Errorf("HTTP_GET = %+v", h)
	}
	if want := []StatusRange{{200, 200}, {301, 302}}; !jsonEqual(t, h.URLs[0].StatusCodes, want) {
		t.Errorf("status codes = %v", h.URLs[0].StatusCodes)
	}
	tc := vs.RealServers[0].Checkers[1]
	if tc.DelayLoop != 3*time.Second || tc.ConnectTimeout != 2*time.Second {
		t.Errorf("TCP_CHECK = %+v", tc)
	}
	if got := vs.RealServers[1].Checkers[0].DelayLoop; got != 10*time.Second {
		t.Errorf("delay_loop after real_server = %v, want 10s (the service's, wherever it is written)", got)
	}
}

func TestHalbKeywords(t *testing.T) {
	cfg := mustParse(t, `
global_defs {
  admin_socket /tmp/h.sock
  admin_socket_mode 0660
  admin_socket_owner halb:adm
  stats_listen 127.0.0.1:8404
  stats_auth admin:s3cret
  maxconn 10000
  log_level debug
  log_sample 100
  shutdown_timeout 1m
}
virtual_server 198.18.0.1 443 {
  proxy_mode tls
  timeout_connect 500ms
  timeout_client 30
  timeout_server 1.5
  timeout_http_request 5s
  timeout_tunnel 2h
  timeout_queue 3s
  maxconn 500
  maxqueue 100
  retries 2
  send_proxy v2
  accept_proxy
  trusted_proxies 198.18.5.0/24 2001:db8::/32
  trusted_upstreams 198.18.6.0/24
  rise 3
  fall 2
  passive_fail 5
  real_server 198.18.1.1 443 {
    maxconn 50
    send_proxy v1
    sni www.example.com *.example.org
  }
  real_server 198.18.1.2 443 { backup }
}`)
	g := cfg.Global
	if g.AdminSocket != "/tmp/h.sock" || g.AdminSocketMode != 0o660 || g.AdminSocketOwner != "halb" ||
		g.AdminSocketGroup != "adm" || g.StatsListen != netip.MustParseAddrPort("127.0.0.1:8404") ||
		g.StatsUser != "admin" || g.StatsPassword != "s3cret" || g.MaxConn != 10000 || g.LogLevel != LogDebug ||
		g.LogSample != 100 || g.ShutdownTimeout != time.Minute {
		t.Errorf("global = %+v", g)
	}
	vs := cfg.VirtualServers[0]
	if vs.ProxyMode != ProxyTLS || vs.TimeoutConnect != 500*time.Millisecond || vs.TimeoutClient != 30*time.Second ||
		vs.TimeoutServer != 1500*time.Millisecond || vs.TimeoutHTTPRequest != 5*time.Second ||
		vs.TimeoutTunnel != 2*time.Hour || vs.TimeoutQueue != 3*time.Second || vs.MaxConn != 500 || vs.MaxQueue != 100 ||
		vs.Retries != 2 || vs.SendProxy != ProxyProtoV2 || !vs.AcceptProxy || len(vs.TrustedProxies) != 2 ||
		vs.TrustedUpstreams[0] != netip.MustParsePrefix("198.18.6.0/24") || vs.Rise != 3 || vs.Fall != 2 || vs.PassiveFail != 5 {
		t.Errorf("vs = %+v", vs)
	}
	rs := vs.RealServers[0]
	if rs.MaxConn != 50 || rs.SendProxy != ProxyProtoV1 || len(rs.SNI) != 2 || rs.SNI[1] != "*.example.org" || rs.Backup {
		t.Errorf("rs = %+v", rs)
	}
	if !vs.RealServers[1].Backup {
		t.Error("backup not set")
	}
}

func TestVRRPDetails(t *testing.T) {
	cfg := mustParse(t, `
vrrp_script chk {
  script "/bin/check arg"
  weight -20 reverse
}
vrrp_track_file maint {
  file /run/maint
  init_file
}
vrrp_track_process chk_haproxy {
  process /usr/sbin/haproxy -Ws
  param_match partial
  weight -20 reverse
  quorum 2
  quorum_max 4
  delay 1.5
}
track_file prio {
  file "/run/prio"
  weight 0
  init_file 7 overwrite
}
vrrp_instance V {
  interface eth0
  virtual_router_id 7
  unicast_src_ip 198.18.0.2
  unicast_peer {
    198.18.0.3
    198.18.0.4
  }
  virtual_ipaddress {
    198.18.0.10/24 brd 198.18.0.255 dev eth1 scope global label eth1:1
    198.18.0.11
  }
  virtual_ipaddress_excluded { 2001:db8::1/64 }
  track_script { chk weight 5 }
  track_file {
    maint
    prio weight -3 reverse
  }
  track_process { chk_haproxy weight 5 }
  track_interface {
    eth1 weight -10
    eth2
  }
  track_virtual_server {
    198.18.0.10 80 weight -50
    198.18.0.10 80
  }
  track_mode fault
  use_vmac vrrp.7
  no_accept
  notify_master /etc/n.sh master
  nopreempt
}
vrrp_sync_group G { group { V } notify "/x y" }
virtual_server 198.18.0.10 80 { real_server 198.18.1.1 80 { } }
`)
	in := cfg.Instances[0]
	v := in.VIPs[0]
	if v.Prefix != netip.MustParsePrefix("198.18.0.10/24") || v.Broadcast != netip.MustParseAddr("198.18.0.255") ||
		v.Dev != "eth1" || v.Scope != ScopeGlobal || v.Label != "eth1:1" {
		t.Errorf("VIP = %+v", v)
	}
	if len(in.UnicastPeers) != 2 || in.ExcludedVIPs[0].Prefix.Bits() != 64 {
		t.Errorf("peers/excluded = %v %v", in.UnicastPeers, in.ExcludedVIPs)
	}
	if tf := in.TrackFiles; len(tf) != 2 || tf[0].Name != "maint" || tf[0].HasWeight || tf[1].Weight != -3 || !tf[1].Reverse {
		t.Errorf("track_file = %+v", tf)
	}
	if f := cfg.TrackFiles; len(f) != 2 || f[0].File != "/run/maint" || f[0].Weight != 1 || !f[0].Init || f[0].Overwrite ||
		f[1].Weight != 0 || f[1].InitValue != 7 || !f[1].Overwrite {
		t.Errorf("vrrp_track_file = %+v", f)
	}
	if p := cfg.TrackProcs; len(p) != 1 || p[0].Process != "/usr/sbin/haproxy" || len(p[0].Params) != 1 || p[0].ParamMatch != "partial" ||
		p[0].Weight != -20 || !p[0].Reverse || p[0].Quorum != 2 || p[0].QuorumMax != 4 || p[0].ForkDelay != 1500*time.Millisecond ||
		p[0].TerminateDelay != 1500*time.Millisecond || in.TrackProcs[0].Weight != 5 {
		t.Errorf("vrrp_track_process = %+v %+v", p, in.TrackProcs)
	}
	if ts := in.TrackScripts[0]; ts.Name != "chk" || ts.Weight != 5 || !ts.HasWeight {
		t.Errorf("track_script = %+v", ts)
	}
	if ti := in.TrackInterfaces; len(ti) != 2 || ti[0].Weight != -10 || ti[1].HasWeight {
		t.Errorf("track_interface = %+v", ti)
	}
	if tv := in.TrackVirtServers; len(tv) != 2 || tv[0].Weight != -50 || !tv[0].HasWeight || tv[1].HasWeight {
		t.Errorf("track_virtual_server = %+v", tv)
	}
	if in.TrackMode != TrackFault || !in.UseVMAC || in.VMACName != "vrrp.7" || in.Accept ||
		in.NotifyMaster != "/etc/n.sh master" || !in.NoPreempt || in.SyncGroup != "G" {
		t.Errorf("instance = %+v", in)
	}
	if s := cfg.Scripts[0]; s.Script != "/bin/check arg" || s.Weight != -20 || !s.WeightReverse {
		t.Errorf("script = %+v", s)
	}
	if cfg.SyncGroups[0].Notify != "/x y" {
		t.Errorf("sync group = %+v", cfg.SyncGroups[0])
	}
}

func TestVSGroup(t *testing.T) {
	cfg := mustParse(t, `
virtual_server_group WEB {
  198.18.0.1 80
  198.18.0.10-12 80
  2001:db8::a-c 443
  fwmark 7
}
virtual_server group WEB {
  lb_kind NAT
  real_server 198.18.1.1 80 { }
}`)
	vs := cfg.VirtualServers[0]
	var got []string
	for _, a := range vs.Addrs {
		got = append(got, a.String())
	}
	want := "198.18.0.1:80 198.18.0.10:80 198.18.0.11:80 198.18.0.12:80 [2001:db8::a]:443 [2001:db8::b]:443 [2001:db8::c]:443"
	if strings.Join(got, " ") != want {
		t.Errorf("Addrs = %v\nwant %v", got, want)
	}
	if vs.Group != "WEB" || vs.Kind != VSGroupRef || len(vs.Fwmarks) != 1 || vs.Fwmarks[0] != 7 {
		t.Errorf("vs = %+v", vs)
	}
	if len(cfg.NeedsIPVS()) != 1 {
		t.Error("a group with a fwmark needs IPVS")
	}
}

func TestFwmarkVS(t *testing.T) {
	cfg := mustParse(t, "virtual_server fwmark 5 {\n lb_kind DR\n real_server 198.18.1.1 { weight 2 }\n}")
	vs := cfg.VirtualServers[0]
	if vs.Kind != VSFwmark || vs.Fwmark != 5 || vs.RealServers[0].Addr.Port() != 0 || vs.RealServers[0].Weight != 2 {
		t.Errorf("vs = %+v", vs)
	}
}

// TestDiagnostics checks each validation rule: a snippet, the diagnostic it must produce (as a
// substring of its String()), and whether it is an error.
func TestDiagnostics(t *testing.T) {
	const inst = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress { 198.18.0.1 }\n"
	const vsHead = "virtual_server 198.18.0.1 80 {\n"
	const rs = " real_server 198.18.1.1 80 { }\n"
	tests := []struct {
		name, src, want string
		isErr           bool
	}{
		{"vrid range", inst + " virtual_router_id 256\n}", "t.conf:5: virtual_router_id: 256 is out of range 1..255", true},
		{"vrid zero", inst + " virtual_router_id 0\n}", "virtual_router_id: 0 is out of range", true},
		{"missing vrid", "vrrp_instance V {\n interface eth0\n}", "t.conf:1: virtual_router_id: vrrp_instance V: missing", true},
		{"missing interface", "vrrp_instance V {\n virtual_router_id 3\n}", "t.conf:1: interface: vrrp_instance V: missing interface", true},
		{"priority range", inst + " priority 256\n}", "t.conf:5: priority: 256 is out of range 1..255", true},
		{"priority zero", inst + " priority 0\n}", "priority: 0 is out of range", true},
		{"priority 255", inst + " priority 255\n}", "warning: priority: vrrp_instance V: priority 255 means", false},
		{"advert zero", inst + " advert_int 0\n}", "advert_int: vrrp_instance V: advert_int must be > 0", true},
		{"advert v2 fraction", inst + " advert_int 0.5\n}", "VRRPv2 counts whole seconds; 500ms rounded to 1s", false},
		{"advert v2 max", inst + " advert_int 300\n}", "exceeds VRRPv2's maximum", true},
		{"advert v3 round", inst + " version 3\n advert_int 0.015\n}", "VRRPv3 counts centiseconds; 15ms rounded to 20ms", false},
		{"advert v3 max", inst + " version 3\n advert_int 41\n}", "exceeds VRRPv3's maximum 40.95s", true},
		{"advert bad", inst + " advert_int fast\n}", `advert_int: "fast" is not a number of seconds`, true},
		{"auth_pass long", inst + " authentication {\n auth_type PASS\n auth_pass 123456789\n }\n}", "t.conf:7: warning: auth_pass: password longer than 8 characters; truncated to 8 characters", false},
		{"auth pass missing", inst + " authentication { auth_type PASS }\n}", "auth_type PASS without auth_pass", true},
		{"auth type bad", inst + " authentication { auth_type MD5 }\n}", `"MD5" is not PASS or AH`, true},
		{"auth v3", inst + " version 3\n authentication { auth_type PASS\n auth_pass x }\n}", "VRRPv3 has no authentication", false},
		{"bad vip", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 198.18.0.300\n }\n}", `t.conf:5: 198.18.0.300: "198.18.0.300" is not an IP address`, true},
		{"vip option", inst + " virtual_ipaddress { 198.18.0.2 colour red }\n}", `unknown address option "colour"`, true},
		{"vip family mix", inst + " virtual_ipaddress { 2001:db8::1 }\n}", "is IPv6 but vrrp_instance V is IPv4", true},
		{"ipv6 v2", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress { 2001:db8::1 }\n}", "IPv6 needs VRRPv3; using version 3", false},
		{"dup vrid", inst + "}\nvrrp_instance W {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress { 198.18.0.2 }\n}", "t.conf:6: virtual_router_id: 1 is already used on eth0 (IPv4) by vrrp_instance V at t.conf:1", true},
		{"dup vrid other family ok", inst + "}\nvrrp_instance W {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress { 2001:db8::2 }\n}", "IPv6 needs VRRPv3", false},
		{"dup instance", inst + "}\n" + inst + "}", "vrrp_instance: V is already defined at t.conf:1", true},
		{"nopreempt master", inst + " state MASTER\n nopreempt\n}", "nopreempt with state MASTER; treated as BACKUP", false},
		{"state bad", inst + " state PRIMARY\n}", `"PRIMARY" is not one of BACKUP|MASTER`, true},
		{"undefined script", inst + " track_script { nope }\n}", `t.conf:5: track_script: no vrrp_script named "nope"`, true},
		{"undefined member", inst + "}\nvrrp_sync_group G { group { V X } }", `vrrp_sync_group G: no vrrp_instance named "X"`, true},
		{"member twice", inst + "}\nvrrp_sync_group G { group { V } }\nvrrp_sync_group H { group { V } }", "already in vrrp_sync_group G", true},
		{"undefined vs group", "virtual_server group NOPE {\n" + rs + "}", `no virtual_server_group named "NOPE"`, true},
		{"undefined tracked vs", inst + " track_virtual_server { 198.18.9.9 80 }\n}", "no virtual_server 198.18.9.9:80", true},
		{"unicast peer self", inst + " unicast_src_ip 198.18.0.5\n unicast_peer { 198.18.0.5 }\n}", "unicast_peer lists our own unicast_src_ip", false},
		{"vip twice", inst + "}\nvrrp_instance W {\n interface eth0\n virtual_router_id 2\n virtual_ipaddress { 198.18.0.1/24 }\n}", "198.18.0.1 is also a VIP of vrrp_instance V", false},
		{"peer family", inst + " unicast_peer { 2001:db8::5 }\n}", "peer 2001:db8::5 is not IPv4 like the instance", true},
		{"src family", inst + " unicast_src_ip 2001:db8::5\n}", "2001:db8::5 is not IPv4 like the instance", true},
		{"no vip", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n}", "has no virtual_ipaddress", false},
		{"script missing", "vrrp_script s { interval 2 }", "vrrp_script: s has no script", true},
		{"script weight range", "vrrp_script s { script x\n weight 300 }", "300 is out of range -253..253", true},
		{"lb_kind DR", vsHead + " lb_kind DR\n" + rs + "}", "lb_kind DR needs the kernel's IPVS (or use_proxy", false},
		{"lb_kind TUN", vsHead + " lvs_method TUN\n" + rs + "}", "lb_kind TUN needs the kernel's IPVS", false},
		{"lb_kind bad", vsHead + " lb_kind SNAT\n" + rs + "}", `"SNAT" is not one of NAT|DR|TUN`, true},
		{"lb_algo bad", vsHead + " lb_algo random\n" + rs + "}", `"random" is not one of rr|wrr`, true},
		{"http_get 443", "virtual_server 198.18.0.1 443 {\n real_server 198.18.1.1 443 {\n HTTP_GET { url { path / } }\n }\n}", "t.conf:3: warning: HTTP_GET: real_server 198.18.1.1:443: HTTP_GET on port 443 speaks plain HTTP to a TLS port; did you mean SSL_GET?", false},
		{"ssl_get 80", vsHead + " real_server 198.18.1.1 80 {\n SSL_GET { url { path / } }\n }\n}", "did you mean HTTP_GET?", false},
		{"all weight 0", vsHead + " real_server 198.18.1.1 80 { weight 0 }\n real_server 198.18.1.2 80 { weight 0 }\n}", "every real_server has weight 0", false},
		{"no real server", vsHead + "}", "198.18.0.1:80 has no real_server", false},
		{"http on 443", "virtual_server 198.18.0.1 443 {\n proxy_mode http\n real_server 198.18.1.1 80 { }\n}", "proxy_mode http on port 443", false},
		{"sni not tls", vsHead + " real_server 198.18.1.1 80 { sni a.example.com }\n}", "sni only routes in proxy_mode tls", false},
		{"sni bad", vsHead + " proxy_mode tls\n real_server 198.18.1.1 80 { sni a..b }\n}", `"a..b" is not a server name`, true},
		{"proxy_mode udp", vsHead + " protocol UDP\n proxy_mode http\n" + rs + "}", "proxy_mode http needs protocol TCP, not UDP", true},
		{"nat_mask", vsHead + " nat_mask 255.255.255.0\n" + rs + "}", "t.conf:2: warning: nat_mask: ignored", false},
		{"bad vs addr", "virtual_server 198.18.0.999 80 {\n" + rs + "}", `"198.18.0.999" is not an IP address`, true},
		{"bad vs port", "virtual_server 198.18.0.1 99999 {\n" + rs + "}", `"99999" is not a port number`, true},
		{"vs colon form", "virtual_server 198.18.0.1:80 {\n" + rs + "}", "expects ADDR PORT separated by a space", true},
		{"dup vs", vsHead + rs + "}\n" + vsHead + rs + "}", "198.18.0.1:80 (TCP) is already defined at t.conf:1", true},
		{"dup rs", vsHead + rs + rs + "}", "198.18.1.1:80 is already defined in this virtual_server", true},
		{"misc no path", vsHead + " real_server 198.18.1.1 80 { MISC_CHECK { } }\n}", "MISC_CHECK without misc_path", true},
		{"url in tcp", vsHead + " real_server 198.18.1.1 80 { TCP_CHECK { url { path / } } }\n}", "url: not valid in TCP_CHECK (it belongs in", true},
		{"status bad", vsHead + " real_server 198.18.1.1 80 { HTTP_GET {\n url {\n path /\n status_code 99\n }\n }\n }\n}", `"99" is not an HTTP status code`, true},
		{"digest bad", vsHead + " real_server 198.18.1.1 80 { HTTP_GET {\n url {\n path /\n digest xyz\n }\n }\n }\n}", "is not an MD5 digest", true},
		{"no url", vsHead + " real_server 198.18.1.1 80 { HTTP_GET { } }\n}", "no url block; checking GET /", false},
		{"duration bad", vsHead + " timeout_client forever\n" + rs + "}", `"forever" is not a duration`, true},
		{"duration negative", vsHead + " timeout_client -5s\n" + rs + "}", `negative duration`, true},
		{"send_proxy bad", vsHead + " send_proxy v3\n" + rs + "}", `"v3" is not a PROXY protocol version`, true},
		{"accept_proxy open", vsHead + " accept_proxy\n" + rs + "}", "accept_proxy without trusted_proxies", false},
		{"maxqueue alone", vsHead + " maxqueue 10\n" + rs + "}", "maxqueue has no effect without maxconn", false},
		{"quorum", vsHead + " quorum 3\n" + rs + "}", "quorum 3 is more than its 1 real servers", false},
		{"typo", inst + " priorty 100\n}", `t.conf:5: priorty: unknown keyword in vrrp_instance; did you mean "priority"?`, true},
		{"typo top", "vrrp_instanse V {\n}", `did you mean "vrrp_instance"?`, true},
		{"unknown far", inst + " frobnicate 1\n}", "frobnicate: unknown keyword in vrrp_instance", true},
		{"wrong block", inst + " lb_algo rr\n}", "lb_algo: not valid in vrrp_instance (it belongs in virtual_server)", true},
		{"unimplemented", "global_defs {\n enable_snmp_vrrp\n}", "t.conf:2: warning: enable_snmp_vrrp: keepalived keyword not implemented by halb; ignored", false},
		{"unimplemented block", "static_ipaddress {\n 198.18.0.9/24 dev eth0\n}", "t.conf:1: warning: static_ipaddress: keepalived keyword not implemented", false},
		{"no block", "global_defs", "global_defs: expects a block", true},
		{"lvs without ipvs", "global_defs {\n lvs_timeouts tcp 900\n}", "t.conf:1: warning: global_defs: lvs_sync_daemon and lvs_timeouts act only on IPVS services", false},
		{"lvs_timeouts odd", "global_defs {\n lvs_timeouts tcp\n}", "t.conf:2: lvs_timeouts: expects [tcp SECS] [tcpfin SECS] [udp SECS]", true},
		{"lvs_timeouts name", "global_defs {\n lvs_timeouts tcpp 9\n}", `"tcpp" is not tcp, tcpfin or udp`, true},
		{"lvs_sync unknown inst", "global_defs {\n lvs_sync_daemon eth1 VI_9\n}", `lvs_sync_daemon: no vrrp_instance named "VI_9"`, true},
		{"lvs_sync options", "global_defs {\n lvs_sync_daemon eth1 maxlen 1400\n}", "maxlen 1400 not implemented by halb", false},
		{"track_process unknown", inst + " track_process { chk }\n}", `track_process: no vrrp_track_process named "chk"`, true},
		{"track_process quorum", "vrrp_track_process p {\n process x\n quorum 3\n quorum_max 2\n}", "quorum_max 2 is below quorum 3", true},
		{"track_process param_match", "vrrp_track_process p {\n process x\n param_match some\n}", `t.conf:3: param_match: "some" is not initial or partial`, true},
		{"track_file unknown", inst + " track_file { maint }\n}", `track_file: no vrrp_track_file named "maint"`, true},
		{"track_file no file", "vrrp_track_file maint {\n weight 2\n}", "t.conf:1: vrrp_track_file: maint: no file", true},
		{"track_file weight", "vrrp_track_file maint {\n file /x\n weight 300\n}", "t.conf:3: weight:", true},
		{"block on plain kw", inst + " priority 100 { }\n}", "priority: does not take a block", true},
		{"arity", inst + " interface\n}", "interface: expects 1 argument(s), got 0", true},
		{"instance no name", "vrrp_instance {\n}", "expects a name", true},
		{"bad header still read", "vrrp_instance {\n priorty 1\n}", `did you mean "priority"?`, true},
		{"bad vs header still read", "virtual_server 198.18.0.1 {\n lb_algo nope\n}", `"nope" is not one of`, true},
		{"bool bad", "global_defs { vrrp_strict maybe }", `"maybe" is not a boolean`, true},
		{"mcast group", "global_defs { vrrp_mcast_group4 198.18.0.1 }", "is not an IPv4 multicast address", true},
		{"admin mode", "global_defs { admin_socket_mode 999 }", "is not an octal permission mode", true},
		{"stats listen", "global_defs { stats_listen 127.0.0.1 }", "is not ADDR:PORT", true},
		{"stats auth", "global_defs { stats_auth nobody }", "expects USER:PASSWORD", true},
		{"stats auth alone", "global_defs { stats_auth a:b }", "set without stats_listen", false},
		{"log level", "global_defs { log_level loud }", `"loud" is not one of info|debug|warn|error`, true},
		{"group range", "virtual_server_group G { 198.18.0.10-5 80 }", "bad address range", true},
		{"unterminated quote", `vrrp_script s { script "/bin/x }`, "unterminated quoted string", true},
		{"nbsp", "global_defs {\n\u00a0router_id x\n}", "t.conf:2: warning: non-breaking space (U+00A0) treated as a space", false},
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
			hasErr := false
			for _, d := range diags {
				hasErr = hasErr || d.Severity == Error
			}
			if (err != nil) != hasErr {
				t.Errorf("err = %v, but error diagnostics present = %v", err, hasErr)
			}
			if (cfg == nil) != (err != nil) {
				t.Errorf("cfg nil = %v with err = %v", cfg == nil, err)
			}
		})
	}
}

func joinDiags(ds []Diagnostic) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString("  " + d.String() + "\n")
	}
	return b.String()
}

func TestNoPreemptMasterBecomesBackup(t *testing.T) {
	cfg := mustParse(t, "vrrp_instance V {\n state MASTER\n nopreempt\n interface eth0\n virtual_router_id 1\n virtual_ipaddress { 198.18.0.1 }\n}")
	if cfg.Instances[0].State != StateBackup {
		t.Errorf("state = %v, want BACKUP", cfg.Instances[0].State)
	}
}

func TestAuthPassTruncated(t *testing.T) {
	cfg := mustParse(t, "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress { 198.18.0.1 }\n authentication {\n auth_type PASS\n auth_pass 0123456789\n }\n}")
	if got := cfg.Instances[0].AuthPass; got != "01234567" {
		t.Errorf("auth_pass = %q", got)
	}
}

func TestErrorValue(t *testing.T) {
	_, diags, err := parseSrc(t, "vrrp_instance V {\n priorty 1\n}\nbogus\n")
	if err == nil {
		t.Fatal("want error")
	}
	var d Diagnostic
	if !errors.As(err, &d) || d.Severity != Error {
		t.Errorf("errors.As(Diagnostic) failed on %v", err)
	}
	lines := strings.Split(err.Error(), "\n")
	nErr := 0
	for _, x := range diags {
		if x.Severity == Error {
			nErr++
		}
	}
	if len(lines) != nErr || nErr < 4 {
		t.Errorf("error has %d lines for %d error diagnostics:\n%v", len(lines), nErr, err)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "t.conf:") {
			t.Errorf("error line %q lacks file:line", l)
		}
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	src := `
vrrp_instance A {
  interface eth0
  virtual_router_id 300
  priorty 100
}
virtual_server 198.18.0.1 80 {
  lb_algo nope
  real_server 198.18.1.1 80 { weight x }
}
}
global_defs {
`
	_, diags, err := parseSrc(t, src)
	if err == nil {
		t.Fatal("want errors")
	}
	wantLines := []string{"t.conf:4:", "t.conf:5:", "t.conf:8:", "t.conf:9:", "t.conf:11:", "t.conf:12:"}
	for _, w := range wantLines {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("no error at %s in:\n%v", w, err)
		}
	}
	_ = diags
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestInclude(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.conf":          "global_defs { router_id R }\ninclude conf.d/*.conf\ninclude sub/inst.conf\n",
		"conf.d/a.conf":      "vrrp_script a { script /bin/a }\n",
		"conf.d/b.conf":      "vrrp_script b { script /bin/b }\n",
		"sub/inst.conf":      "vrrp_instance V {\n include inner.conf\n}\n",
		"sub/inner.conf":     "interface eth0\nvirtual_router_id 4\nvirtual_ipaddress { 198.18.0.1 }\n",
		"conf.d/ignored.txt": "garbage",
	})
	cfg, diags, err := Load(filepath.Join(dir, "main.conf"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(diags) != 0 {
		t.Errorf("diags: %v", diags)
	}
	if len(cfg.Scripts) != 2 || cfg.Scripts[0].Name != "a" || cfg.Scripts[1].Name != "b" {
		t.Errorf("scripts = %v", cfg.Scripts)
	}
	if in := cfg.Instances[0]; in.Interface != "eth0" || in.VRID != 4 {
		t.Errorf("instance from nested include = %+v", in)
	}
	if len(cfg.Files) != 5 || !strings.HasSuffix(cfg.Files[4], filepath.Join("sub", "inner.conf")) {
		t.Errorf("files = %v", cfg.Files)
	}
	if len(cfg.Hash) != 64 {
		t.Errorf("hash = %q", cfg.Hash)
	}
	// The hash changes with any included file.
	if err := os.WriteFile(filepath.Join(dir, "conf.d/b.conf"), []byte("vrrp_script b { script /bin/c }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg2, _, err := Load(filepath.Join(dir, "main.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg2.Hash == cfg.Hash {
		t.Error("hash did not change when an include changed")
	}
}

func TestIncludeErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"loop.conf":    "global_defs { }\ninclude loop2.conf\n",
		"loop2.conf":   "include loop.conf\n",
		"missing.conf": "\n\ninclude nothere.conf\n",
		"glob.conf":    "include none/*.conf\n",
		"dir.conf":     "include sub\n",
		"sub/x.conf":   "",
		"noname.conf":  "include\n",
	})
	tests := []struct {
		file, want string
		isErr      bool
	}{
		{"loop.conf", "loop2.conf:1: include: include loop:", true},
		{"missing.conf", "missing.conf:3: include: cannot read", true},
		{"glob.conf", "glob.conf:1: warning: include: pattern", false},
		{"dir.conf", "not a regular file", true},
		{"noname.conf", "include: missing file name", true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, diags, err := Load(filepath.Join(dir, tt.file))
			s := joinDiags(diags)
			if !strings.Contains(s, tt.want) {
				t.Errorf("want %q in:\n%s", tt.want, s)
			}
			if (err != nil) != tt.isErr {
				t.Errorf("err = %v, want error=%v", err, tt.isErr)
			}
		})
	}
	_, diags, err := Load(filepath.Join(dir, "absent.conf"))
	if err == nil || len(diags) != 1 || !strings.Contains(err.Error(), "absent.conf: cannot read") {
		t.Errorf("Load of a missing file: %v %v", err, diags)
	}
}

func TestDiagnosticString(t *testing.T) {
	d := Diagnostic{Pos: Pos{"a.conf", 3}, Keyword: "priority", Msg: "bad", Severity: Error}
	if got := d.String(); got != "a.conf:3: priority: bad" {
		t.Errorf("got %q", got)
	}
	d.Severity = Warning
	if got := d.Error(); got != "a.conf:3: warning: priority: bad" {
		t.Errorf("got %q", got)
	}
	d.Keyword = ""
	d.Pos.Line = 0
	if got := d.String(); got != "a.conf: warning: bad" {
		t.Errorf("got %q", got)
	}
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/examples/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	files = append(files, "testdata/full.conf")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".conf")
		t.Run(name, func(t *testing.T) {
			cfg, _, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(cfg, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./config -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("dump of %s differs from %s (run with -update to accept):\n%s", f, golden, firstDiff(got, want))
			}
		})
	}
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + al[i] + "\nwant: " + bl[i]
		}
	}
	return "lengths differ"
}

func TestJSONDurationsAndEnums(t *testing.T) {
	cfg := mustParse(t, "virtual_server 198.18.0.1 80 {\n timeout_connect 1500ms\n lb_kind DR\n use_proxy\n real_server 198.18.1.1 80 { TCP_CHECK { } }\n}")
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"timeout_connect":"1.5s"`, `"lb_kind":"DR"`, `"kind":"TCP_CHECK"`, `"delay_loop":"1m0s"`, `"addr":"198.18.0.1:80"`} {
		if !strings.Contains(s, want) {
			t.Errorf("dump lacks %s", want)
		}
	}
	// A sub-struct marshals the same way on its own.
	b, _ = json.Marshal(cfg.VirtualServers[0])
	if !strings.Contains(string(b), `"timeout_connect":"1.5s"`) {
		t.Errorf("VirtualServer JSON: %s", b)
	}
	if len(cfg.NeedsIPVS()) != 0 {
		t.Error("use_proxy service must not need IPVS")
	}
}

func TestJSONByValue(t *testing.T) {
	cfg := mustParse(t, "virtual_server 198.18.0.1 80 {\n real_server 198.18.1.1 80\n}")
	a, err := json.Marshal(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	if !bytes.Equal(a, b) || !strings.Contains(string(a), `"delay_loop":"1m0s"`) {
		t.Errorf("value and pointer dumps differ or print raw durations:\n%s\n%s", a, b)
	}
}

// TestPastedFromWeb loads an example as it arrives from a web page or a Windows editor: CRLF line
// endings, tabs, and non-breaking spaces for indentation.
func TestPastedFromWeb(t *testing.T) {
	src, err := os.ReadFile("testdata/examples/dual-master-dr-lvs1.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(src), "\n", "\r\n")
	s = strings.ReplaceAll(s, "    ", "\t")
	s = strings.Replace(s, "\tdelay_loop", "\u00a0\u00a0delay_loop", 1)
	cfg, diags, err := Parse("pasted.conf", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Summary(), (Summary{2, 2, 2, 4, 4}); got != want {
		t.Errorf("Summary = %v, want %v", got, want)
	}
	if !strings.Contains(joinDiags(diags), "pasted.conf:17: warning: non-breaking space") {
		t.Errorf("no NBSP warning at line 17:\n%s", joinDiags(diags))
	}
}

func TestManyWarningsStayWarnings(t *testing.T) {
	var b strings.Builder
	b.WriteString("global_defs {\n")
	for range 5000 {
		b.WriteString(" enable_snmp_vrrp\n")
	}
	b.WriteString("}\n")
	cfg, diags, err := parseSrc(t, b.String())
	if err != nil || cfg == nil {
		t.Fatalf("warnings only, yet err = %v", err)
	}
	last := diags[len(diags)-1]
	if last.Severity != Warning || !strings.Contains(last.Msg, "more diagnostics not shown") {
		t.Errorf("last = %v", last)
	}
}

// TestConditionalsAndParams: keepalived's "@ID" lines and "$NAME=value" parameters, so that one
// file serves both nodes of a pair.
func TestConditionalsAndParams(t *testing.T) {
	src := `$VIP=198.18.0.10
$IF=eth0
$INST=VI_1 \
    weight 2
@lb1 $PRIO=150
@^lb1 $PRIO=100
vrrp_instance ${INST} {
    interface $IF
    virtual_router_id 51
    priority $PRIO
    @lb2 nopreempt
    notify "/bin/sh -c 'echo $1 $UNDEFINED'"
    virtual_ipaddress {
        $VIP/24
    }
}
`
	for _, c := range []struct {
		id        string
		prio      int
		nopreempt bool
	}{{"lb1", 150, false}, {"lb2", 100, true}, {"other", 100, false}} {
		cfg, diags, err := ParseWith("t.conf", []byte(strings.Replace(src, "${INST} {", "VI_1 {", 1)), Options{ConfigID: c.id})
		if err != nil {
			t.Fatalf("%s: %v %v", c.id, err, diags)
		}
		in := cfg.Instances[0]
		if in.Priority != c.prio || in.NoPreempt != c.nopreempt || in.Interface != "eth0" ||
			in.VIPs[0].Prefix.String() != "198.18.0.10/24" || in.Notify != "/bin/sh -c 'echo $1 $UNDEFINED'" {
			t.Errorf("%s: %+v", c.id, in)
		}
	}
	// A multi-line parameter expands to several lines: "${INST} {" becomes "VI_1" then "weight 2 {",
	// which is an error that names the line of the use.
	_, diags, err := ParseWith("t.conf", []byte(src), Options{ConfigID: "lb1"})
	if err == nil || !strings.Contains(fmt.Sprint(diags), "t.conf:7:") {
		t.Fatalf("multi-line parameter: %v %v", err, diags)
	}
	if _, _, err := ParseWith("t.conf", []byte("@ vrrp_instance X {\n}\n"), Options{}); err == nil ||
		!strings.Contains(err.Error(), "t.conf:1: @: a conditional line needs a config id") {
		t.Fatalf("empty id: %v", err)
	}
	// Expansion is bounded: doubling a parameter 20 times would reach 1 MiB per line.
	var b strings.Builder
	b.WriteString("$A0=xxxxxxxxxxxxxxxx\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, "$A%d=$A%d$A%d\n", i, i-1, i-1)
	}
	if _, diags, err := ParseWith("t.conf", []byte(b.String()), Options{}); err == nil || !strings.Contains(fmt.Sprint(diags), "KiB") {
		t.Fatalf("unbounded expansion: %v", diags)
	}
}

// TestSyncGroupTracking: a sync group's trackers apply to each member; without
// sync_group_tracking_weight their weights become 0 (FAULT), as keepalived treats them.
func TestSyncGroupTracking(t *testing.T) {
	src := `vrrp_script chk {
    script /bin/true
}
vrrp_track_file maint {
    file /run/maint
}
vrrp_instance A {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress { 198.18.0.1 }
    track_interface { eth1 weight -5 }
}
vrrp_instance B {
    interface eth0
    virtual_router_id 2
    virtual_ipaddress { 198.18.0.2 }
}
vrrp_sync_group G {
    group {
        A
        B
    }
    track_interface { eth1 }
    track_script { chk weight -20 }
    track_file { maint }
}
`
	cfg, diags, err := Parse("t.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(diags), "t.conf:24: warning: track_script: weight -20 in vrrp_sync_group G used as 0") {
		t.Errorf("diags: %v", diags)
	}
	a, b := cfg.Instances[0], cfg.Instances[1]
	if len(a.TrackInterfaces) != 1 || a.TrackInterfaces[0].Weight != -5 { // its own line wins
		t.Errorf("A interfaces: %+v", a.TrackInterfaces)
	}
	for _, in := range []*Instance{a, b} {
		if len(in.TrackScripts) != 1 || in.TrackScripts[0].Weight != 0 || !in.TrackScripts[0].HasWeight ||
			len(in.TrackFiles) != 1 || in.TrackFiles[0].Name != "maint" {
			t.Errorf("%s: scripts %+v files %+v", in.Name, in.TrackScripts, in.TrackFiles)
		}
	}
	if len(b.TrackInterfaces) != 1 || b.TrackInterfaces[0].Name != "eth1" || b.TrackInterfaces[0].Weight != 0 {
		t.Errorf("B interfaces: %+v", b.TrackInterfaces)
	}
	cfg, _, err = Parse("t.conf", []byte(strings.Replace(src, "    track_file { maint }", "    track_file { maint }\n    sync_group_tracking_weight", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Instances[1].TrackScripts[0].Weight; w != -20 {
		t.Errorf("with sync_group_tracking_weight: weight %d", w)
	}
}

// TestLVSGlobals: lvs_sync_daemon's forms and its sync ID default (the instance's VRID), and
// lvs_timeouts.
func TestLVSGlobals(t *testing.T) {
	base := "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress { 198.18.0.1 }\n}\n" +
		"virtual_server 198.18.0.1 80 {\n lb_kind DR\n real_server 198.18.0.11 80 { }\n}\n"
	for _, c := range []struct {
		line string
		want LVSSync
	}{
		{"lvs_sync_daemon eth1 VI_1", LVSSync{Interface: "eth1", Instance: "VI_1", SyncID: 51}},
		{"lvs_sync_daemon eth1 inst VI_1 id 7", LVSSync{Interface: "eth1", Instance: "VI_1", SyncID: 7}},
		{"lvs_sync_daemon eth1", LVSSync{Interface: "eth1", SyncID: 0}},
	} {
		cfg, diags, err := Parse("t.conf", []byte("global_defs {\n "+c.line+"\n lvs_timeouts tcp 900 udp 30\n}\n"+base))
		if err != nil {
			t.Fatalf("%s: %v", c.line, diags)
		}
		got := *cfg.Global.LVSSync
		got.Pos = Pos{}
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.line, got, c.want)
		}
		if to := cfg.Global.LVSTimeouts; to != (LVSTimeouts{TCP: 900 * time.Second, UDP: 30 * time.Second}) {
			t.Errorf("lvs_timeouts %+v", to)
		}
	}
}
