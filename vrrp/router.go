package vrrp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// deps are the router's outside world; tests replace them.
type deps struct {
	open      func(cfg InstanceConfig, exclude map[netip.Addr]bool) (Conn, error)
	addresser Addresser
	// watchLinks subscribes to link changes; nil: no link tracking.
	watchLinks func(done <-chan struct{}, update func(name string, up bool)) error
	// watchAddrs follows the node's addresses (the present ones returned, changes to update);
	// nil: configured advert sources are not checked.
	watchAddrs func(done <-chan struct{}, update func(ifAddr, bool)) ([]ifAddr, error)
	// localAddrs lists the node's own addresses; nil: only each Conn's source.
	localAddrs func() map[netip.Addr]bool
	// procRoot is where track_process looks for processes ("": /proc).
	procRoot string
	// vmac creates and removes VMAC interfaces (use_vmac); nil: use_vmac is refused.
	vmac vmacOps
}

func realDeps() deps {
	return deps{
		open: func(cfg InstanceConfig, exclude map[netip.Addr]bool) (Conn, error) {
			src := cfg.McastSrc
			if len(cfg.UnicastPeers) > 0 {
				src = cfg.UnicastSrc
			}
			if !src.IsValid() && sockIf(cfg) != cfg.Interface {
				var err error
				if src, err = vmacSource(cfg, exclude); err != nil {
					return nil, err
				}
			}
			return openConn(sockIf(cfg), cfg.family(), src, len(cfg.UnicastPeers) == 0, exclude)
		},
		vmac:       newNetVMAC(),
		addresser:  netAddresser{},
		watchLinks: watchLinks,
		watchAddrs: watchAddrs,
		localAddrs: localAddrs,
	}
}

// localAddrs returns the addresses of every interface of this network
// namespace.
func localAddrs() map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return m
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ad, ok := netip.AddrFromSlice(ipn.IP); ok {
				m[ad.Unmap()] = true
			}
		}
	}
	return m
}

// Router runs the VRRP instances of one node.
type Router struct {
	log    *zap.Logger
	deps   deps
	notify *notifier

	mu        sync.Mutex
	cfg       Config
	instances map[string]*instance         // by name
	cfgOf     map[*instance]InstanceConfig // the router's view of each instance's config
	scripts   map[string]*scriptRunner
	scriptOK  map[string]scriptResult
	fileVals  map[string]fileValue
	procVals  map[string]procValue
	procRoot  string
	fileDone  chan struct{}
	fileWG    sync.WaitGroup
	linkUp    map[string]bool
	groupOf   map[string]*SyncGroupConfig // member name → group
	ownFault  map[string]bool
	started   bool
	linkDone  chan struct{}
	linkWG    sync.WaitGroup
	addrs     map[ifAddr]bool // nil: not watched
}

type scriptResult struct {
	ok     bool
	reason string
}

// NewRouter validates cfg and prepares the instances; Start runs them.
func NewRouter(log *zap.Logger, cfg Config) (*Router, error) {
	return newRouter(log, cfg, realDeps())
}

func newRouter(log *zap.Logger, cfg Config, d deps) (*Router, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.NotifyTimeout <= 0 {
		cfg.NotifyTimeout = 30 * time.Second
	}
	r := &Router{
		log:       log.Named("vrrp"),
		deps:      d,
		cfg:       cfg,
		instances: map[string]*instance{},
		cfgOf:     map[*instance]InstanceConfig{},
		scripts:   map[string]*scriptRunner{},
		scriptOK:  map[string]scriptResult{},
		fileVals:  map[string]fileValue{},
		procVals:  map[string]procValue{},
		procRoot:  cmp.Or(d.procRoot, "/proc"),
		linkUp:    map[string]bool{},
		ownFault:  map[string]bool{},
	}
	r.notify = &notifier{log: r.log, timeout: cfg.NotifyTimeout}
	return r, nil
}

