package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"halb/admin"
	"halb/bgp"
	"halb/config"
	"halb/health"
)

// bgpRunner drives the BGP speaker from service health: a VIP is announced while every service
// that announces it has quorum and is not drained, and every tracked script passes; it is made
// local (bgp.LocalVIPs) before it is announced and stays local a drain time after its withdrawal.
type bgpRunner struct {
	log      *zap.Logger
	sp       *bgp.Speaker
	up       func(service string) bool
	now      func() time.Time
	newLocal func(iface string) vipKeeper

	mu       sync.Mutex
	local    vipKeeper
	started  bool // the speaker runs: sync may announce
	cfg      *config.Config
	drained  map[string]bool // services withdrawn by `halb ctl drain service`
	scripts  map[string]bool // tracked vrrp_script name -> passing
	stopping bool            // SIGTERM: everything withdrawn
	linger   bgp.Linger
	timer    *time.Timer
	stopScr  context.CancelFunc
	lastErr  string
}

// bgpConfig translates the bgp block for the speaker.
func bgpConfig(g *config.BGP) bgp.Config {
	c := bgp.Config{RouterID: g.RouterID, LocalAS: g.LocalAS, ListenPort: g.ListenPort}
	for _, n := range g.Neighbors {
		c.Neighbors = append(c.Neighbors, bgp.Neighbor{
			Addr: n.Addr, RemoteAS: n.RemoteAS, Port: uint16(n.Port), HoldTime: n.HoldTime, Password: n.Password,
			Passive: n.Passive, LocalAddr: n.SourceIP, Multihop: n.Multihop,
		})
	}
	return c
}

func bgpRoute(a netip.Addr, ann config.BGPAnnounce, def config.BGPAnnounce) bgp.Route {
	m := ann.Merge(def)
	return bgp.Route{Prefix: bgp.HostRoute(a), Communities: slices.Clone(m.Communities), MED: m.MED, HasMED: m.HasMED, Prepend: m.Prepend}
}

// bgpRoutes is the pure rule: which routes to announce for cfg, given each service's health.
// A VIP served by several services (ports) is announced only while all of them are healthy: a
// node that cannot serve one of them must not attract its flows.
func bgpRoutes(cfg *config.Config, healthy func(service string) bool, scriptsOK bool) []bgp.Route {
	g := cfg.BGP
	if g == nil || !scriptsOK {
		return nil
	}
	var out []bgp.Route
	for _, v := range g.VIPs {
		out = append(out, bgpRoute(v.Addr, v.Announce, g.Announce))
	}
	ok := map[netip.Addr]bool{}
	first := map[netip.Addr]*config.VirtualServer{}
	var order []netip.Addr
	for _, vs := range cfg.VirtualServers {
		if vs.BGPAnnounce == nil || vs.Kind != config.VSAddr {
			continue
		}
		a := vs.Addr.Addr().Unmap()
		if _, seen := first[a]; !seen {
			first[a], ok[a] = vs, true
			order = append(order, a)
		}
		ok[a] = ok[a] && healthy(vs.Name())
	}
	for _, a := range order {
		if ok[a] {
			out = append(out, bgpRoute(a, *first[a].BGPAnnounce, g.Announce))
		}
	}
	return out
}

// vipKeeper keeps the announced VIPs local (bgp.LocalVIPs; a fake in tests).
type vipKeeper interface {
	Set(addrs []netip.Addr) error
	Close() error
	Name() string
}

func newBGPRunner(log *zap.Logger, up func(string) bool) *bgpRunner {
	r := &bgpRunner{log: log.Named("bgp"), sp: bgp.NewSpeaker(log), up: up, now: time.Now,
		drained: map[string]bool{}, scripts: map[string]bool{}}
	r.newLocal = func(iface string) vipKeeper { return bgp.NewLocalVIPs(r.log, iface) }
	return r
}

// start runs the speaker for cfg and announces what is healthy.
func (r *bgpRunner) start(ctx context.Context, cfg *config.Config) error {
	r.mu.Lock()
	r.cfg = cfg
	r.local = r.newLocal(cfg.BGP.Interface)
	r.startScriptsLocked(cfg)
	r.mu.Unlock()
	if err := r.sp.Start(ctx, bgpConfig(cfg.BGP)); err != nil {
		return err
	}
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	r.sync()
	return nil
}

