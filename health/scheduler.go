package health

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Target is one real server of one virtual server, with its checkers.
type Target struct {
	// ID names the target in transitions and logs, e.g.
	// "vs 198.18.0.10:80 / rs 198.18.1.10:80". It is the key on reload.
	ID string
	// Service is the ID of the virtual server whose quorum this target
	// counts toward (see Service); empty: none.
	Service string
	// Addr is the real server's address, carried in transitions; zero: none.
	Addr netip.AddrPort
	// Checkers all must pass (keepalived: a server with several checkers
	// is up only when every one is). They run concurrently in one check.
	Checkers []Checker
	Timing   Timing
	// NotifyUp and NotifyDown are notify_up / notify_down command lines,
	// run asynchronously on UP and DOWN transitions.
	NotifyUp, NotifyDown string
	// Weight is the configured weight (misc_dynamic may override it).
	Weight int
	// Inhibit is inhibit_on_failure, carried in transitions.
	Inhibit bool
}

// Service is a virtual server's quorum configuration.
type Service struct {
	ID                   string
	Quorum, Hysteresis   int
	QuorumUp, QuorumDown string // quorum_up / quorum_down command lines
}

// QuorumChange reports a virtual server gaining or losing quorum.
type QuorumChange struct {
	Service    string
	Up         bool
	LiveWeight int
	At         time.Time
}

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	// Script says how MISC_CHECK-independent scripts (notify_*, quorum_*)
	// run: script_user, enable_script_security.
	Script ScriptOptions
	// NotifyTimeout bounds a notify or quorum script (default 10s); the
	// script's process group is killed at the limit.
	NotifyTimeout time.Duration
	// OnQuorum, when set, receives quorum changes, in order, from the same
	// goroutine as the transition callback.
	OnQuorum func(QuorumChange)
}

// LastResult is a target's latest check result.
type LastResult struct {
	OK       bool
	Reason   string
	Duration time.Duration
	At       time.Time
}

// TargetStatus is a read-only view of one target.
type TargetStatus struct {
	ID          string
	Service     string
	Addr        netip.AddrPort // Target.Addr
	Checkers    []string       // the checkers' String(), e.g. "HTTP_GET 198.18.1.10:80 /health"
	Up          bool
	Since       time.Time
	Weight      int
	Inhibit     bool
	Next        time.Time
	Last        LastResult
	Checks      uint64            // check attempts, retries included
	Failures    uint64            // failed attempts
	ByReason    map[string]uint64 // failed attempts by reason (at most 32 reasons, then "other")
	Transitions uint64            // UP, DOWN and weight transitions
}

// ServiceStatus is a read-only view of one virtual server's quorum.
type ServiceStatus struct {
	ID         string
	Up         bool
	LiveWeight int
	UpAt       int // live weight needed to gain quorum
	DownBelow  int // live weight under which quorum is lost
}

// Stats are scheduler-wide counters.
type Stats struct {
	Targets     int
	Checks      uint64
	Failures    uint64
	Transitions uint64
	// Lateness of check starts against their schedule, over the last
	// latencySamples checks.
	LatenessP50, LatenessP99, LatenessMax time.Duration
}

// Scheduler is the thin shell around the Monitors: one goroutine per
// target runs its checks on a timer (checks of one target never overlap),
// feeds the results to the target's Monitor and queues its transitions; one
// dispatcher goroutine delivers them, in order, to the callback and starts
// the notify scripts. Set, PassiveFail and Status may be called at any time,
// also from the callback.
type Scheduler struct {
	log      *zap.Logger
	onChange func(Transition)
	opts     SchedulerOptions

	mu       sync.Mutex
	targets  map[string]*target
	order    []string
	services map[string]*service
	runCtx   context.Context
	cancel   context.CancelFunc
	started  bool
	stopped  bool
	queue    []event
	queueC   *sync.Cond
	closing  bool

	runners    sync.WaitGroup
	dispatched chan struct{}
	scripts    sync.WaitGroup

	checks, failures, transitions atomic.Uint64
	lat                           latencyRing
}