func vipSet(cfg InstanceConfig) map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	for _, v := range append(slices.Clone(cfg.VIPs), cfg.Excluded...) {
		m[v.Prefix.Addr()] = true
	}
	return m
}

// Start opens the sockets, removes stale VIPs and runs the instances, the
// scripts and the link watcher. The instances run until Stop; ctx only
// bounds the start.
func (r *Router) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return errors.New("vrrp: start: already started")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vrrp: start: %w", err)
	}
	// A Router may be started again after Stop: forget the old instances.
	r.instances = map[string]*instance{}
	r.cfgOf = map[*instance]InstanceConfig{}
	r.ownFault = map[string]bool{}
	r.scriptOK = map[string]scriptResult{}
	var opened []*instance
	for _, ic := range r.cfg.Instances {
		in, err := r.newInstance(ic)
		if err != nil {
			for _, o := range opened {
				o.conn.Close()
				if o.stopped != nil {
					o.stopped()
				}
			}
			return err
		}
		opened = append(opened, in)
	}
	r.started = true
	r.readFilesLocked(nil)
	r.procVals = map[string]procValue{}
	r.scanProcsLocked(time.Now(), true)
	r.fileDone = make(chan struct{})
	r.fileWG.Add(1)
	go r.watchTracked(r.fileDone, cmp.Or(r.cfg.TrackPoll, defaultTrackPoll))
	r.rebuildGroups()
	if r.deps.watchLinks != nil || r.deps.watchAddrs != nil {
		r.linkDone = make(chan struct{})
	}
	if r.deps.watchLinks != nil {
		if err := r.deps.watchLinks(r.linkDone, r.linkChanged); err != nil {
			r.log.Warn("link tracking unavailable", zap.Error(err))
		}
	}
	r.addrs = nil
	if r.deps.watchAddrs != nil {
		now, err := r.deps.watchAddrs(r.linkDone, r.addrChanged)
		if err != nil {
			r.log.Warn("address tracking unavailable: unicast_src_ip / mcast_src_ip not checked", zap.Error(err))
		} else {
			r.addrs = map[ifAddr]bool{}
			for _, a := range now {
				r.addrs[a] = true
			}
		}
	}
	for i, in := range opened {
		r.instances[in.cfg.Name] = in
		r.cfgOf[in] = r.cfg.Instances[i]
		r.pushTrackers(in)
		go in.run()
	}
	old, err := r.startScripts(r.cfg)
	for _, sr := range old {
		go sr.stop()
	}
	return err
}

func (r *Router) newInstance(ic InstanceConfig) (*instance, error) {
	var dropVMAC func()
	if ic.UseVMAC {
		if r.deps.vmac == nil {
			return nil, fmt.Errorf("vrrp: instance %s: use_vmac not available", ic.Name)
		}
		if err := r.deps.vmac.create(ic); err != nil {
			return nil, fmt.Errorf("vrrp: instance %s: %w", ic.Name, err)
		}
		dropVMAC = func() {
			if err := r.deps.vmac.remove(ic); err != nil {
				r.log.Warn("removing the VMAC interface failed", zap.String("instance", ic.Name), zap.Error(err))
			}
		}
	}
	conn, err := r.deps.open(ic, vipSet(withDefaults(ic)))
	if err != nil {
		if dropVMAC != nil {
			dropVMAC()
		}
		return nil, fmt.Errorf("vrrp: instance %s: %w", ic.Name, err)
	}
	in := newInstance(r.log, ic, conn, r.deps.addresser, r.notify, instanceHooks{
		transition:  r.onTransition,
		ownFault:    r.onOwnFault,
		canGoMaster: r.canGoMaster,
		localAddrs:  r.deps.localAddrs,
		siblingVRID: r.siblingVRID,
	})
	in.stopped = dropVMAC
	return in, nil
}

