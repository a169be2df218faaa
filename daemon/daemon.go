// Package daemon turns a config.Config into running parts (proxy, health checks, VRRP, IPVS,
// admin), reloads them in place, and stops them gracefully.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"halb/admin"
	"halb/config"
	"halb/health"
	"halb/ipvs"
	"halb/proxy"
	"halb/proxy/balance"
	"halb/vrrp"
)

// Options say where the config comes from and what to override.
type Options struct {
	// ConfigPath is the config file; with Source set it only names it (and anchors includes).
	ConfigPath string
	// Source, when set, is parsed instead of reading ConfigPath (the embedded demo config).
	Source []byte
	// ConfigID selects keepalived's conditional lines ("@ID ..."); empty: the host name's first label.
	ConfigID string
	Log      *zap.Logger
	// Level is the logger's level, changed by log_level and `halb ctl set loglevel`.
	Level zap.AtomicLevel
	// AdminSocket and StatsListen override global_defs when set ("-" turns the socket off).
	AdminSocket, StatsListen string
	// Signals, when set, makes Run handle SIGHUP (reload) and SIGTERM/SIGINT (graceful stop).
	Signals bool
	// StateDir keeps state across restarts (the IPVS services halb created); default /run/halb.
	StateDir string
}

// Daemon is a running halb.
type Daemon struct {
	log   *zap.Logger
	level zap.AtomicLevel
	opts  Options

	tickets  ticketRotation // TLS session-ticket keys (tls.go)
	reloadMu sync.Mutex     // serialises reloads and admin writes
	mu       sync.Mutex     // guards gen against the health callbacks
	gen      atomic.Pointer[generation]
	svcUp    sync.Map // service name -> bool (quorum)

	proxy  *proxy.Server
	udp    *proxy.UDPServer // protocol UDP services (daemon/udp.go)
	alerts *alerter         // smtp_alert mails (daemon/alerts.go)
	checks *health.Scheduler
	router *vrrp.Router
	lvs    *ipvs.Reconciler
	lvsTab ipvs.Table // the kernel's table, read for `halb ctl show ipvs`
	lvsNL  *ipvs.NetlinkTable
	syncd  *syncFollower // lvs_sync_daemon; nil without IPVS
	admin  *admin.Server
	bgp    atomic.Pointer[bgpRunner] // bgp.go; nil without a bgp block

	started    time.Time
	ready      chan struct{} // closed by Run once every part has started
	lastReload atomic.Pointer[admin.Reload]
	stopOnce   sync.Once
}

// ConfigError is a refused config: every error diagnostic, with file:line.
type ConfigError struct{ Diags []config.Diagnostic }

func (e *ConfigError) Error() string {
	var b strings.Builder
	n := 0
	for _, d := range e.Diags {
		if d.Severity == config.Error {
			if n > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(d.String())
			n++
		}
	}
	return b.String()
}

func (d *Daemon) load() (*config.Config, []config.Diagnostic, error) {
	var (
		cfg   *config.Config
		diags []config.Diagnostic
		err   error
	)
	o := config.Options{ConfigID: d.opts.ConfigID}
	if d.opts.Source != nil {
		cfg, diags, err = config.ParseWith(d.opts.ConfigPath, d.opts.Source, o)
	} else {
		cfg, diags, err = config.LoadWith(d.opts.ConfigPath, o)
	}
	if err != nil {
		if hasErrorDiag(diags) {
			return nil, diags, &ConfigError{Diags: diags}
		}
		return nil, diags, err
	}
	if need := cfg.NeedsIPVS(); len(need) > 0 {
		if aerr := ipvs.Available(); aerr != nil {
			var names []string
			for _, vs := range need {
				names = append(names, fmt.Sprintf("virtual_server %s (lb_kind %s) at %s", vs.Name(), vs.LBKind, vs.Pos))
			}
			return nil, diags, fmt.Errorf("%s need the kernel's IPVS: %w; or add `use_proxy` to serve them through the userspace proxy",
				strings.Join(names, ", "), aerr)
		}
	}
	return cfg, diags, nil
}

func hasErrorDiag(ds []config.Diagnostic) bool {
	for _, d := range ds {
		if d.Severity == config.Error {
			return true
		}
	}
	return false
}

// New loads and validates the config and builds (but does not start) the daemon.
func New(o Options) (*Daemon, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	d := &Daemon{log: o.Log, level: o.Level, opts: o, started: time.Now(), ready: make(chan struct{})}
	cfg, diags, err := d.load()
	for _, w := range diags {
		if w.Severity == config.Warning {
			d.log.Warn("config", zap.String("diagnostic", w.String()))
		}
	}
	if err != nil {
		return nil, err
	}
	g, err := buildPools(cfg, nil)
	if err != nil {
		return nil, err
	}
	if err := buildL7(d.log, g, nil); err != nil {
		return nil, err
	}
	d.gen.Store(g)
	d.udp = proxy.NewUDPServer(d.log)
	d.alerts = newAlerter(d.log, func() *config.Config { return d.gen.Load().cfg })
	d.applyLogLevel(cfg)
	d.lastReload.Store(&admin.Reload{At: d.started, OK: true, Hash: cfg.Hash})
	return d, nil
}