type target struct {
	t       Target
	mon     *Monitor
	offset  time.Duration // first check's offset from Set (re-based at Start)
	cancel  context.CancelFunc
	removed bool

	last        LastResult
	checks      uint64
	failures    uint64
	byReason    map[string]uint64
	transitions uint64
}

type service struct {
	cfg Service
	q   *Quorum
}

type event struct {
	tr     *Transition
	quorum *QuorumChange
	script string
	what   string
}

const maxReasons = 32

// NewScheduler returns a Scheduler that reports transitions to onChange
// (which may be nil). Call Set, then Start; Stop ends it. A Scheduler runs
// once.
func NewScheduler(log *zap.Logger, onChange func(Transition), opts SchedulerOptions) *Scheduler {
	if log == nil {
		log = zap.NewNop()
	}
	if opts.NotifyTimeout <= 0 {
		opts.NotifyTimeout = 10 * time.Second
	}
	s := &Scheduler{
		log:      log.Named("health"),
		onChange: onChange,
		opts:     opts,
		targets:  map[string]*target{},
		services: map[string]*service{},
	}
	s.queueC = sync.NewCond(&s.mu)
	return s
}

// Set installs the targets and services of a (re)loaded configuration.
// A target with the same ID and the same checker configuration as before
// keeps its state and schedule (its timing, weight and notify scripts are
// updated); one whose checkers changed starts a new schedule but keeps its
// UP/DOWN state; a new one starts UP (DOWN with alpha) and gets a
// KindInitial transition; a removed one gets KindRemoved (and notify_down
// when omega is set and it was up). First checks of new targets are spread
// over their delay_loop, plus a random warmup. services is the complete set
// of quorum-tracked virtual servers: pass it on every call (a service left
// out is dropped); a service keeps its quorum state across calls.
func (s *Scheduler) Set(targets []Target, services ...Service) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	next := make(map[string]*target, len(targets))
	var order []string
	var fresh []*target
	for _, t := range targets {
		if _, dup := next[t.ID]; dup {
			s.log.Error("duplicate health target ignored", zap.String("target", t.ID))
			continue
		}
		order = append(order, t.ID)
		old := s.targets[t.ID]
		if old != nil && sameCheckers(old.t.Checkers, t.Checkers) {
			t.Checkers = old.t.Checkers
			old.t = t
			old.mon.Reconfigure(t)
			next[t.ID] = old
			continue
		}
		tg := &target{t: t, byReason: map[string]uint64{}}
		if old != nil {
			s.retireLocked(old)
			tg.mon = NewMonitor(t, now, 0)
			tg.mon.inherit(old.mon)
			tg.last, tg.checks, tg.failures, tg.transitions = old.last, old.checks, old.failures, old.transitions
			tg.byReason = old.byReason
		}
		next[t.ID] = tg
		fresh = append(fresh, tg)
	}
	for id, old := range s.targets {
		if _, ok := next[id]; ok {
			continue
		}
		s.retireLocked(old)
		tr := old.mon.transition(KindRemoved, "removed from configuration", now)
		s.emitLocked(event{tr: &tr})
		if old.t.Timing.Omega && old.mon.Up() && old.t.NotifyDown != "" {
			s.emitLocked(event{script: old.t.NotifyDown, what: "notify_down (omega) " + id})
		}
	}
	for i, tg := range fresh {
		t := tg.t.Timing.withDefaults()
		offset := time.Duration(int64(t.DelayLoop) * int64(i) / int64(len(fresh)))
		if t.Warmup > 0 {
			offset += rand.N(t.Warmup)
		}
		tg.offset = offset
		if tg.mon == nil {
			tg.mon = NewMonitor(tg.t, now, offset)
			tr := tg.mon.Initial(now)
			s.emitLocked(event{tr: &tr})
		} else {
			tg.mon.next = now.Add(offset)
		}
	}
	s.targets, s.order = next, order

	svcs := make(map[string]*service, len(services))
	for _, c := range services {
		if old, ok := s.services[c.ID]; ok && old.cfg.Quorum == c.Quorum && old.cfg.Hysteresis == c.Hysteresis {
			old.cfg = c
			svcs[c.ID] = old
			continue
		}
		q := NewQuorum(c.Quorum, c.Hysteresis)
		if old, ok := s.services[c.ID]; ok {
			// New thresholds, same state: only a real change is reported
			// (keepalived keeps quorum_state_up across a reload too).
			q.up = old.q.up
		}
		svcs[c.ID] = &service{cfg: c, q: q}
	}
	s.services = svcs
	for id := range svcs {
		s.updateQuorumLocked(id, now)
	}
	if s.started {
		for _, tg := range fresh {
			s.startRunnerLocked(tg)
		}
	}
}