// startScripts starts new or changed script runners; it returns the runners
// to stop, which the caller stops without holding r.mu (they report under it).
func (r *Router) startScripts(cfg Config) ([]*scriptRunner, error) {
	var old []*scriptRunner
	var errs []error
	for _, sc := range cfg.Scripts {
		if o, ok := r.scripts[sc.Name]; ok && reflect.DeepEqual(o.cfg, withScriptDefaults(sc)) {
			continue
		}
		if o, ok := r.scripts[sc.Name]; ok {
			old = append(old, o)
			delete(r.scripts, sc.Name)
			delete(r.scriptOK, sc.Name)
		}
		sr, err := newScriptRunner(r.log, sc, cfg.ScriptUser, cfg.ScriptSecurity, r.scriptChanged)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.scripts[sc.Name] = sr
		sr.start()
	}
	for name, sr := range r.scripts {
		if !slices.ContainsFunc(cfg.Scripts, func(s ScriptConfig) bool { return s.Name == name }) {
			old = append(old, sr)
			delete(r.scripts, name)
			delete(r.scriptOK, name)
		}
	}
	return old, errors.Join(errs...)
}

func withScriptDefaults(sc ScriptConfig) ScriptConfig {
	sr, err := newScriptRunner(zap.NewNop(), sc, "", false, nil)
	if err != nil {
		return sc
	}
	return sr.cfg
}

func (r *Router) scriptByName(name string) (ScriptConfig, bool) {
	for _, s := range r.cfg.Scripts {
		if s.Name == name {
			return s, true
		}
	}
	return ScriptConfig{}, false
}

// scriptChanged is called by script runners.
func (r *Router) scriptChanged(name string, ok bool, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, running := r.scripts[name]; !running {
		return
	}
	r.scriptOK[name] = scriptResult{ok, reason}
	for _, in := range r.instances {
		r.pushTrackers(in)
	}
}

// scriptState applies keepalived's weight rule: a negative weight applies
// while failing, a positive one while succeeding, weight 0 → FAULT on failure.
// reverse turns it around, as keepalived's table says: a positive weight is
// subtracted while succeeding, a negative one added while failing, and weight
// 0 means FAULT while succeeding.
func scriptState(name string, weight int, reverse bool, res scriptResult) TrackerState {
	if reverse {
		st := scriptState(name, -weight, false, scriptResult{ok: !res.ok, reason: res.reason})
		st.Reason += " (reverse)"
		return st
	}
	ts := TrackerState{Reason: fmt.Sprintf("script %s %s", name, res.reason)}
	switch {
	case weight == 0 && !res.ok:
		ts.Fault = true
		ts.Reason = fmt.Sprintf("script %s failed (%s)", name, res.reason)
	case weight < 0 && !res.ok:
		ts.Weight = weight
		ts.Reason = fmt.Sprintf("script %s failed (weight %d)", name, weight)
	case weight > 0 && res.ok:
		ts.Weight = weight
		ts.Reason = fmt.Sprintf("script %s ok (weight +%d)", name, weight)
	case res.ok:
		ts.Reason = fmt.Sprintf("script %s ok", name)
	default:
		ts.Reason = fmt.Sprintf("script %s failed", name)
	}
	return ts
}

func ifState(name string, weight int, up bool) TrackerState {
	switch {
	case weight == 0 && !up:
		return TrackerState{Fault: true, Reason: fmt.Sprintf("interface %s down", name)}
	case weight < 0 && !up:
		return TrackerState{Weight: weight, Reason: fmt.Sprintf("interface %s down (weight %d)", name, weight)}
	case weight > 0 && up:
		return TrackerState{Weight: weight, Reason: fmt.Sprintf("interface %s up (weight +%d)", name, weight)}
	case up:
		return TrackerState{Reason: fmt.Sprintf("interface %s up", name)}
	}
	return TrackerState{Reason: fmt.Sprintf("interface %s down", name)}
}

