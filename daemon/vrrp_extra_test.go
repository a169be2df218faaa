package daemon

import (
	"testing"
	"time"
)

// TestVRRPExtraTranslation: the lower-priority-master keywords reach the VRRP router; an explicit
// 0 means none (the vrrp package reads 0 as keepalived's default).
func TestVRRPExtraTranslation(t *testing.T) {
	v := vrrpConfig(mustParse(t, `global_defs {
    vrrp_garp_master_delay 2
}
vrrp_instance A {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        198.18.0.10
    }
    higher_prio_send_advert
    use_vmac vip51
    vmac_xmit_base
}
vrrp_instance B {
    interface eth0
    virtual_router_id 52
    virtual_ipaddress {
        198.18.0.20
    }
    garp_lower_prio_repeat 0
    garp_lower_prio_delay 0
    lower_prio_no_advert
    unicast_src_ip 198.18.0.1
    unicast_peer {
        198.18.0.2 min_ttl 64 max_ttl 128
    }
    vrrp_peers 198.18.0.0/24
}
`))
	a, b := v.Instances[0], v.Instances[1]
	if a.GARPLowerPrioRepeat != 5 || a.GARPLowerPrioDelay != 2*time.Second || !a.HigherPrioSendAdvert || a.LowerPrioNoAdvert {
		t.Fatalf("A: %+v", a)
	}
	if !a.UseVMAC || a.VMACName != "vip51" || !a.VMACXmitBase || b.UseVMAC {
		t.Fatalf("use_vmac: %+v %+v", a, b)
	}
	if b.GARPLowerPrioRepeat != -1 || b.GARPLowerPrioDelay != -1 || !b.LowerPrioNoAdvert || b.HigherPrioSendAdvert {
		t.Fatalf("B: %+v", b)
	}
	if len(b.UnicastPeerTTL) != 1 || b.UnicastPeerTTL[0].Min != 64 || b.UnicastPeerTTL[0].Max != 128 || b.UnicastPeerTTL[0].Peer.String() != "198.18.0.2" {
		t.Fatalf("B peer TTL: %+v", b.UnicastPeerTTL)
	}
	if len(b.AllowedPeers) != 1 || b.AllowedPeers[0].String() != "198.18.0.0/24" || len(a.AllowedPeers) != 0 {
		t.Fatalf("vrrp_peers: %v %v", a.AllowedPeers, b.AllowedPeers)
	}
}