func (d *Daemon) applyLogLevel(cfg *config.Config) {
	if d.level == (zap.AtomicLevel{}) {
		return
	}
	var l zapcore.Level
	if err := l.UnmarshalText([]byte(cfg.Global.LogLevel.String())); err == nil {
		d.level.SetLevel(l)
	}
}

// Ready is closed once Run has started every part (when systemd is told
// READY=1); what Run set up before is visible to whoever received from it.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Run starts every part, serves until ctx is done (or SIGTERM with Options.Signals), then stops
// gracefully: VRRP hands over (priority 0, VIPs removed), listeners close, connections drain.
func (d *Daemon) Run(ctx context.Context) error {
	g := d.gen.Load()
	cfg := g.cfg
	d.checks = health.NewScheduler(d.log, d.onHealth, health.SchedulerOptions{Script: scriptOptions(cfg), OnQuorum: d.onQuorum})
	d.proxy = proxy.NewServer(d.log, proxyGlobal(cfg))
	if err := d.proxy.Apply(proxySpecs(g, d.onPassive)); err != nil {
		return fmt.Errorf("daemon: start proxy: %w", err)
	}
	d.tickets.sync(g)
	if err := d.startUDP(g); err != nil {
		d.stopParts(context.Background())
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.alerts.run(runCtx)
	// IPVS first: the reconciler must know the services before health verdicts arrive.
	if len(cfg.NeedsIPVS()) > 0 {
		t, err := ipvs.OpenNetlink()
		if err != nil {
			d.stopParts(context.Background())
			return fmt.Errorf("daemon: ipvs: %w", err)
		}
		d.lvs, d.lvsTab, d.lvsNL = ipvs.NewReconciler(d.log, t), t, t
		d.lvs.Adopt(readOwned(d.ownedFile())...) // services a crashed run created
		d.applyLVSGlobals(nil, cfg)
		if err := d.lvs.SetDesired(ipvsServices(cfg)); err != nil {
			d.stopParts(context.Background())
			return fmt.Errorf("daemon: ipvs: %w", err)
		}
		go func() { _ = d.lvs.Run(runCtx, 5*time.Second) }()
		go d.saveOwned(runCtx)
	}
	// VRRP before the health checks: quorum changes (from the checks' goroutine) go to the router.
	if len(cfg.Instances) > 0 {
		r, err := vrrp.NewRouter(d.log, d.vrrpConfig(cfg))
		if err != nil {
			d.stopParts(context.Background())
			return fmt.Errorf("daemon: vrrp: %w", err)
		}
		d.router = r
		if err := r.Start(runCtx); err != nil {
			d.router = nil
			d.stopParts(context.Background())
			return fmt.Errorf("daemon: vrrp: %w", err)
		}
		d.pushAllTrackers()
	}
	targets, services := healthTargets(cfg, scriptOptions(cfg))
	d.mu.Lock()
	d.checks.Set(targets, services...)
	d.mu.Unlock()
	d.checks.Start(runCtx)
	if err := d.startBGP(runCtx, cfg); err != nil {
		d.stopParts(context.Background())
		return err
	}

	if err := d.startAdmin(runCtx, cfg); err != nil {
		d.stopParts(context.Background())
		return err
	}
	d.log.Info("halb running", zap.String("config", d.opts.ConfigPath), zap.String("summary", cfg.Summary().String()))
	_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyReady)
	close(d.ready)
	go d.watchdog(runCtx)

	var sigs chan os.Signal
	if d.opts.Signals {
		sigs = make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(sigs)
	}
	for {
		select {
		case <-ctx.Done():
			return d.Stop()
		case s := <-sigs:
			if s == syscall.SIGHUP {
				_ = d.Reload() // logged and recorded for `halb ctl show info`
				continue
			}
			d.log.Info("signal: graceful stop", zap.String("signal", s.String()))
			return d.Stop()
		}
	}
}