// pushTrackers sets the script and interface contributions of in from the
// router's current knowledge. r.mu held.
func (r *Router) pushTrackers(in *instance) {
	cfg := withDefaults(r.cfgOf[in])
	want := map[string]bool{}
	for _, ref := range cfg.TrackScripts {
		sc, ok := r.scriptByName(ref.Name)
		if !ok {
			continue
		}
		res, known := r.scriptOK[ref.Name]
		if !known {
			res = scriptResult{ok: !sc.InitFail, reason: "not run yet"}
		}
		w, rev := sc.Weight, sc.Reverse
		if ref.WeightSet {
			w, rev = ref.Weight, ref.Reverse
		}
		name := trackScriptPrefix + ref.Name
		want[name] = true
		in.setTracker(name, scriptState(ref.Name, w, rev, res))
	}
	ifs := slices.Clone(cfg.TrackInterfaces)
	if !cfg.DontTrackPrimary && !slices.ContainsFunc(ifs, func(t TrackIf) bool { return t.Name == cfg.Interface }) {
		ifs = append(ifs, TrackIf{Name: cfg.Interface})
	}
	r.pushFileTrackers(in, cfg, want)
	r.pushProcTrackers(in, cfg, want)
	r.pushSrcTracker(in, cfg, want)
	for _, ti := range ifs {
		up, known := r.linkUp[ti.Name]
		if !known {
			up = true
		}
		name := trackIfPrefix + ti.Name
		want[name] = true
		in.setTracker(name, ifState(ti.Name, ti.Weight, up))
	}
	for _, name := range in.trackerNames() {
		if (hasPrefix(name, trackScriptPrefix) || hasPrefix(name, trackIfPrefix) || hasPrefix(name, trackFilePrefix) ||
			hasPrefix(name, trackProcPrefix) || hasPrefix(name, trackAddrPrefix)) && !want[name] {
			in.removeTracker(name)
		}
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

func (in *instance) configSnapshot() InstanceConfig {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cfg
}

func (in *instance) trackerNames() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var n []string
	for k := range in.trackers {
		n = append(n, k)
	}
	return n
}

func (r *Router) linkChanged(name string, up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.linkUp[name]; ok && old == up {
		return
	}
	r.linkUp[name] = up
	for _, in := range r.instances {
		r.pushTrackers(in)
	}
}

// watchLinks follows link state with netlink.LinkSubscribe.
func watchLinks(done <-chan struct{}, update func(string, bool)) error {
	ch := make(chan netlink.LinkUpdate, 64)
	errc := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("vrrp: link subscribe: %w", err)
	}
	go func() {
		for u := range ch {
			a := u.Attrs()
			up := a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_RUNNING != 0
			if u.Header.Type == unix.RTM_DELLINK {
				up = false
			}
			update(a.Name, up)
		}
	}()
	return nil
}

func (r *Router) rebuildGroups() {
	r.groupOf = map[string]*SyncGroupConfig{}
	for i := range r.cfg.SyncGroups {
		g := &r.cfg.SyncGroups[i]
		for _, m := range g.Members {
			r.groupOf[m] = g
		}
	}
}

// onTransition implements vrrp_sync_group: members move together. It runs on
// the instance goroutine and only posts to the others.
func (r *Router) onTransition(in *instance, from, to State, cause string, forced bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := r.cfgOf[in].Name
	if r.cfg.OnTransition != nil {
		r.cfg.OnTransition(name, to)
	}
	g := r.groupOf[name]
	if g == nil {
		return
	}
	if !forced {
		c := fmt.Sprintf("sync group %s: %s became %v", g.Name, name, to)
		for _, m := range g.Members {
			o := r.instances[m]
			if m == name || o == nil {
				continue
			}
			o.mu.Lock()
			holds := time.Now().Before(o.holdUntil)
			o.mu.Unlock()
			switch {
			case to == StateMaster && !holds:
				// A member that still hears a master it must not preempt is
				// not forced (that would make two masters); it vetoes
				// instead through canGoMaster.
				o.post(ctrlMsg{kind: msgForce, ev: Event{Kind: EvForceMaster, Cause: c}})
			case to == StateBackup && from == StateMaster:
				o.post(ctrlMsg{kind: msgForce, ev: Event{Kind: EvForceBackup, Cause: c}})
			}
		}
	}
	var script string
	switch to {
	case StateMaster:
		script = g.NotifyMaster
	case StateBackup:
		script = g.NotifyBackup
	case StateFault:
		script = g.NotifyFault
	case StateStop:
		script = g.NotifyStop
	}
	// The group is notified once, by its first member (keepalived notifies
	// a group when the group's state changes).
	if len(g.Members) > 0 && g.Members[0] == name {
		if script != "" {
			r.notify.run(script)
		}
		if g.Notify != "" {
			r.notify.run(g.Notify, "GROUP", g.Name, to.String(), fmt.Sprint(in.m.Priority()))
		}
	}
}

