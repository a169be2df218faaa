package vrrp

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// TrackerState is one contribution to an instance's priority: a tracked
// script, interface, sync group or an external tracker (the proxy's virtual
// servers). Weight is the amount currently applied; Fault puts the instance
// in FAULT.
type TrackerState struct {
	Weight int
	Fault  bool
	Reason string
}

// Contribution is a named TrackerState, as shown in Status.
type Contribution struct {
	Name   string
	Weight int
	Fault  bool
	Reason string
}

// Transition is a state change.
type Transition struct {
	At       time.Time
	From, To State
	Cause    string
}

// Counters of one instance.
type Counters struct {
	AdvertsSent     uint64
	AdvertsReceived uint64 // accepted adverts
	Dropped         map[DropReason]uint64
	Transitions     uint64
	DualMaster      uint64 // adverts from another master while master
	SendErrors      uint64
}

// InstanceStatus is a snapshot of one instance.
type InstanceStatus struct {
	Name              string
	Interface         string
	VRID              uint8
	Version, Family   int
	State             State
	Priority          uint8 // configured
	EffectivePriority uint8
	Contributions     []Contribution
	MasterAddr        netip.Addr // the current master (ourselves when master)
	MasterPriority    uint8
	LastTransition    Transition
	Counters          Counters
}

const (
	trackScriptPrefix = "script "
	trackIfPrefix     = "interface "
	trackSyncPrefix   = "sync group "
)

type msgKind uint8

const (
	msgRecompute msgKind = iota
	msgForce
	msgReconfig
	msgStop
)

type ctrlMsg struct {
	kind msgKind
	ev   Event
	cfg  InstanceConfig
}

// instance is the shell around one Machine.
type instance struct {
	log    *zap.Logger
	conn   Conn
	addr   Addresser
	notify *notifier
	hooks  instanceHooks

	cfg  InstanceConfig // loop goroutine only
	m    *Machine       // loop goroutine only
	auth [8]byte

	mu       sync.Mutex
	trackers map[string]TrackerState
	msgs     []ctrlMsg
	status   InstanceStatus
	signal   chan struct{}
	done     chan struct{}

	stopped      func() // after the instance stopped (removes its VMAC interface)
	lastFault    bool
	lastOwnFault bool
	holdUntil    time.Time           // Machine.HoldUntil, under mu, for the sync group
	local        map[netip.Addr]bool // this node's addresses: adverts from them are our own
}

type instanceHooks struct {
	// transition is called from the instance goroutine after a state change;
	// forced is true when a sync group caused it.
	transition func(in *instance, from, to State, cause string, forced bool)
	// ownFault is called when the instance's fault, not counting sync group
	// contributions, changes.
	ownFault func(in *instance, fault bool)
	// canGoMaster is asked before a due down timer makes us master; false
	// holds us in backup (sync group veto).
	canGoMaster func(in *instance) bool
	// localAddrs lists this node's addresses (nil: only the Conn's source).
	localAddrs func() map[netip.Addr]bool
	// siblingVRID reports whether another instance of this node runs vrid on the same
	// interface and family: its adverts reach this instance's socket too and are not drops.
	siblingVRID func(in *instance, vrid uint8) bool
}

