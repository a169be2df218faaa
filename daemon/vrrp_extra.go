package daemon

import (
	"halb/config"
	"halb/vrrp"
)

// vrrpExtra translates the keywords for meeting another master, the unicast TTL rule and the
// advert source allow-list. The vrrp package reads 0 as "keepalived's default", so an explicit 0
// from the file becomes -1 (none).
func vrrpExtra(ic *vrrp.InstanceConfig, in *config.Instance) {
	x := in.VRRPExtra
	ic.GARPLowerPrioRepeat = x.GarpLowerPrioRepeat
	if ic.GARPLowerPrioRepeat == 0 {
		ic.GARPLowerPrioRepeat = -1
	}
	ic.GARPLowerPrioDelay = x.GarpLowerPrioDelay
	if ic.GARPLowerPrioDelay == 0 {
		ic.GARPLowerPrioDelay = -1
	}
	ic.LowerPrioNoAdvert = x.LowerPrioNoAdvert
	ic.HigherPrioSendAdvert = x.HigherPrioSendAdvert
	for _, pt := range x.UnicastPeerTTL {
		ic.UnicastPeerTTL = append(ic.UnicastPeerTTL, vrrp.PeerTTL{Peer: pt.Peer, Min: pt.Min, Max: pt.Max})
	}
	ic.AllowedPeers = x.VRRPPeers
	ic.UseVMAC, ic.VMACName, ic.VMACXmitBase = in.UseVMAC, in.VMACName, in.VMACXmitBase
}
