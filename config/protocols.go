package config

// validateProtocol refuses virtual servers that nothing would serve and UDP services with
// TCP-only options. UDP services with lb_kind NAT (or use_proxy) are served by halb's userspace
// UDP proxy; SCTP has no userspace proxy, so SCTP needs IPVS (lb_kind DR or TUN).
func (b *builder) validateProtocol(vs *VirtualServer) {
	proxied := vs.Kind != VSFwmark && (vs.LBKind == LBKindNAT || vs.UseProxy)
	if !proxied {
		return
	}
	switch vs.Protocol {
	case ProtoSCTP:
		b.d.errorf(vs.Pos, "protocol", "virtual_server %s: SCTP with lb_kind NAT is served neither by halb's proxy nor by IPVS here; use lb_kind DR or TUN", vs.Name())
	case ProtoUDP:
		if vs.ProxyMode != ProxyTCP {
			b.d.errorf(vs.Pos, "proxy_mode", "virtual_server %s: proxy_mode %s needs protocol TCP (UDP services are relayed datagram by datagram)", vs.Name(), vs.ProxyMode)
		}
		if vs.SendProxy != ProxyProtoNone || vs.AcceptProxy {
			b.d.errorf(vs.Pos, "send_proxy", "virtual_server %s: the PROXY protocol needs protocol TCP", vs.Name())
		}
	}
}