func (s *Scheduler) retireLocked(tg *target) {
	tg.removed = true
	if tg.cancel != nil {
		tg.cancel()
	}
}

// Start starts the checks; they stop when ctx ends or Stop is called.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	s.runCtx, s.cancel = context.WithCancel(ctx)
	s.dispatched = make(chan struct{})
	go s.dispatch()
	now := time.Now()
	for _, id := range s.order {
		tg := s.targets[id]
		// Targets set long before Start keep their spread instead of
		// all firing at once.
		if tg.checks == 0 && tg.mon.next.Before(now) {
			tg.mon.next = now.Add(tg.offset)
		}
		s.startRunnerLocked(tg)
	}
}

// Stop stops the checks (in-flight ones are cancelled, scripts killed),
// runs omega notify_down scripts, delivers the queued transitions and waits
// for the notify scripts (each bounded by NotifyTimeout).
func (s *Scheduler) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	started := s.started
	if s.cancel != nil {
		s.cancel()
	}
	for _, id := range s.order {
		tg := s.targets[id]
		if tg.t.Timing.Omega && tg.mon.Up() && tg.t.NotifyDown != "" {
			s.emitLocked(event{script: tg.t.NotifyDown, what: "notify_down (omega) " + id})
		}
	}
	s.mu.Unlock()
	s.runners.Wait()
	if started {
		s.mu.Lock()
		s.closing = true
		s.queueC.Broadcast()
		s.mu.Unlock()
		<-s.dispatched
	}
	s.scripts.Wait()
}

func (s *Scheduler) startRunnerLocked(tg *target) {
	ctx, cancel := context.WithCancel(s.runCtx)
	tg.cancel = cancel
	s.runners.Add(1)
	go s.run(ctx, tg)
}

// run is one target's loop: wait for the Monitor's next time, check, observe.
func (s *Scheduler) run(ctx context.Context, tg *target) {
	defer s.runners.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if tg.removed {
			s.mu.Unlock()
			return
		}
		due := tg.mon.Next()
		checkers := tg.t.Checkers
		timing := tg.t.Timing.withDefaults()
		s.mu.Unlock()

		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		s.lat.add(time.Since(due))
		res := runChecks(ctx, checkers, timing)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		s.checks.Add(1)
		if !res.OK {
			s.failures.Add(1)
		}
		if ce := s.log.Check(zap.DebugLevel, "check"); ce != nil {
			ce.Write(zap.String("target", tg.t.ID), zap.Bool("ok", res.OK), zap.String("reason", res.Reason), zap.Duration("took", res.Duration))
		}
		s.mu.Lock()
		if tg.removed {
			s.mu.Unlock()
			return
		}
		tg.checks++
		tg.last = LastResult{OK: res.OK, Reason: res.Reason, Duration: res.Duration, At: now}
		if !res.OK {
			tg.failures++
			key := res.Reason
			if _, ok := tg.byReason[key]; !ok && len(tg.byReason) >= maxReasons {
				key = "other"
			}
			tg.byReason[key]++
		}
		if tr, _ := tg.mon.Observe(now, res); tr != nil {
			s.transitionLocked(tg, *tr)
		}
		s.mu.Unlock()
	}
}