func newInstance(log *zap.Logger, cfg InstanceConfig, conn Conn, addr Addresser, n *notifier, hooks instanceHooks) *instance {
	cfg = withDefaults(cfg)
	in := &instance{
		log:      log.Named("vrrp").With(zap.String("instance", cfg.Name)),
		conn:     conn,
		addr:     addr,
		notify:   n,
		hooks:    hooks,
		cfg:      cfg,
		trackers: map[string]TrackerState{},
		signal:   make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	in.auth = PassData(cfg.AuthPass)
	in.m = NewMachine(in.machineConfig(cfg))
	in.status = InstanceStatus{Name: cfg.Name, Interface: cfg.Interface, VRID: cfg.VRID, Version: cfg.version(), Family: cfg.family(),
		State: StateInit, Priority: cfg.Priority, EffectivePriority: cfg.Priority,
		Counters: Counters{Dropped: map[DropReason]uint64{}}}
	return in
}

func withDefaults(cfg InstanceConfig) InstanceConfig {
	cfg.Version = cfg.version()
	cfg.Family = cfg.family()
	if cfg.AdvertInt == 0 {
		cfg.AdvertInt = time.Second
	}
	if cfg.GARPRepeat == 0 {
		cfg.GARPRepeat = 5
	}
	if cfg.GARPRefreshRepeat == 0 {
		cfg.GARPRefreshRepeat = 1
	}
	if cfg.GARPLowerPrioRepeat == 0 {
		cfg.GARPLowerPrioRepeat = cfg.GARPRepeat
	}
	if cfg.GARPLowerPrioDelay == 0 {
		cfg.GARPLowerPrioDelay = cfg.GARPDelay
	}
	fix := func(vs []VIP) []VIP {
		out := slices.Clone(vs)
		for i := range out {
			if out[i].Dev == "" {
				out[i].Dev = cfg.Interface
			}
			if cfg.UseVMAC && out[i].Dev == cfg.Interface {
				out[i].Dev = vmacName(cfg)
			}
		}
		return out
	}
	cfg.VIPs, cfg.Excluded = fix(cfg.VIPs), fix(cfg.Excluded)
	return cfg
}

func (in *instance) machineConfig(cfg InstanceConfig) MachineConfig {
	var src netip.Addr
	if in.conn != nil {
		src = in.conn.Source()
	}
	return MachineConfig{
		Version: cfg.Version, Priority: cfg.Priority, Interval: cfg.AdvertInt, Primary: src,
		NoPreempt: cfg.NoPreempt, PreemptDelay: cfg.PreemptDelay, StartMaster: cfg.StartState == StateMaster,
		GARPDelay: cfg.GARPDelay, GARPRefresh: cfg.GARPRefresh, FastHandover: cfg.FastHandover,
		GARPLowerPrio: cfg.GARPLowerPrioRepeat > 0, GARPLowerPrioDelay: max(cfg.GARPLowerPrioDelay, 0),
		LowerPrioNoAdvert: cfg.LowerPrioNoAdvert, HigherPrioSendAdvert: cfg.HigherPrioSendAdvert,
	}
}

func (in *instance) post(m ctrlMsg) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	select {
	case in.signal <- struct{}{}:
	default:
	}
}

// setTracker sets (or with a zero name removes) one contribution.
func (in *instance) setTracker(name string, t TrackerState) {
	in.mu.Lock()
	old, had := in.trackers[name]
	in.trackers[name] = t
	in.mu.Unlock()
	if !had || old != t {
		in.post(ctrlMsg{kind: msgRecompute})
	}
}

func (in *instance) removeTracker(name string) {
	in.mu.Lock()
	_, had := in.trackers[name]
	delete(in.trackers, name)
	in.mu.Unlock()
	if had {
		in.post(ctrlMsg{kind: msgRecompute})
	}
}

// effective computes the effective priority, the fault state with its cause,
// and whether the instance is faulty on its own (not by its sync group).
func (in *instance) effective() (prio uint8, fault bool, cause string, own bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	base := int(in.cfg.Priority)
	sum := 0
	for _, name := range slices.Sorted(maps.Keys(in.trackers)) {
		t := in.trackers[name]
		if t.Fault {
			if !fault {
				cause = t.Reason
				if cause == "" {
					cause = name + " fault"
				}
			}
			fault = true
			if !strings.HasPrefix(name, trackSyncPrefix) {
				own = true
			}
			continue
		}
		sum += t.Weight
	}
	if base == 255 {
		return 255, fault, cause, own
	}
	p := min(max(base+sum, 1), 254)
	return uint8(p), fault, cause, own
}

func (in *instance) contributions() []Contribution {
	var cs []Contribution
	for _, name := range slices.Sorted(maps.Keys(in.trackers)) {
		t := in.trackers[name]
		cs = append(cs, Contribution{Name: name, Weight: t.Weight, Fault: t.Fault, Reason: t.Reason})
	}
	return cs
}

