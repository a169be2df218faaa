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
}
`))
	a, b := v.Instances[0], v.Instances[1]
	if a.GARPLowerPrioRepeat != 5 || a.GARPLowerPrioDelay != 2*time.Second || !a.HigherPrioSendAdvert || a.LowerPrioNoAdvert {
		t.Fatalf("A: %+v", a)
	}
	if b.GARPLowerPrioRepeat != -1 || b.GARPLowerPrioDelay != -1 || !b.LowerPrioNoAdvert || b.HigherPrioSendAdvert {
		t.Fatalf("B: %+v", b)
	}
}