// apply takes a reloaded config (with a bgp block).
func (r *bgpRunner) apply(ctx context.Context, cfg *config.Config) error {
	r.mu.Lock()
	if r.cfg.BGP.Interface != cfg.BGP.Interface {
		if err := r.local.Close(); err != nil {
			r.log.Warn("close the old VIP interface", zap.Error(err))
		}
		r.local, r.linger = r.newLocal(cfg.BGP.Interface), bgp.Linger{}
	}
	r.cfg = cfg
	r.startScriptsLocked(cfg)
	r.mu.Unlock()
	err := r.sp.Apply(ctx, bgpConfig(cfg.BGP))
	r.sync()
	return err
}

// sync announces the healthy routes, the VIPs local first.
func (r *bgpRunner) sync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg == nil || !r.started {
		return
	}
	scriptsOK := !slices.Contains(mapsValues(r.scripts), false)
	var routes []bgp.Route
	if !r.stopping {
		routes = bgpRoutes(r.cfg, func(s string) bool { return r.up(s) && !r.drained[s] }, scriptsOK)
	}
	addrs := make([]netip.Addr, 0, len(routes))
	for _, rt := range routes {
		addrs = append(addrs, rt.Prefix.Addr())
	}
	now := r.now()
	local, next := r.linger.Local(now, addrs, r.cfg.BGP.DrainTime)
	var errs []error
	if err := r.local.Set(local); err != nil {
		// A VIP that is not local would be blackholed: announce none of them.
		errs = append(errs, err)
		routes = nil
	}
	errs = append(errs, r.sp.SetRoutes(context.Background(), routes))
	if err := errors.Join(errs...); err != nil {
		if r.lastErr != err.Error() {
			r.log.Error("announcements", zap.Error(err))
		}
		r.lastErr = err.Error()
	} else {
		r.lastErr = ""
	}
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if !next.IsZero() {
		r.timer = time.AfterFunc(next.Sub(now), r.sync) // a lingering VIP's drain time ends
	}
}

