package daemon

import (
	"context"
	"fmt"

	"halb/config"
	"halb/proxy"
)

// UDP virtual servers with lb_kind NAT (or use_proxy) are served by proxy.UDPServer: the
// kernel's IPVS is not needed for them, as for TCP. Their pools and health come from the same
// generation as the TCP services'.

// udpProxied reports whether vs is served by the userspace UDP proxy.
func udpProxied(vs *config.VirtualServer) bool {
	if vs.Kind == config.VSFwmark || vs.Protocol != config.ProtoUDP {
		return false
	}
	return vs.LBKind == config.LBKindNAT || vs.UseProxy
}

// udpSpecs is the UDP proxy's view of g: one UDPService per listen address of each UDP service.
// A flow's idle timeout is the service's timeout_client; ops ends a flow with its first reply.
func udpSpecs(g *generation) []proxy.UDPService {
	var out []proxy.UDPService
	for _, svc := range g.services {
		if !udpProxied(svc.vs) || len(svc.pools) == 0 {
			continue
		}
		svc.specs = svc.specs[:0]
		for _, a := range svc.vs.Addrs {
			name := svc.name
			if len(svc.vs.Addrs) > 1 {
				name = svc.name + "@" + a.String()
			}
			svc.specs = append(svc.specs, name)
			out = append(out, proxy.UDPService{Name: name, Listen: a, Pool: svc.pools[0].pool, IdleTimeout: svc.vs.TimeoutClient,
				OnePacket: svc.vs.OnePacket})
		}
	}
	return out
}

// startUDP serves g's UDP services (the server is made in New, so UDPAddr never races Run).
func (d *Daemon) startUDP(g *generation) error {
	if err := d.udp.Apply(udpSpecs(g)); err != nil {
		return fmt.Errorf("daemon: start udp proxy: %w", err)
	}
	return nil
}

// stopUDP closes the UDP services (UDP has no connections to drain).
func (d *Daemon) stopUDP(ctx context.Context) error {
	if d.udp == nil {
		return nil
	}
	return d.udp.Shutdown(ctx)
}

// UDPAddr is the bound address of a UDP service (tests listen on port 0).
func (d *Daemon) UDPAddr(name string) string {
	if d.udp == nil {
		return ""
	}
	if a := d.udp.Addr(name); a != nil {
		return a.String()
	}
	return ""
}

// udpStats sums the UDP proxy's counters for the services of one virtual server.
func (d *Daemon) udpStats(svc *service) (flows int64, total, in, out, dropped uint64) {
	if d.udp == nil {
		return
	}
	names := map[string]bool{}
	for _, n := range svc.specs {
		names[n] = true
	}
	for _, st := range d.udp.Stats() {
		if names[st.Name] {
			flows += st.Flows
			total += st.Total
			in += st.BytesIn
			out += st.BytesOut
			dropped += st.Dropped
		}
	}
	return
}
