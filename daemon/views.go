package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"halb/admin"
	"halb/health"
	"halb/internal/version"
	"halb/ipvs"
	"halb/proxy/balance"
)

// source implements admin.Source over the daemon.
type source struct{ d *Daemon }

func (s source) Info() admin.Info {
	d := s.d
	g := d.gen.Load()
	v := version.Get()
	return admin.Info{Version: v.Version, GoVersion: runtime.Version(), StartedAt: d.started, Uptime: time.Since(d.started),
		ConfigFile: d.opts.ConfigPath, ConfigHash: g.cfg.Hash, LastReload: *d.lastReload.Load(),
		LogLevel: d.level.Level().String(), PID: os.Getpid()}
}

func backendState(v balance.BackendView) string {
	switch {
	case v.Admin == balance.Maint:
		return admin.StateMaint
	case !v.Up:
		return admin.StateDown
	case v.Admin == balance.Drain:
		return admin.StateDrain
	}
	return admin.StateUp
}

func (s source) Services() []admin.Service {
	d := s.d
	g := d.gen.Load()
	stats := map[string]int{}
	pst := d.proxy.Stats()
	for i, st := range pst {
		stats[st.Name] = i
	}
	checks := map[string]health.TargetStatus{}
	for _, st := range d.checks.Status() {
		checks[st.ID] = st
	}
	var out []admin.Service
	for _, vs := range g.cfg.VirtualServers {
		name := vs.Name()
		as := admin.Service{Name: name, State: "up"}
		if !d.serviceUp(name) {
			as.State = "down"
		}
		var addrs []string
		for _, a := range vs.Addrs {
			addrs = append(addrs, a.String())
		}
		as.Listen = strings.Join(addrs, ",")
		svc := g.byName[name]
		if svc == nil { // served by IPVS
			as.Mode = "ipvs-" + strings.ToLower(vs.LBKind.String())
			for _, rs := range vs.RealServers {
				b := admin.Backend{Name: rs.Addr.String(), Addr: rs.Addr.String(), State: admin.StateUp, Weight: rs.Weight, ConfiguredWeight: rs.Weight}
				if st, ok := checks[targetID(name, b.Name)]; ok && !st.Up {
					b.State = admin.StateDown
				}
				fillCheck(&b, checks[targetID(name, b.Name)])
				as.Backends = append(as.Backends, b)
			}
			out = append(out, as)
			continue
		}
		as.Mode = vs.ProxyMode.String()
		if udpProxied(vs) {
			as.Mode = "userspace-udp"
			flows, total, in, out, dropped := d.udpStats(svc)
			as.Active, as.Total, as.BytesIn, as.BytesOut, as.Refused = flows, total, in, out, dropped
		}
		for _, sn := range svc.specs {
			i, ok := stats[sn]
			if !ok {
				continue
			}
			st := pst[i]
			as.Active += st.Active
			as.Total += st.Total
			as.Queued += st.Queued
			as.Refused += st.Refused
			as.BytesIn += st.BytesIn
			as.BytesOut += st.BytesOut
			as.Errors += st.Errors
			for c := 1; c <= 5; c++ {
				as.Requests[c-1] += st.Requests[c]
			}
		}
		as.Backends = backendsOf(svc, checks)
		out = append(out, as)
	}
	for _, p := range g.cfg.Pools { // top-level pools (l7.go): no listener of their own
		name := poolServiceName(p.Name)
		svc := g.byName[name]
		if svc == nil {
			continue
		}
		as := admin.Service{Name: name, Mode: "pool", State: "up", Backends: backendsOf(svc, checks)}
		if !d.serviceUp(name) {
			as.State = "down"
		}
		out = append(out, as)
	}
	return out
}

// backendsOf lists a service's backends across its pools, with their health checks.
func backendsOf(svc *service, checks map[string]health.TargetStatus) []admin.Backend {
	var out []admin.Backend
	seen := map[string]int{}
	for _, p := range svc.pools {
		for _, v := range p.pool.Views() {
			if i, ok := seen[v.Name]; ok {
				out[i].Active += v.Active
				out[i].Total += v.Total
				out[i].BytesIn += v.BytesIn
				out[i].BytesOut += v.BytesOut
				continue
			}
			b := admin.Backend{Name: v.Name, Addr: v.Addr.String(), State: backendState(v), Weight: v.Weight,
				ConfiguredWeight: v.ConfiguredWeight, Active: v.Active, Total: v.Total, BytesIn: v.BytesIn, BytesOut: v.BytesOut,
				Backup: v.Backup, Sorry: v.Sorry}
			fillCheck(&b, checks[targetID(svc.name, v.Name)])
			seen[v.Name] = len(out)
			out = append(out, b)
		}
	}
	return out
}