func mapsValues(m map[string]bool) []bool {
	out := make([]bool, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// setDrained withdraws (or re-announces) the VIP of a service on the operator's word.
func (r *bgpRunner) setDrained(service string, drain bool) error {
	r.mu.Lock()
	vs := findVS(r.cfg, service)
	if vs == nil {
		r.mu.Unlock()
		return fmt.Errorf("unknown service %q", service)
	}
	if vs.BGPAnnounce == nil {
		r.mu.Unlock()
		return fmt.Errorf("service %s is not announced over BGP (no bgp_announce)", service)
	}
	r.drained[service] = drain
	r.mu.Unlock()
	r.log.Info("service drain by operator", zap.String("service", service), zap.Bool("drain", drain))
	r.sync()
	return nil
}

// withdrawAll withdraws every route for a planned stop; the VIPs stay local.
func (r *bgpRunner) withdrawAll() time.Duration {
	r.mu.Lock()
	r.stopping = true
	drain := r.cfg.BGP.DrainTime
	r.mu.Unlock()
	r.sync()
	r.log.Info("withdrawn for shutdown; waiting the drain time", zap.Duration("drain_time", drain))
	return drain
}

// close ends the sessions and removes the VIPs.
func (r *bgpRunner) close() error {
	r.mu.Lock()
	if r.timer != nil {
		r.timer.Stop()
	}
	if r.stopScr != nil {
		r.stopScr()
	}
	r.cfg = nil
	local := r.local
	r.mu.Unlock()
	r.sp.Stop()
	if local != nil {
		return local.Close()
	}
	return nil
}

// startScriptsLocked (re)starts the loops of the tracked vrrp_scripts.
func (r *bgpRunner) startScriptsLocked(cfg *config.Config) {
	if r.stopScr != nil {
		r.stopScr()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stopScr = cancel
	old := r.scripts
	r.scripts = map[string]bool{}
	for _, t := range cfg.BGP.TrackScripts {
		for _, s := range cfg.Scripts {
			if s.Name != t.Name {
				continue
			}
			ok, known := old[s.Name]
			if !known {
				ok = !s.InitFail
			}
			r.scripts[s.Name] = ok
			go r.runScript(ctx, s, scriptOptions(cfg), ok)
		}
	}
}

// runScript runs one tracked script every interval with its rise/fall, as VRRP tracking does.
func (r *bgpRunner) runScript(ctx context.Context, s *config.Script, so health.ScriptOptions, ok bool) {
	if s.User != "" {
		so.User, so.Group = s.User, s.Group
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = s.Interval
	}
	c := &health.MiscChecker{Command: s.Script, Timeout: timeout, Script: so}
	run := 0 // consecutive results against the current state
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		res := c.Check(ctx)
		if ctx.Err() != nil {
			return
		}
		if res.OK != ok {
			run++
			if need := map[bool]int{true: s.Rise, false: s.Fall}[res.OK]; run >= max(need, 1) {
				ok, run = res.OK, 0
				r.log.Info("tracked script", zap.String("script", s.Name), zap.Bool("ok", ok), zap.String("reason", res.Reason))
				r.mu.Lock()
				if _, still := r.scripts[s.Name]; still {
					r.scripts[s.Name] = ok
				}
				r.mu.Unlock()
				r.sync()
			}
		} else {
			run = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// status is the BGP view for admin.
func (r *bgpRunner) status(ctx context.Context) (bgp.Status, string, string, bool) {
	st := r.sp.Status(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	iface := ""
	if r.local != nil {
		iface = r.local.Name()
	}
	return st, iface, r.lastErr, r.stopping
}

// startBGP starts the speaker when the config has a bgp block.
func (d *Daemon) startBGP(ctx context.Context, cfg *config.Config) error {
	if cfg.BGP == nil {
		return nil
	}
	r := newBGPRunner(d.log, d.quorumUp)
	d.bgp.Store(r) // before start: a quorum change during the start is not lost
	if err := r.start(ctx, cfg); err != nil {
		d.bgp.Store(nil)
		_ = r.close()
		return fmt.Errorf("daemon: bgp: %w", err)
	}
	return nil
}

// quorumUp is a service's quorum as the health checks last reported it. Unknown is down (unlike
// VRRP tracking's serviceUp): a node announces a VIP only once its service's quorum was reported,
// which with non-alpha servers is at once, and with alpha after the first passing checks.
func (d *Daemon) quorumUp(name string) bool {
	v, ok := d.svcUp.Load(name)
	return ok && v.(bool)
}

// reloadBGP applies a reloaded config: the bgp block may appear, change or go.
func (d *Daemon) reloadBGP(cfg *config.Config) error {
	r := d.bgp.Load()
	switch {
	case r == nil && cfg.BGP != nil:
		return d.startBGP(context.Background(), cfg)
	case r != nil && cfg.BGP == nil:
		d.bgp.Store(nil)
		return r.close()
	case r != nil:
		return r.apply(context.Background(), cfg)
	}
	return nil
}

// drainBGP withdraws every route and waits the drain time, so that the routers move new flows
// to the other nodes before the listeners close. In-flight connections are drained after.
func (d *Daemon) drainBGP() {
	if r := d.bgp.Load(); r != nil {
		time.Sleep(r.withdrawAll()) // the drain time: the routers converge meanwhile
	}
}

func (d *Daemon) closeBGP() error {
	if r := d.bgp.Swap(nil); r != nil {
		return r.close()
	}
	return nil
}

func (d *Daemon) bgpSync() {
	if r := d.bgp.Load(); r != nil {
		r.sync()
	}
}

// BGP implements admin.BGPSource.
func (s source) BGP() (admin.BGP, bool) {
	r := s.d.bgp.Load()
	if r == nil {
		return admin.BGP{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, iface, lastErr, stopping := r.status(ctx)
	v := admin.BGP{RouterID: st.RouterID.String(), LocalAS: st.LocalAS, Interface: iface, Stopping: stopping, LastError: lastErr,
		Sessions: []admin.BGPSession{}, Announced: []admin.BGPAnnounce{}}
	for _, x := range st.Sessions {
		v.Sessions = append(v.Sessions, admin.BGPSession{Neighbor: x.Neighbor.String(), RemoteAS: x.RemoteAS, State: x.State, Up: x.Up,
			Since: x.Since, Flaps: x.Flaps, Received: x.Accepted, LastError: x.LastError, LastErrorAt: x.LastErrorAt})
	}
	for _, a := range st.Announced {
		x := admin.BGPAnnounce{Prefix: a.Prefix.String(), Prepend: a.Prepend}
		for _, c := range a.Communities {
			x.Communities = append(x.Communities, bgp.Community(c))
		}
		if a.HasMED {
			med := a.MED
			x.MED = &med
		}
		v.Announced = append(v.Announced, x)
	}
	return v, true
}

// SetServiceDrain implements admin.ServiceDrainer.
func (c controller) SetServiceDrain(service string, drain bool) error {
	r := c.d.bgp.Load()
	if r == nil {
		return errors.New("BGP is not configured (no bgp block)")
	}
	return r.setDrained(service, drain)
}