func (d *Daemon) startAdmin(ctx context.Context, cfg *config.Config) error {
	sock := cfg.Global.AdminSocket
	if d.opts.AdminSocket != "" {
		sock = d.opts.AdminSocket
	}
	if sock == "-" {
		sock = ""
	}
	stats := ""
	if cfg.Global.StatsListen.IsValid() {
		stats = cfg.Global.StatsListen.String()
	}
	if d.opts.StatsListen != "" {
		stats = d.opts.StatsListen
	}
	auth := ""
	if cfg.Global.StatsUser != "" {
		auth = cfg.Global.StatsUser + ":" + cfg.Global.StatsPassword
	}
	owner := cfg.Global.AdminSocketOwner
	if cfg.Global.AdminSocketGroup != "" {
		owner += ":" + cfg.Global.AdminSocketGroup
	}
	d.admin = admin.NewServer(d.log, source{d}, controller{d}, admin.Options{
		SocketPath: sock, Mode: os.FileMode(cfg.Global.AdminSocketMode), Owner: owner, StatsListen: stats, StatsAuth: auth,
	})
	if err := d.admin.Start(ctx); err != nil {
		return fmt.Errorf("daemon: admin: %w", err)
	}
	return nil
}

// StatsAddr is the bound address of the stats listener ("" when off).
func (d *Daemon) StatsAddr() string {
	if d.admin == nil || d.admin.StatsAddr() == nil {
		return ""
	}
	return d.admin.StatsAddr().String()
}

// ProxyAddr is the bound address of a proxy service (tests listen on port 0).
func (d *Daemon) ProxyAddr(name string) string {
	if a := d.proxy.Addr(name); a != nil {
		return a.String()
	}
	return ""
}

func (d *Daemon) watchdog(ctx context.Context) {
	iv, err := sdnotify.SdWatchdogEnabled(false)
	if err != nil || iv <= 0 {
		return
	}
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyWatchdog)
		}
	}
}

// Stop hands over VRRP (priority 0, VIPs removed), stops accepting, drains connections up to
// shutdown_timeout, then stops health checks, IPVS and the admin API. It is safe to call twice.
func (d *Daemon) Stop() error {
	var err error
	d.stopOnce.Do(func() {
		_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyStopping)
		timeout := d.gen.Load().cfg.Global.ShutdownTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		d.drainBGP() // withdraw, wait drain_time: new flows go to the other nodes
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		err = d.stopParts(ctx)
		d.log.Info("halb stopped", zap.Error(err))
	})
	return err
}

func (d *Daemon) stopParts(ctx context.Context) error {
	var errs []error
	d.tickets.stop()
	if d.router != nil {
		vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		errs = append(errs, d.router.Stop(vctx))
		cancel()
	}
	if d.proxy != nil {
		if err := d.proxy.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, err)
		}
	}
	if err := d.stopUDP(ctx); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, d.closeBGP())
	if d.checks != nil {
		d.checks.Stop()
	}
	if d.syncd != nil {
		d.syncd.stop(5 * time.Second)
	}
	if d.lvs != nil {
		err := d.lvs.RemoveAll()
		errs = append(errs, err)
		if err == nil {
			_ = os.Remove(d.ownedFile())
		}
	}
	if d.admin != nil {
		errs = append(errs, d.admin.Close())
	}
	return errors.Join(errs...)
}

// Reload parses and validates the config again. A refused file changes nothing and its errors
// are returned; a good one is applied in place: listeners whose address stays are kept, health
// state carries over for unchanged servers, VRRP instances with unchanged identity keep state.
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyReloading)
	defer func() { _, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyReady) }()
	rec := &admin.Reload{At: time.Now()}
	err := d.reload(rec)
	if err != nil {
		rec.Error = err.Error()
		d.log.Error("reload refused: running config kept", zap.Error(err))
	} else {
		rec.OK = true
		d.log.Info("reloaded", zap.String("hash", rec.Hash))
	}
	d.lastReload.Store(rec)
	return err
}

func (d *Daemon) reload(rec *admin.Reload) error {
	cfg, diags, err := d.load()
	for _, w := range diags {
		if w.Severity == config.Warning {
			d.log.Warn("config", zap.String("diagnostic", w.String()))
		}
	}
	if err != nil {
		return err
	}
	rec.Hash = cfg.Hash
	old := d.gen.Load()
	if (len(cfg.Instances) > 0) != (d.router != nil) {
		return errors.New("adding or removing all vrrp_instances needs a restart")
	}
	if len(cfg.NeedsIPVS()) > 0 && d.lvs == nil {
		return errors.New("the first IPVS service needs a restart")
	}
	g, err := buildPools(cfg, old)
	if err != nil {
		return err
	}
	if err := buildL7(d.log, g, old); err != nil {
		return err
	}
	if err := d.udp.Apply(udpSpecs(g)); err != nil {
		return err // nothing changed: Apply is all or nothing
	}
	if err := d.proxy.Apply(proxySpecs(g, d.onPassive)); err != nil {
		_ = d.udp.Apply(udpSpecs(old)) // back to the running config's UDP services
		return err
	}
	d.tickets.sync(g)
	d.proxy.SetGlobal(proxyGlobal(cfg))
	targets, services := healthTargets(cfg, scriptOptions(cfg))
	d.mu.Lock()
	d.gen.Store(g)
	d.checks.Set(targets, services...)
	d.syncPoolsLocked(g) // carried-over health state into pools built anew
	d.mu.Unlock()
	var errs []error
	if d.router != nil {
		errs = append(errs, d.router.Apply(d.vrrpConfig(cfg)))
		d.pushAllTrackers()
	}
	if d.lvs != nil {
		errs = append(errs, d.lvs.SetDesired(ipvsServices(cfg)))
		d.applyLVSGlobals(old.cfg, cfg)
	}
	errs = append(errs, d.reloadBGP(cfg))
	d.applyLogLevel(cfg)
	return errors.Join(errs...)
}

