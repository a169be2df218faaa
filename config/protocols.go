package config

// validateProtocol refuses virtual servers that nothing would serve and UDP services with
// TCP-only options. UDP services with lb_kind NAT (or use_proxy) are served by halb's userspace
// UDP proxy; SCTP has no userspace proxy, so SCTP needs IPVS (lb_kind DR or TUN).
func (b *builder) validateProtocol(vs *VirtualServer) {
	b.warnIPVSOnly(vs)
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

// kwAt remembers where a keyword was, for checks made once the block is complete.
type kwAt struct {
	pos Pos
	kw  string
}

// ipvsFlagKeywords adds the IPVS service flags: they reach the kernel for IPVS services and are
// warned about (with their line) for services the userspace proxy serves.
func ipvsFlagKeywords(t table[vsBuild]) {
	set := func(field func(*VirtualServer) *bool) handler[vsBuild] {
		return func(b *builder, v *vsBuild, n *node) {
			if b.arity(n, 0, 0) {
				*field(v.vs) = true
				v.vs.ipvsOnly = append(v.vs.ipvsOnly, kwAt{n.pos, n.kw})
			}
		}
	}
	t["ops"] = set(func(vs *VirtualServer) *bool { return &vs.OnePacket })
	for _, kw := range []string{"sh-fallback", "mh-fallback", "flag-1"} {
		t[kw] = set(func(vs *VirtualServer) *bool { return &vs.Sched1 })
	}
	for _, kw := range []string{"sh-port", "mh-port", "flag-2"} {
		t[kw] = set(func(vs *VirtualServer) *bool { return &vs.Sched2 })
	}
	t["flag-3"] = set(func(vs *VirtualServer) *bool { return &vs.Sched3 })
}

// ipvsThresholdKeywords adds uthreshold and lthreshold to real_server.
func ipvsThresholdKeywords(t table[rsBuild]) {
	t["uthreshold"] = func(b *builder, r *rsBuild, n *node) {
		b.integer(n, &r.rs.UThreshold, 0, 1<<31-1)
		r.rs.ipvsOnly = append(r.rs.ipvsOnly, kwAt{n.pos, n.kw})
	}
	t["lthreshold"] = func(b *builder, r *rsBuild, n *node) {
		b.integer(n, &r.rs.LThreshold, 0, 1<<31-1)
		r.rs.ipvsOnly = append(r.rs.ipvsOnly, kwAt{n.pos, n.kw})
	}
}

// warnIPVSOnly warns, at each keyword's line, about IPVS-only settings of a proxied service.
func (b *builder) warnIPVSOnly(vs *VirtualServer) {
	if vs.needsIPVS() {
		return
	}
	for _, k := range vs.ipvsOnly {
		if k.kw == "ops" && vs.Protocol == ProtoUDP {
			continue // the userspace UDP proxy ends a flow with its first reply
		}
		b.d.warnf(k.pos, k.kw, "virtual_server %s is served by halb's userspace proxy; this IPVS scheduler flag has no effect there", vs.Name())
	}
	for _, rs := range vs.RealServers {
		for _, k := range rs.ipvsOnly {
			b.d.warnf(k.pos, k.kw, "real_server %s: IPVS connection thresholds have no effect on virtual_server %s, served by halb's userspace proxy (use maxconn)", rs.Addr, vs.Name())
		}
	}
}
