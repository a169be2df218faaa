package daemon

import (
	"sync"
	"time"

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
// not; both when no instance is named. Transitions come from the VRRP router's goroutines and
// only record the wanted state; one worker goroutine makes the netlink calls, so that a kernel
// call that blocks (stopping a sync thread has been seen to hang in a VM) never stalls VRRP.
type syncFollower struct {
	log *zap.Logger
	t   syncDaemons

	mu       sync.Mutex
	cfg      *config.LVSSync
	master   bool // the named instance is MASTER
	stopping bool // stop was called: the worker ends after its next round

	reqs    chan chan struct{}                 // kicks for the worker; a non-nil channel is closed after the round
	running map[ipvs.SyncState]ipvs.SyncDaemon // the worker's
}

func newSyncFollower(log *zap.Logger, t syncDaemons) *syncFollower {
	f := &syncFollower{log: log, t: t, reqs: make(chan chan struct{}, 16), running: map[ipvs.SyncState]ipvs.SyncDaemon{}}
	go f.work()
	return f
}

func (f *syncFollower) work() {
	for done := range f.reqs {
		stopping := f.reconcile()
		if done != nil {
			close(done)
		}
		if stopping {
			return // this round stopped everything; later kicks stay in the buffer, unread
		}
	}
}

// kick asks the worker for a round without waiting; a full queue already holds one.
func (f *syncFollower) kick() {
	select {
	case f.reqs <- nil:
	default:
	}
}

// wait asks for a round and waits for it, at most timeout; false when it did not finish.
func (f *syncFollower) wait(timeout time.Duration) bool {
	done := make(chan struct{})
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case f.reqs <- done:
	case <-t.C:
		return false
	}
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// apply takes the (possibly changed) lvs_sync_daemon setting; nil stops the daemons. isMaster
// tells the named instance's state now; it is used when the instance is not the one followed
// so far (the hooks keep the state of the followed one). isMaster is called before f.mu is
// taken: the router calls transition with its own lock held, so f.mu must never wait for the
// router's.
func (f *syncFollower) apply(cfg *config.LVSSync, isMaster func(instance string) bool) {
	masterNow := cfg != nil && cfg.Instance != "" && isMaster(cfg.Instance)
	f.mu.Lock()
	if cfg != nil {
		c := *cfg
		if f.cfg == nil || f.cfg.Instance != c.Instance {
			f.master = masterNow
		}
		cfg = &c
	}
	f.cfg = cfg
	f.mu.Unlock()
	f.kick()
}

// transition is the VRRP router's hook: it records the state and returns at once.
func (f *syncFollower) transition(instance string, master bool) {
	f.mu.Lock()
	changed := f.cfg != nil && f.cfg.Instance == instance && f.master != master
	if changed {
		f.master = master
	}
	f.mu.Unlock()
	if changed {
		f.kick()
	}
}

// stop stops every daemon this follower started, waiting at most timeout for the kernel.
func (f *syncFollower) stop(timeout time.Duration) {
	f.mu.Lock()
	f.cfg, f.stopping = nil, true
	f.mu.Unlock()
	if !f.wait(timeout) {
		f.log.Warn("lvs_sync_daemon: the kernel did not stop the sync daemons in time", zap.Duration("waited", timeout))
	}
}

// wanted is the set of daemons that should run now, and whether stop was called.
func (f *syncFollower) wanted() (map[ipvs.SyncState]ipvs.SyncDaemon, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	want := map[ipvs.SyncState]ipvs.SyncDaemon{}
	if f.cfg == nil {
		return want, f.stopping
	}
	d := ipvs.SyncDaemon{Interface: f.cfg.Interface, SyncID: uint32(f.cfg.SyncID)}
	for _, st := range []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup} {
		if f.cfg.Instance == "" || (st == ipvs.SyncMaster) == f.master {
			d.State = st
			want[st] = d
		}
	}
	return want, f.stopping
}

// reconcile (the worker's) stops what should not run (or runs with old settings), then starts
// what should: the master daemon stops before the backup one starts, and the other way round.
// A daemon that failed to start is tried again on the next round.
func (f *syncFollower) reconcile() bool {
	want, stopping := f.wanted()
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
	return stopping
}

// vrrpConfig is the router's config for cfg, with the daemon's transition hook.
func (d *Daemon) vrrpConfig(cfg *config.Config) vrrp.Config {
	vc := vrrpConfig(cfg)
	vc.OnTransition = d.onVRRPTransition
	return vc
}

func (d *Daemon) onVRRPTransition(instance string, to vrrp.State) {
	d.alertVRRP(instance, to)
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