// syncPoolsLocked copies the scheduler's view of every target into the pools of g.
func (d *Daemon) syncPoolsLocked(g *generation) {
	for _, st := range d.checks.Status() {
		svc := g.refs[st.ID]
		if svc == nil {
			continue
		}
		be := st.Addr.String()
		for _, p := range svc.pools {
			_ = p.pool.SetUp(be, st.Up) // not every pool holds every backend
			_ = p.pool.SetWeight(be, st.Weight)
		}
	}
}

// onHealth applies a health verdict to the pools (and IPVS). It runs on the scheduler's
// dispatcher goroutine, in order.
func (d *Daemon) onHealth(tr health.Transition) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.gen.Load()
	svcName, be := tr.Service, tr.Addr.String()
	if svc := g.refs[tr.ID]; svc != nil && tr.Kind != health.KindRemoved {
		for _, p := range svc.pools {
			_ = p.pool.SetUp(be, tr.Up)
			_ = p.pool.SetWeight(be, tr.Weight)
		}
	}
	if d.lvs != nil && tr.Kind != health.KindRemoved {
		if vs := findVS(g.cfg, svcName); vs != nil && vs.Kind == config.VSAddr && tr.Addr.IsValid() {
			d.lvs.SetHealth(ipvsKey(vs), tr.Addr, tr.Up)
		}
	}
	d.alertChecker(tr)
	switch tr.Kind {
	case health.KindUp, health.KindDown:
		d.log.Info("real server "+tr.Kind.String(), zap.String("service", svcName), zap.String("backend", be),
			zap.String("reason", tr.Reason), zap.Int("weight", tr.Weight))
	case health.KindWeight:
		d.log.Info("real server weight", zap.String("service", svcName), zap.String("backend", be), zap.Int("weight", tr.Weight))
	}
}

// onPassive takes a backend out after PassiveFail consecutive connect failures on live traffic.
func (d *Daemon) onPassive(svc string, b *balance.Backend) {
	s := d.gen.Load().byName[svc]
	if s == nil { // the service left the config since the connection started
		return
	}
	d.checks.PassiveFail(targetID(svc, b.Name()), s.vs.PassiveFail)
}

// onQuorum feeds a service's quorum to the VRRP instances that track it.
func (d *Daemon) onQuorum(q health.QuorumChange) {
	d.svcUp.Store(q.Service, q.Up)
	d.log.Info("virtual server quorum", zap.String("service", q.Service), zap.Bool("up", q.Up), zap.Int("live_weight", q.LiveWeight))
	if d.router != nil {
		d.pushTrackers(d.gen.Load().cfg, q.Service, q.Up)
	}
	d.bgpSync()
}

func (d *Daemon) serviceUp(name string) bool {
	v, ok := d.svcUp.Load(name)
	return !ok || v.(bool)
}

func (d *Daemon) pushAllTrackers() {
	cfg := d.gen.Load().cfg
	for _, vs := range cfg.VirtualServers {
		d.pushTrackers(cfg, vs.Name(), d.serviceUp(vs.Name()))
	}
}

func (d *Daemon) pushTrackers(cfg *config.Config, svc string, up bool) {
	for _, in := range cfg.Instances {
		for _, t := range in.TrackVirtServers {
			if t.Addr.String() != svc {
				continue
			}
			ts := vrrp.TrackerState{Reason: "virtual server " + svc + " up"}
			if !up {
				ts.Reason = "virtual server " + svc + " lost quorum"
				if t.HasWeight && in.TrackMode != config.TrackFault {
					ts.Weight = t.Weight
				} else {
					ts.Fault = true
				}
			}
			d.router.SetTracker(in.Name, "vs "+svc, ts)
		}
	}
}

func findVS(cfg *config.Config, name string) *config.VirtualServer {
	for _, vs := range cfg.VirtualServers {
		if vs.Name() == name {
			return vs
		}
	}
	return nil
}