// runChecks runs one attempt of every checker, concurrently, each with its
// own deadline; all must pass.
func runChecks(ctx context.Context, checkers []Checker, t Timing) Result {
	start := time.Now()
	if len(checkers) == 0 {
		return Result{OK: true, Reason: "no checker", Duration: 0}
	}
	results := make([]Result, len(checkers))
	one := func(i int) {
		c := checkers[i]
		timeout := t.ConnectTimeout
		if ct, ok := c.(connectTimeouter); ok && ct.OwnConnectTimeout() > 0 {
			timeout = ct.OwnConnectTimeout()
		}
		if to, ok := c.(timeouter); ok {
			timeout = to.AttemptTimeout()
			if timeout <= 0 {
				timeout = t.DelayLoop
			}
		}
		cctx, cancel := context.WithTimeout(withBudget(ctx, timeout), timeout)
		defer cancel()
		results[i] = c.Check(cctx)
	}
	if len(checkers) == 1 {
		one(0)
	} else {
		var wg sync.WaitGroup
		for i := range checkers {
			wg.Go(func() { one(i) })
		}
		wg.Wait()
	}
	out := Result{OK: true, Duration: time.Since(start)}
	for i, r := range results {
		if r.HasWeight {
			out.Weight, out.HasWeight = r.Weight, true
		}
		if !r.OK && out.OK {
			out.OK = false
			out.Reason = r.Reason
			if len(checkers) > 1 {
				out.Reason = checkerKind(checkers[i]) + ": " + r.Reason
			}
		}
	}
	return out
}

func checkerKind(c Checker) string {
	s := c.String()
	for i := range len(s) {
		if s[i] == ' ' {
			return s[:i]
		}
	}
	return s
}

// transitionLocked records and queues a transition of tg and its effects.
func (s *Scheduler) transitionLocked(tg *target, tr Transition) {
	tg.transitions++
	s.transitions.Add(1)
	s.emitLocked(event{tr: &tr})
	switch {
	case tr.Kind == KindUp && tg.t.NotifyUp != "":
		s.emitLocked(event{script: tg.t.NotifyUp, what: "notify_up " + tg.t.ID})
	case tr.Kind == KindDown && tg.t.NotifyDown != "":
		s.emitLocked(event{script: tg.t.NotifyDown, what: "notify_down " + tg.t.ID})
	}
	if tg.t.Service != "" {
		s.updateQuorumLocked(tg.t.Service, tr.At)
	}
}

func (s *Scheduler) updateQuorumLocked(id string, now time.Time) {
	svc, ok := s.services[id]
	if !ok {
		return
	}
	live := 0
	for _, tid := range s.order {
		tg := s.targets[tid]
		if tg.t.Service == id && tg.mon.Up() {
			live += tg.mon.Weight()
		}
	}
	up, changed := svc.q.Update(live)
	if !changed {
		return
	}
	s.emitLocked(event{quorum: &QuorumChange{Service: id, Up: up, LiveWeight: live, At: now}})
	script, what := svc.cfg.QuorumDown, "quorum_down "+id
	if up {
		script, what = svc.cfg.QuorumUp, "quorum_up "+id
	}
	if script != "" {
		s.emitLocked(event{script: script, what: what})
	}
}

func (s *Scheduler) emitLocked(e event) {
	s.queue = append(s.queue, e)
	s.queueC.Signal()
}

// dispatch delivers queued events in order, one at a time.
func (s *Scheduler) dispatch() {
	defer close(s.dispatched)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closing {
			s.queueC.Wait()
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		e := s.queue[0]
		s.queue[0] = event{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
		s.deliver(e)
	}
}

func (s *Scheduler) deliver(e event) {
	switch {
	case e.tr != nil:
		tr := *e.tr
		if tr.Kind != KindInitial {
			s.log.Info("health "+tr.Kind.String(), zap.String("target", tr.ID), zap.String("reason", tr.Reason), zap.Int("weight", tr.Weight), zap.Bool("inhibit", tr.Inhibit))
		}
		if s.onChange != nil {
			s.onChange(tr)
		}
	case e.quorum != nil:
		q := *e.quorum
		s.log.Info("quorum change", zap.String("service", q.Service), zap.Bool("up", q.Up), zap.Int("live_weight", q.LiveWeight))
		if s.opts.OnQuorum != nil {
			s.opts.OnQuorum(q)
		}
	case e.script != "":
		s.scripts.Add(1)
		go func() {
			defer s.scripts.Done()
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.NotifyTimeout)
			defer cancel()
			run := runScript(ctx, e.script, s.opts.Script)
			switch {
			case run.err != nil:
				s.log.Error("script not run", zap.String("script", e.what), zap.Error(run.err))
			case run.timedOut:
				s.log.Warn("script killed at timeout", zap.String("script", e.what), zap.Duration("timeout", s.opts.NotifyTimeout))
			case run.exitCode != 0:
				s.log.Warn("script failed", zap.String("script", e.what), zap.Int("exit", run.exitCode), zap.String("output", firstLine(run.output)))
			default:
				s.log.Debug("script ran", zap.String("script", e.what))
			}
		}()
	}
}