func fillCheck(b *admin.Backend, st health.TargetStatus) {
	if st.ID == "" {
		return
	}
	b.LastCheck = admin.Check{At: st.Last.At, OK: st.Last.OK, Reason: st.Last.Reason, Duration: st.Last.Duration}
	b.Since = st.Since
	if len(st.ByReason) > 0 {
		b.CheckFailures = st.ByReason
	}
}

func (s source) VRRP() []admin.VRRPInstance {
	if s.d.router == nil {
		return nil
	}
	var out []admin.VRRPInstance
	for _, st := range s.d.router.Status() {
		v := admin.VRRPInstance{Name: st.Name, Interface: st.Interface, VRID: int(st.VRID), State: strings.ToLower(st.State.String()),
			Priority: int(st.Priority), EffectivePriority: int(st.EffectivePriority),
			LastTransition: admin.Transition{At: st.LastTransition.At, From: strings.ToLower(st.LastTransition.From.String()),
				To: strings.ToLower(st.LastTransition.To.String()), Cause: st.LastTransition.Cause},
			AdvertsSent: st.Counters.AdvertsSent, AdvertsReceived: st.Counters.AdvertsReceived, Transitions: st.Counters.Transitions}
		if st.MasterAddr.IsValid() {
			v.MasterAddr = st.MasterAddr.String()
		}
		for _, c := range st.Contributions {
			v.Contributions = append(v.Contributions, admin.Contribution{Name: c.Name, Weight: c.Weight, Fault: c.Fault, Reason: c.Reason})
		}
		if len(st.Counters.Dropped) > 0 {
			v.Dropped = map[string]uint64{}
			for r, n := range st.Counters.Dropped {
				v.Dropped[r.String()] = n
			}
		}
		out = append(out, v)
	}
	return out
}

func (s source) IPVS() (string, error) {
	if s.d.lvs == nil {
		return "", errors.New("no service uses IPVS (lb_kind DR/TUN)")
	}
	return formatIPVS(s.d.lvs.Desired(), s.d.lvsTab, s.d.lvs.Conflicts())
}

// formatIPVS renders halb's desired table and the kernel's, as `ipvsadm -Ln` prints them, and the
// services halb leaves alone because someone else created them.
func formatIPVS(desired []ipvs.Service, kernel ipvs.Table, conflicts []ipvs.ServiceKey) (string, error) {
	var b bytes.Buffer
	b.WriteString("== halb's view (config + health) ==\n")
	if err := ipvs.Format(&b, desired); err != nil {
		return "", err
	}
	b.WriteString("\n== the kernel's table ==\n")
	cur, err := kernel.Services()
	if err != nil {
		fmt.Fprintf(&b, "cannot read: %v\n", err)
	} else if err := ipvs.Format(&b, cur); err != nil {
		return "", err
	}
	if len(conflicts) > 0 {
		b.WriteString("\nleft alone (not created by halb):")
		for _, k := range conflicts {
			b.WriteString(" " + k.String())
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// controller implements admin.Controller over the daemon.
type controller struct{ d *Daemon }

func (c controller) each(service, backend string, f func(*balance.Pool) error) error {
	c.d.reloadMu.Lock()
	defer c.d.reloadMu.Unlock()
	svc := c.d.gen.Load().byName[service]
	if svc == nil {
		return fmt.Errorf("no proxied service %q", service)
	}
	found := false
	for _, p := range svc.pools {
		if p.pool.Backend(backend) == nil {
			continue
		}
		if err := f(p.pool); err != nil {
			return err
		}
		found = true
	}
	if !found {
		return fmt.Errorf("service %s has no backend %q", service, backend)
	}
	return nil
}

func (c controller) SetBackendState(service, backend, state string) error {
	st, err := balance.ParseAdminState(state)
	if err != nil {
		return err
	}
	return c.each(service, backend, func(p *balance.Pool) error { return p.SetAdmin(backend, st) })
}

func (c controller) SetWeight(service, backend string, w int) error {
	if w < 0 || w > admin.MaxWeight {
		return fmt.Errorf("weight %d out of range 0..%d", w, admin.MaxWeight)
	}
	return c.each(service, backend, func(p *balance.Pool) error { return p.SetWeight(backend, w) })
}

func (c controller) Reload() error { return c.d.Reload() }

func (c controller) SetLogLevel(level string) error {
	var l zapcore.Level
	if err := l.UnmarshalText([]byte(level)); err != nil || l < zapcore.DebugLevel || l > zapcore.ErrorLevel {
		return fmt.Errorf("unknown log level %q (debug, info, warn, error)", level)
	}
	if c.d.level == (zap.AtomicLevel{}) {
		return errors.New("log level is fixed")
	}
	c.d.level.SetLevel(l)
	return nil
}