func (in *instance) snapshot() InstanceStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := in.status
	s.Contributions = in.contributions()
	s.Counters.Dropped = maps.Clone(in.status.Counters.Dropped)
	return s
}

// run is the instance goroutine. It owns the machine and its one timer.
func (in *instance) run() {
	defer close(in.done)
	recv := make(chan Received, 32)
	readerDone := make(chan struct{})
	go in.reader(recv, readerDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	forced := false
	step := func(ev Event) {
		acts, dl := in.m.Step(time.Now(), ev)
		in.execute(acts, forced)
		timer.Stop()
		if !dl.IsZero() {
			timer.Reset(time.Until(dl))
		}
		in.mu.Lock()
		in.status.State = in.m.State()
		in.status.EffectivePriority = in.m.Priority()
		in.status.MasterAddr, in.status.MasterPriority = in.m.Master()
		in.holdUntil = in.m.HoldUntil()
		in.mu.Unlock()
	}
	in.removeStale()
	if in.hooks.localAddrs != nil {
		in.local = in.hooks.localAddrs()
		for _, v := range in.allVIPs() {
			delete(in.local, v.Prefix.Addr()) // VIPs come and go; they are not advert sources
		}
	}
	prio, fault, cause, own := in.effective()
	if prio != in.m.Priority() {
		step(Event{Kind: EvPriority, Priority: prio})
	}
	in.lastFault, in.lastOwnFault = fault, own
	if own && in.hooks.ownFault != nil {
		in.hooks.ownFault(in, true)
	}
	if fault {
		step(Event{Kind: EvFault, Fault: true, Cause: cause})
	} else {
		step(Event{Kind: EvStartup})
	}
	for {
		select {
		case <-timer.C:
			if in.m.DownDue(time.Now()) && in.hooks.canGoMaster != nil && !in.hooks.canGoMaster(in) {
				step(Event{Kind: EvHold})
				continue
			}
			step(Event{Kind: EvTimer})
		case r := <-recv:
			if ev, ok := in.receive(r); ok {
				step(ev)
			}
		case <-in.signal:
			in.mu.Lock()
			msgs := in.msgs
			in.msgs = nil
			in.mu.Unlock()
			for _, msg := range msgs {
				switch msg.kind {
				case msgRecompute:
					in.recompute(step)
				case msgForce:
					forced = true
					step(msg.ev)
					forced = false
				case msgReconfig:
					in.reconfigure(msg.cfg, step)
				case msgStop:
					step(Event{Kind: EvShutdown})
					in.removeVIPs()
					in.conn.Close()
					<-readerDone
					if in.stopped != nil {
						in.stopped()
					}
					return
				}
			}
		}
	}
}

func (in *instance) recompute(step func(Event)) {
	prio, fault, cause, own := in.effective()
	if own != in.lastOwnFault {
		in.lastOwnFault = own
		if in.hooks.ownFault != nil {
			in.hooks.ownFault(in, own)
		}
	}
	if prio != in.m.Priority() {
		in.log.Info("effective priority changed", zap.Uint8("from", in.m.Priority()), zap.Uint8("to", prio),
			zap.Any("contributions", in.snapshot().Contributions))
		step(Event{Kind: EvPriority, Priority: prio})
	}
	if fault != in.lastFault {
		in.lastFault = fault
		if !fault {
			cause = "all tracked resources ok"
		}
		if in.m.State() == StateStop || in.m.State() == StateInit {
			if !fault {
				step(Event{Kind: EvStartup})
			}
			return
		}
		step(Event{Kind: EvFault, Fault: fault, Cause: cause})
	}
}

func (in *instance) reconfigure(cfg InstanceConfig, step func(Event)) {
	cfg = withDefaults(cfg)
	old := in.cfg
	if in.m.State() == StateMaster {
		oldSet := map[VIP]bool{}
		for _, v := range append(slices.Clone(old.VIPs), old.Excluded...) {
			oldSet[v] = true
		}
		newSet := map[VIP]bool{}
		for _, v := range append(slices.Clone(cfg.VIPs), cfg.Excluded...) {
			newSet[v] = true
			if !oldSet[v] {
				in.addVIP(v)
			}
		}
		for v := range oldSet {
			if !newSet[v] {
				in.delVIP(v)
			}
		}
	}
	in.mu.Lock()
	in.cfg = cfg
	in.status.Name, in.status.Priority = cfg.Name, cfg.Priority
	in.mu.Unlock()
	in.auth = PassData(cfg.AuthPass)
	in.log = in.log.With(zap.String("reloaded_as", cfg.Name))
	in.m.Reconfigure(in.machineConfig(cfg))
	in.recompute(step)
}

func (in *instance) reader(out chan<- Received, done chan<- struct{}) {
	defer close(done)
	for {
		buf := make([]byte, 1500)
		r, err := in.conn.Recv(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Transient (e.g. ENOBUFS, interface going away): keep reading.
			in.log.Debug("receive failed", zap.Error(err))
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		out <- r
	}
}

// receive validates one packet; it returns the advert event when accepted.
func (in *instance) receive(r Received) (Event, bool) {
	f := Filter{Version: in.cfg.Version, VRID: in.cfg.VRID, AuthType: in.cfg.AuthType, AuthData: in.auth,
		Unicast: len(in.cfg.UnicastPeers) > 0}
	if in.cfg.Version == 2 {
		f.Interval = in.cfg.AdvertInt
	}
	a, why := Decode(r, f)
	if why == DropVRID && len(r.Payload) >= 2 && in.hooks.siblingVRID != nil && in.hooks.siblingVRID(in, r.Payload[1]) {
		return Event{}, false
	}
	if why == DropNone && (r.Src == in.conn.Source() || in.local[r.Src]) {
		why = DropOwn
	}
	if why == DropNone && len(in.cfg.UnicastPeers) > 0 && !slices.Contains(in.cfg.UnicastPeers, r.Src) {
		why = DropNotPeer
	}
	if why == DropNone && len(in.cfg.AllowedPeers) > 0 &&
		!slices.ContainsFunc(in.cfg.AllowedPeers, func(p netip.Prefix) bool { return p.Contains(r.Src.WithZone("")) }) {
		why = DropNotAllowed
	}
	if why == DropNone && f.Unicast {
		for _, pt := range in.cfg.UnicastPeerTTL {
			if pt.Peer == r.Src && (r.TTL < pt.Min || r.TTL > pt.Max) {
				why = DropTTL
			}
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if why != DropNone {
		in.status.Counters.Dropped[why]++
		if why != DropVRID {
			in.log.Debug("dropped packet", zap.Stringer("reason", why), zap.Stringer("src", r.Src))
		}
		return Event{}, false
	}
	in.status.Counters.AdvertsReceived++
	return Event{Kind: EvAdvert, Src: r.Src, Priority: a.Priority, Interval: a.Interval}, true
}

func (in *instance) execute(acts []Action, forced bool) {
	for _, a := range acts {
		switch a.Kind {
		case ActSendAdvert:
			in.sendAdvert(a.Priority)
		case ActTransition:
			in.transition(a, forced)
		case ActGARP:
			n := in.cfg.GARPRepeat
			switch {
			case a.Refresh:
				n = in.cfg.GARPRefreshRepeat
			case a.LowerPrio:
				n = in.cfg.GARPLowerPrioRepeat
				in.log.Info("staying master against a lower priority master: gratuitous burst", zap.Int("count", n))
			}
			for _, v := range in.allVIPs() {
				if err := in.addr.Announce(v, n); err != nil {
					in.log.Warn("gratuitous announce failed", zap.Error(err))
				}
			}
		case ActDualMaster:
			in.mu.Lock()
			in.status.Counters.DualMaster++
			in.mu.Unlock()
			in.log.Error("TWO MASTERS: another master advertises while we are master",
				zap.Stringer("us", in.conn.Source()), zap.Uint8("our_priority", in.m.Priority()),
				zap.Stringer("other", a.Peer), zap.Uint8("other_priority", a.PeerPriority))
		}
	}
}

func (in *instance) allVIPs() []VIP {
	return append(slices.Clone(in.cfg.VIPs), in.cfg.Excluded...)
}

func (in *instance) sendAdvert(prio uint8) {
	var addrs []netip.Addr
	for _, v := range in.cfg.VIPs {
		if v.Prefix.Addr().Is4() == (in.cfg.Family == 4) {
			addrs = append(addrs, v.Prefix.Addr())
		}
	}
	a := Advert{Version: in.cfg.Version, VRID: in.cfg.VRID, Priority: prio, Interval: in.cfg.AdvertInt,
		Addrs: addrs, AuthType: in.cfg.AuthType, AuthData: in.auth}
	dsts := in.cfg.UnicastPeers
	if len(dsts) == 0 {
		dsts = []netip.Addr{GroupV4()}
		if in.cfg.Family == 6 {
			dsts = []netip.Addr{GroupV6()}
		}
	}
	for _, d := range dsts {
		b, err := a.Marshal(in.conn.Source(), d)
		if err == nil {
			err = in.conn.Send(b, d)
		}
		in.mu.Lock()
		if err != nil {
			in.status.Counters.SendErrors++
		} else {
			in.status.Counters.AdvertsSent++
		}
		in.mu.Unlock()
		if err != nil {
			in.log.Warn("send advert failed", zap.Error(err))
		}
	}
}

func (in *instance) transition(a Action, forced bool) {
	now := time.Now()
	in.mu.Lock()
	in.status.LastTransition = Transition{At: now, From: a.From, To: a.To, Cause: a.Cause}
	in.status.Counters.Transitions++
	in.mu.Unlock()
	in.log.Info("state transition", zap.Stringer("from", a.From), zap.Stringer("to", a.To),
		zap.String("cause", a.Cause), zap.Uint8("priority", in.m.Priority()))
	if a.To == StateMaster {
		for _, v := range in.allVIPs() {
			in.addVIP(v)
		}
	}
	if a.From == StateMaster {
		in.removeVIPs()
	}
	in.runNotify(a.To)
	if in.hooks.transition != nil {
		in.hooks.transition(in, a.From, a.To, a.Cause, forced)
	}
}

func (in *instance) runNotify(to State) {
	var script string
	switch to {
	case StateMaster:
		script = in.cfg.NotifyMaster
	case StateBackup:
		script = in.cfg.NotifyBackup
	case StateFault:
		script = in.cfg.NotifyFault
	case StateStop:
		script = in.cfg.NotifyStop
	default:
		return
	}
	prio := fmt.Sprint(in.m.Priority())
	if script != "" {
		in.notify.run(script)
	}
	if in.cfg.Notify != "" {
		in.notify.run(in.cfg.Notify, "INSTANCE", in.cfg.Name, to.String(), prio)
	}
}

func (in *instance) addVIP(v VIP) {
	if err := in.addr.Add(v); err != nil {
		in.log.Error("add VIP failed", zap.Error(err))
	}
}

func (in *instance) delVIP(v VIP) {
	if err := in.addr.Del(v); err != nil {
		in.log.Error("remove VIP failed", zap.Error(err))
	}
}

func (in *instance) removeVIPs() {
	for _, v := range in.allVIPs() {
		in.delVIP(v)
	}
}

// removeStale removes VIPs a crashed run left on the interface.
func (in *instance) removeStale() {
	for _, v := range in.allVIPs() {
		has, err := in.addr.Has(v)
		if err != nil {
			in.log.Warn("checking for stale VIP failed", zap.Error(err))
			continue
		}
		if has {
			in.log.Info("removing stale VIP left by an earlier run", zap.Stringer("vip", v.Prefix), zap.String("dev", v.Dev))
			in.delVIP(v)
		}
	}
}