// PassiveFail takes target id DOWN now, with the reason "passive: N
// consecutive connect failures" (N = consecutive, the proxy's count); it
// stays down until its next passing checks (Rise of them). It reports
// whether the target existed and was up.
func (s *Scheduler) PassiveFail(id string, consecutive int) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	tg, ok := s.targets[id]
	if !ok || s.stopped {
		return false
	}
	tr := tg.mon.PassiveFail(now, fmt.Sprintf("passive: %d consecutive connect failures", consecutive))
	if tr == nil {
		return false
	}
	s.transitionLocked(tg, *tr)
	return true
}

// Status returns a view of every target, in configuration order.
func (s *Scheduler) Status() []TargetStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TargetStatus, 0, len(s.order))
	for _, id := range s.order {
		tg := s.targets[id]
		by := make(map[string]uint64, len(tg.byReason))
		for k, v := range tg.byReason {
			by[k] = v
		}
		names := make([]string, len(tg.t.Checkers))
		for i, c := range tg.t.Checkers {
			names[i] = c.String()
		}
		out = append(out, TargetStatus{
			ID: id, Service: tg.t.Service, Addr: tg.t.Addr, Checkers: names, Up: tg.mon.Up(), Since: tg.mon.Since(), Weight: tg.mon.Weight(),
			Inhibit: tg.t.Inhibit, Next: tg.mon.Next(), Last: tg.last, Checks: tg.checks, Failures: tg.failures,
			ByReason: by, Transitions: tg.transitions,
		})
	}
	return out
}

// Services returns the quorum state of every service, sorted by ID.
func (s *Scheduler) Services() []ServiceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ServiceStatus, 0, len(s.services))
	for id, svc := range s.services {
		upAt, downBelow := svc.q.Thresholds()
		out = append(out, ServiceStatus{ID: id, Up: svc.q.Up(), LiveWeight: svc.q.LiveWeight(), UpAt: upAt, DownBelow: downBelow})
	}
	slices.SortFunc(out, func(a, b ServiceStatus) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Stats returns scheduler-wide counters and the lateness of check starts.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	n := len(s.targets)
	s.mu.Unlock()
	p50, p99, mx := s.lat.percentiles()
	return Stats{Targets: n, Checks: s.checks.Load(), Failures: s.failures.Load(), Transitions: s.transitions.Load(),
		LatenessP50: p50, LatenessP99: p99, LatenessMax: mx}
}

func sameCheckers(a, b []Checker) bool {
	return slices.EqualFunc(a, b, func(x, y Checker) bool {
		if x == y {
			return true
		}
		if eq, ok := x.(configEqualer); ok {
			return eq.sameConfig(y)
		}
		return false
	})
}

const latencySamples = 1 << 16

// latencyRing keeps the last latencySamples lateness samples, lock-free so
// that measuring adds no contention between the runners.
type latencyRing struct {
	buf [latencySamples]atomic.Int64
	n   atomic.Uint64
}

func (l *latencyRing) add(d time.Duration) {
	i := l.n.Add(1) - 1
	l.buf[i%latencySamples].Store(int64(d))
}

func (l *latencyRing) percentiles() (p50, p99, mx time.Duration) {
	n := min(l.n.Load(), latencySamples)
	if n == 0 {
		return 0, 0, 0
	}
	c := make([]time.Duration, n)
	for i := range c {
		c[i] = time.Duration(l.buf[i].Load())
	}
	slices.Sort(c)
	at := func(p float64) time.Duration { return c[min(len(c)-1, int(p*float64(len(c))))] }
	return at(0.50), at(0.99), c[len(c)-1]
}
