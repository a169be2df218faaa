package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

const vrrpExtraInst = `
vrrp_instance A {
  interface eth0
  virtual_router_id 1
  priority 100
  virtual_ipaddress { 198.18.0.10 }
%s
}
`

func TestLowerPrioDefaults(t *testing.T) {
	// keepalived 2.2.7: vrrp_garp_lower_prio_* default to vrrp_garp_master_*, and an instance's
	// garp_lower_prio_* to the global ones (not to its own garp_master_*).
	cfg := mustParse(t, "global_defs {\n vrrp_garp_master_delay 3\n vrrp_garp_master_repeat 4\n}\n"+
		strings.Replace(vrrpExtraInst, "%s", "garp_master_delay 9\ngarp_master_repeat 8", 1))
	in := cfg.Instances[0]
	if in.GarpLowerPrioDelay != 3*time.Second || in.GarpLowerPrioRepeat != 4 || in.LowerPrioNoAdvert || in.HigherPrioSendAdvert {
		t.Fatalf("defaults: %+v", in.VRRPExtra)
	}
	// Plain defaults: 5 s and 5.
	cfg = mustParse(t, strings.Replace(vrrpExtraInst, "%s", "", 1))
	if x := cfg.Instances[0].VRRPExtra; x.GarpLowerPrioDelay != 5*time.Second || x.GarpLowerPrioRepeat != 5 {
		t.Fatalf("plain defaults: %+v", x)
	}
	// vrrp_strict: none.
	cfg = mustParse(t, "global_defs {\n vrrp_strict\n}\n"+strings.Replace(vrrpExtraInst, "%s", "", 1))
	if x := cfg.Instances[0].VRRPExtra; x.GarpLowerPrioDelay != 0 || x.GarpLowerPrioRepeat != 0 {
		t.Fatalf("strict: %+v", x)
	}
}

func TestLowerPrioKeywords(t *testing.T) {
	cfg, diags, err := parseSrc(t, `global_defs {
  vrrp_garp_lower_prio_delay 2
  vrrp_garp_lower_prio_repeat 7
  vrrp_lower_prio_no_advert
  vrrp_higher_prio_send_advert true
  vrrp_check_unicast_src
}
`+strings.Replace(vrrpExtraInst, "%s", "", 1)+strings.Replace(strings.Replace(vrrpExtraInst, "A {", "B {", 1), "%s", `
  virtual_router_id 2
  garp_lower_prio_delay 0.5
  garp_lower_prio_repeat 0
  lower_prio_no_advert false
  higher_prio_send_advert false
  check_unicast_src false`, 1))
	if err != nil {
		t.Fatal(err, diags)
	}
	for _, d := range diags {
		if strings.Contains(d.Msg, "not implemented") {
			t.Errorf("still warned: %v", d)
		}
	}
	a, b := cfg.Instances[0].VRRPExtra, cfg.Instances[1].VRRPExtra
	if a.GarpLowerPrioDelay != 2*time.Second || a.GarpLowerPrioRepeat != 7 || !a.LowerPrioNoAdvert || !a.HigherPrioSendAdvert || !a.CheckUnicastSrc {
		t.Fatalf("from global: %+v", a)
	}
	if b.GarpLowerPrioDelay != 500*time.Millisecond || b.GarpLowerPrioRepeat != 0 || b.LowerPrioNoAdvert || b.HigherPrioSendAdvert || b.CheckUnicastSrc {
		t.Fatalf("own: %+v", b)
	}
}

func TestUnicastPeerTTLAndVRRPPeers(t *testing.T) {
	cfg, diags, err := parseSrc(t, strings.Replace(vrrpExtraInst, "%s", `
  unicast_src_ip 198.18.0.1
  unicast_peer {
    198.18.0.2 min_ttl 60 max_ttl 64
    198.18.0.3
  }
  vrrp_peers 198.18.0.0/24 198.19.0.1
  vrrp_peers 198.18.1.0/24`, 1))
	if err != nil {
		t.Fatal(err, diags)
	}
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	in := cfg.Instances[0]
	if len(in.UnicastPeers) != 2 || len(in.UnicastPeerTTL) != 1 || in.UnicastPeerTTL[0] != (PeerTTL{netip.MustParseAddr("198.18.0.2"), 60, 64}) {
		t.Fatalf("peers %v ttl %v", in.UnicastPeers, in.UnicastPeerTTL)
	}
	want := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("198.19.0.1/32"), netip.MustParsePrefix("198.18.1.0/24")}
	if len(in.VRRPPeers) != 3 || in.VRRPPeers[0] != want[0] || in.VRRPPeers[1] != want[1] || in.VRRPPeers[2] != want[2] {
		t.Fatalf("vrrp_peers %v", in.VRRPPeers)
	}
	for _, bad := range []string{
		"unicast_peer {\n 198.18.0.2 min_ttl\n}",
		"unicast_peer {\n 198.18.0.2 min_ttl 300\n}",
		"unicast_peer {\n 198.18.0.2 min_ttl 70 max_ttl 64\n}",
		"unicast_peer {\n 198.18.0.2 ttl 64\n}",
		"vrrp_peers 198.18.0.0/33",
		"vrrp_peers",
	} {
		_, diags, err := parseSrc(t, strings.Replace(vrrpExtraInst, "%s", bad, 1))
		if err == nil {
			t.Errorf("%q: accepted (%v)", bad, diags)
			continue
		}
		if !strings.Contains(err.Error(), "t.conf:") {
			t.Errorf("%q: error without file:line: %v", bad, err)
		}
	}
}

func TestUseVMACName(t *testing.T) {
	if _, diags, err := parseSrc(t, strings.Replace(vrrpExtraInst, "%s", "use_vmac vrrp.interface.long", 1)); err == nil {
		t.Fatalf("long VMAC name accepted: %v", diags)
	}
	cfg := mustParse(t, strings.Replace(vrrpExtraInst, "%s", "use_vmac\nvmac_xmit_base", 1))
	if in := cfg.Instances[0]; !in.UseVMAC || in.VMACName != "" || !in.VMACXmitBase {
		t.Fatalf("%+v", in)
	}
}