// siblingVRID reports whether another of our instances runs vrid on in's interface and family.
func (r *Router) siblingVRID(in *instance, vrid uint8) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	me, ok := r.cfgOf[in]
	if !ok {
		return false
	}
	for o, c := range r.cfgOf {
		if o != in && c.VRID == vrid && c.Interface == me.Interface && c.family() == me.family() {
			return true
		}
	}
	return false
}

// canGoMaster keeps a sync group together: a member may take over only while
// no other member is faulty or still hears a master it must not preempt.
func (r *Router) canGoMaster(in *instance) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := r.cfgOf[in].Name
	g := r.groupOf[name]
	if g == nil {
		return true
	}
	now := time.Now()
	for _, m := range g.Members {
		o := r.instances[m]
		if m == name || o == nil {
			continue
		}
		o.mu.Lock()
		hold, st := o.holdUntil, o.status.State
		o.mu.Unlock()
		if st == StateFault || now.Before(hold) {
			return false
		}
	}
	return true
}

// onOwnFault makes a sync group faulty while any member is faulty on its own.
func (r *Router) onOwnFault(in *instance, fault bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := r.cfgOf[in].Name
	r.ownFault[name] = fault
	g := r.groupOf[name]
	if g == nil {
		return
	}
	r.syncGroupFaults(g)
}

func (r *Router) syncGroupFaults(g *SyncGroupConfig) {
	for _, m := range g.Members {
		o := r.instances[m]
		if o == nil {
			continue
		}
		var faulty []string
		for _, other := range g.Members {
			if other != m && r.ownFault[other] {
				faulty = append(faulty, other)
			}
		}
		tn := trackSyncPrefix + g.Name
		if len(faulty) > 0 {
			o.setTracker(tn, TrackerState{Fault: true, Reason: fmt.Sprintf("sync group %s: %v in FAULT", g.Name, faulty)})
		} else {
			o.removeTracker(tn)
		}
	}
}

// SetTracker sets an external contribution (e.g. the proxy's virtual server
// state) on an instance. Unknown instances are ignored.
func (r *Router) SetTracker(instance, name string, t TrackerState) {
	r.mu.Lock()
	in := r.instances[instance]
	r.mu.Unlock()
	if in != nil {
		in.setTracker(name, t)
	}
}

