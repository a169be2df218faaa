package daemon

import (
	"sync"

	"go.uber.org/zap"

	"halb/config"
	"halb/ipvs"
	"halb/vrrp"
)

// syncDaemons is the part of the kernel's IPVS table that lvs_sync_daemon drives.
type syncDaemons interface {
	StartSyncDaemon(ipvs.SyncDaemon) error
	StopSyncDaemon(ipvs.SyncState) error
}

// syncFollower runs the kernel's connection-sync daemons as keepalived's lvs_sync_daemon does:
// the master daemon where the named VRRP instance is MASTER and the backup daemon where it is
// not; both when no instance is named. Transitions come from the VRRP router's goroutines;
// netlink calls are made under mu (they are quick and never call back).
type syncFollower struct {
	log *zap.Logger
	t   syncDaemons

	mu      sync.Mutex
	cfg     *config.LVSSync
	master  bool // the named instance is MASTER
	running map[ipvs.SyncState]ipvs.SyncDaemon
}

func newSyncFollower(log *zap.Logger, t syncDaemons) *syncFollower {
	return &syncFollower{log: log, t: t, running: map[ipvs.SyncState]ipvs.SyncDaemon{}}
}

// apply takes the (possibly changed) lvs_sync_daemon setting; nil stops the daemons. isMaster
// tells the named instance's state now; it is used when the instance is not the one followed
// so far (the hooks keep the state of the followed one).
//
// isMaster is called before f.mu is taken: the router calls transition with its own lock held,
// so f.mu must never wait for the router's.
func (f *syncFollower) apply(cfg *config.LVSSync, isMaster func(instance string) bool) {
	masterNow := cfg != nil && cfg.Instance != "" && isMaster(cfg.Instance)
	f.mu.Lock()
	defer f.mu.Unlock()
	if cfg != nil {
		c := *cfg
		if f.cfg == nil || f.cfg.Instance != c.Instance {
			f.master = masterNow
		}
		cfg = &c
	}
	f.cfg = cfg
	f.reconcileLocked()
}

// transition is the VRRP router's hook.
func (f *syncFollower) transition(instance string, master bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cfg == nil || f.cfg.Instance != instance || f.master == master {
		return
	}
	f.master = master
	f.reconcileLocked()
}

// stop stops every daemon this follower started.
func (f *syncFollower) stop() {
	f.apply(nil, nil)
}

func (f *syncFollower) wanted() map[ipvs.SyncState]ipvs.SyncDaemon {
	want := map[ipvs.SyncState]ipvs.SyncDaemon{}
	if f.cfg == nil {
		return want
	}
	d := ipvs.SyncDaemon{Interface: f.cfg.Interface, SyncID: uint32(f.cfg.SyncID)}
	for _, st := range []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup} {
		if f.cfg.Instance == "" || (st == ipvs.SyncMaster) == f.master {
			d.State = st
			want[st] = d
		}
	}
	return want
}

// reconcileLocked stops what should not run (or runs with old settings), then starts what
// should. The master daemon stops before the backup one starts, and the other way round.
func (f *syncFollower) reconcileLocked() {
	want := f.wanted()
	for st, d := range f.running {
		if w, ok := want[st]; !ok || w != d {
			if err := f.t.StopSyncDaemon(st); err != nil {
				f.log.Warn("lvs_sync_daemon: stop", zap.Stringer("state", st), zap.Error(err))
			}
			delete(f.running, st)
		}
	}
	for st, d := range want {
		if _, ok := f.running[st]; ok {
			continue
		}
		if err := f.t.StartSyncDaemon(d); err != nil {
			f.log.Warn("lvs_sync_daemon: start", zap.Stringer("state", st), zap.String("interface", d.Interface), zap.Error(err))
			continue
		}
		f.log.Info("lvs_sync_daemon started", zap.Stringer("state", st), zap.String("interface", d.Interface), zap.Uint32("sync_id", d.SyncID))
		f.running[st] = d
	}
}

// vrrpConfig is the router's config for cfg, with the daemon's transition hook.
func (d *Daemon) vrrpConfig(cfg *config.Config) vrrp.Config {
	vc := vrrpConfig(cfg)
	vc.OnTransition = d.onVRRPTransition
	return vc
}

func (d *Daemon) onVRRPTransition(instance string, to vrrp.State) {
	if d.syncd != nil {
		d.syncd.transition(instance, to == vrrp.StateMaster)
	}
}

// applyLVSGlobals applies lvs_timeouts and lvs_sync_daemon to the kernel (at start, old is nil).
func (d *Daemon) applyLVSGlobals(old, cfg *config.Config) {
	g := cfg.Global
	if old == nil || old.Global.LVSTimeouts != g.LVSTimeouts {
		to := ipvs.Timeouts{TCP: g.LVSTimeouts.TCP, TCPFin: g.LVSTimeouts.TCPFin, UDP: g.LVSTimeouts.UDP}
		if err := d.lvsNL.SetTimeouts(to); err != nil {
			d.log.Warn("lvs_timeouts", zap.Error(err))
		}
	}
	if d.syncd == nil {
		d.syncd = newSyncFollower(d.log, d.lvsNL)
	}
	d.syncd.apply(g.LVSSync, d.instanceIsMaster)
}

// instanceIsMaster reports whether the VRRP instance name is MASTER now.
func (d *Daemon) instanceIsMaster(name string) bool {
	if d.router == nil {
		return false
	}
	for _, st := range d.router.Status() {
		if st.Name == name {
			return st.State == vrrp.StateMaster
		}
	}
	return false
}