// Apply reloads the configuration. An instance whose (Interface, VRID,
// Family) is unchanged keeps its state and VIPs; if its socket settings
// (version, unicast/multicast, source) changed it is restarted. Others are
// stopped or started.
func (r *Router) Apply(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.NotifyTimeout <= 0 {
		cfg.NotifyTimeout = 30 * time.Second
	}
	r.mu.Lock()
	if !r.started {
		r.cfg = cfg
		r.mu.Unlock()
		return nil
	}
	byKey := map[instKey]*instance{}
	for _, in := range r.instances {
		byKey[r.cfgOf[in].key()] = in
	}
	var stop []*instance
	keep := map[*instance]InstanceConfig{}
	var start []InstanceConfig
	for _, ic := range cfg.Instances {
		in, ok := byKey[ic.key()]
		if ok && sameSocket(r.cfgOf[in], ic) {
			keep[in] = ic
			continue
		}
		if ok {
			stop = append(stop, in)
			delete(byKey, ic.key())
		}
		start = append(start, ic)
	}
	for _, in := range r.instances {
		if _, ok := keep[in]; !ok && !slices.Contains(stop, in) {
			stop = append(stop, in)
		}
	}
	r.mu.Unlock()
	for _, in := range stop {
		in.post(ctrlMsg{kind: msgStop})
		<-in.done
	}
	var errs []error
	r.mu.Lock()
	defer r.mu.Unlock()
	oldFiles := r.cfg.Files
	r.cfg = cfg
	r.readFilesLocked(oldFiles)
	r.scanProcsLocked(time.Now(), true)
	r.instances = map[string]*instance{}
	r.cfgOf = map[*instance]InstanceConfig{}
	for name := range r.ownFault {
		if !slices.ContainsFunc(cfg.Instances, func(ic InstanceConfig) bool { return ic.Name == name }) {
			delete(r.ownFault, name)
		}
	}
	for in, ic := range keep {
		r.instances[ic.Name] = in
		r.cfgOf[in] = ic
		in.post(ctrlMsg{kind: msgReconfig, cfg: ic})
	}
	r.rebuildGroups()
	for _, ic := range start {
		in, err := r.newInstance(ic)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.instances[ic.Name] = in
		r.cfgOf[in] = ic
		r.pushTrackers(in)
		go in.run()
	}
	old, err := r.startScripts(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	for _, sr := range old {
		go sr.stop()
	}
	for _, in := range r.instances {
		r.pushTrackers(in)
	}
	for i := range r.cfg.SyncGroups {
		r.syncGroupFaults(&r.cfg.SyncGroups[i])
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vrrp: apply: %w", err)
	}
	return nil
}

func sameSocket(a, b InstanceConfig) bool {
	a, b = withDefaults(a), withDefaults(b)
	return a.Version == b.Version && a.UnicastSrc == b.UnicastSrc && a.McastSrc == b.McastSrc &&
		(len(a.UnicastPeers) == 0) == (len(b.UnicastPeers) == 0) &&
		a.UseVMAC == b.UseVMAC && (!a.UseVMAC || vmacName(a) == vmacName(b) && vmacXmitBase(a) == vmacXmitBase(b))
}

// Stop stops every instance: a master sends priority 0, VIPs are removed,
// notify_stop runs. It waits for notify scripts until ctx is done.
func (r *Router) Stop(ctx context.Context) error {
	r.mu.Lock()
	ins := make([]*instance, 0, len(r.instances))
	for _, in := range r.instances {
		ins = append(ins, in)
	}
	scripts := r.scripts
	r.scripts = map[string]*scriptRunner{}
	started := r.started
	r.started = false
	fileDone := r.fileDone
	r.fileDone = nil
	r.mu.Unlock()
	if !started {
		return nil
	}
	close(fileDone)
	r.fileWG.Wait()
	for _, sr := range scripts {
		sr.stop()
	}
	for _, in := range ins {
		in.post(ctrlMsg{kind: msgStop})
	}
	for _, in := range ins {
		select {
		case <-in.done:
		case <-ctx.Done():
			return fmt.Errorf("vrrp: stop: %w", ctx.Err())
		}
	}
	if r.linkDone != nil {
		close(r.linkDone)
		r.linkDone = nil
	}
	waited := make(chan struct{})
	go func() { r.notify.wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		return fmt.Errorf("vrrp: stop: waiting for notify scripts: %w", ctx.Err())
	}
	return nil
}

// Status returns a snapshot of every instance, sorted by name.
func (r *Router) Status() []InstanceStatus {
	r.mu.Lock()
	ins := make([]*instance, 0, len(r.instances))
	for _, in := range r.instances {
		ins = append(ins, in)
	}
	r.mu.Unlock()
	out := make([]InstanceStatus, 0, len(ins))
	for _, in := range ins {
		out = append(out, in.snapshot())
	}
	slices.SortFunc(out, func(a, b InstanceStatus) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}
