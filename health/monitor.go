package health

import (
	"fmt"
	"net/netip"
	"time"
)

// Timing is keepalived's checker timing plus halb's rise/fall counts.
// Zero values take the defaults below (keepalived's), except Retry, where
// zero means no retry: the config package fills keepalived's per-checker
// default.
type Timing struct {
	// DelayLoop is the interval between the starts of two checks (default 60s).
	DelayLoop time.Duration
	// ConnectTimeout bounds one attempt of TCP, HTTP, SSL and PING checks
	// (default 5s). MISC_CHECK uses its own misc_timeout.
	ConnectTimeout time.Duration
	// DelayBeforeRetry is the pause after a failed attempt before a retry
	// (default 1s).
	DelayBeforeRetry time.Duration
	// Warmup: the first check waits a random delay in [0, Warmup) on top of
	// the spread offset.
	Warmup time.Duration
	// Retry (nb_get_retry) is the number of retries after a failed attempt,
	// while the server is up, before the check counts as failed.
	Retry int
	// Rise is the number of consecutive passing checks that bring a down
	// server up; Fall the number of consecutive failed checks (each after
	// its retries) that take an up server down. Default 1 each: keepalived.
	Rise, Fall int
	// Alpha starts the server DOWN: it needs Rise passing checks to come up.
	// Without it the server starts UP, as in keepalived.
	Alpha bool
	// Omega runs the notify_down script when the target is removed (reload
	// or shutdown) while up.
	Omega bool
}

// Default timing values, keepalived's.
const (
	DefaultDelayLoop        = 60 * time.Second
	DefaultConnectTimeout   = 5 * time.Second
	DefaultDelayBeforeRetry = 1 * time.Second
)

func (t Timing) withDefaults() Timing {
	if t.DelayLoop <= 0 {
		t.DelayLoop = DefaultDelayLoop
	}
	if t.ConnectTimeout <= 0 {
		t.ConnectTimeout = DefaultConnectTimeout
	}
	if t.DelayBeforeRetry <= 0 {
		t.DelayBeforeRetry = DefaultDelayBeforeRetry
	}
	if t.Retry < 0 {
		t.Retry = 0
	}
	if t.Rise < 1 {
		t.Rise = 1
	}
	if t.Fall < 1 {
		t.Fall = 1
	}
	if t.Warmup < 0 {
		t.Warmup = 0
	}
	return t
}

// DetectionBound is the longest time from a server's death to its DOWN
// transition that this timing allows, for checks whose attempts end within
// attemptTimeout (ConnectTimeout when zero): the failure may happen just
// after a check started, so the first failing check starts up to DelayLoop
// later; each failed check then takes (Retry+1) attempts and Retry pauses,
// and Fall failed checks are needed, each starting DelayLoop after the
// previous one (or at its end when it ran longer).
func (t Timing) DetectionBound(attemptTimeout time.Duration) time.Duration {
	t = t.withDefaults()
	if attemptTimeout <= 0 {
		attemptTimeout = t.ConnectTimeout
	}
	round := time.Duration(t.Retry+1)*attemptTimeout + time.Duration(t.Retry)*t.DelayBeforeRetry
	return t.DelayLoop + time.Duration(t.Fall-1)*max(t.DelayLoop, round) + round
}

// TransitionKind says what a Transition reports.
type TransitionKind int

const (
	// KindInitial reports a new target's starting state (UP, or DOWN with
	// alpha) when it is added; it is not a state change.
	KindInitial TransitionKind = iota
	// KindUp: the server came up.
	KindUp
	// KindDown: the server went down (Inhibit says whether the pool keeps
	// it at weight 0 instead of removing it).
	KindDown
	// KindWeight: a MISC_CHECK with misc_dynamic changed the weight of an
	// up server.
	KindWeight
	// KindRemoved: the target left the configuration (reload) or the
	// scheduler stopped.
	KindRemoved
)

func (k TransitionKind) String() string {
	switch k {
	case KindInitial:
		return "initial"
	case KindUp:
		return "up"
	case KindDown:
		return "down"
	case KindWeight:
		return "weight"
	case KindRemoved:
		return "removed"
	}
	return fmt.Sprintf("TransitionKind(%d)", int(k))
}

// Transition is a verdict on one target, reported once.
type Transition struct {
	ID string
	// Service and Addr are the target's (Target.Service, Target.Addr), so a
	// consumer never parses them back out of ID.
	Service string
	Addr    netip.AddrPort
	Kind    TransitionKind
	// Up is the target's state after the transition.
	Up bool
	// Reason says why: the failing check's reason on the way down
	// ("connection refused", "status 503 (GET /)", "passive: 3 consecutive
	// connect failures"), what passed on the way up.
	Reason string
	// Weight is the target's effective weight: the dynamic weight from
	// misc_dynamic once one was reported, else the configured weight. A
	// down target counts 0 toward quorum whatever its Weight.
	Weight int
	// Inhibit is the target's inhibit_on_failure: when set and the target
	// is down, the pool keeps it with weight 0 instead of removing it.
	Inhibit bool
	At      time.Time
}

// Monitor is the pure core of one target's scheduling: it takes check
// results with the time they arrived and returns transitions and the time of
// the next check. It has no clock, no goroutine and no lock; the Scheduler
// serialises calls.
//
// Semantics (keepalived's, with halb's rise/fall):
//   - A check is an attempt plus, while the target is UP, up to Retry
//     retries, each DelayBeforeRetry after the previous attempt ended. The
//     check fails when all its attempts fail. A DOWN target is not retried.
//   - Fall consecutive failed checks take an UP target DOWN; Rise
//     consecutive passing checks bring a DOWN target UP.
//   - Checks start every DelayLoop, measured from the start of the previous
//     check's first attempt (fixed rate), or right after it when it ran
//     longer.
type Monitor struct {
	id      string
	service string
	addr    netip.AddrPort
	timing  Timing
	weight  int
	inhibit bool

	up             bool
	since          time.Time
	dynWeight      int
	hasDynWeight   bool
	okRun, failRun int
	retries        int
	inCheck        bool
	checkStart     time.Time
	next           time.Time
	lastReason     string
}

// NewMonitor returns the Monitor of target t, whose first check is due at
// now+firstDelay. It starts UP, or DOWN when t.Timing.Alpha is set.
func NewMonitor(t Target, now time.Time, firstDelay time.Duration) *Monitor {
	m := &Monitor{
		id:      t.ID,
		service: t.Service,
		addr:    t.Addr,
		timing:  t.Timing.withDefaults(),
		weight:  t.Weight,
		inhibit: t.Inhibit,
		up:      !t.Timing.Alpha,
		since:   now,
		next:    now.Add(max(firstDelay, 0)),
	}
	return m
}

// Reconfigure applies a reloaded target's timing, weight and inhibit flag
// to a running Monitor; its state and next check are kept.
func (m *Monitor) Reconfigure(t Target) {
	m.timing = t.Timing.withDefaults()
	m.service, m.addr = t.Service, t.Addr
	m.weight = t.Weight
	m.inhibit = t.Inhibit
	if m.retries > m.timing.Retry {
		m.retries = m.timing.Retry
	}
}

// Up reports whether the target is up.
func (m *Monitor) Up() bool { return m.up }

// Since is when the target entered its current state.
func (m *Monitor) Since() time.Time { return m.since }

// Next is when the next check is due.
func (m *Monitor) Next() time.Time { return m.next }

// Weight is the effective weight (dynamic once reported, else configured).
func (m *Monitor) Weight() int {
	if m.hasDynWeight {
		return m.dynWeight
	}
	return m.weight
}

// Initial is the KindInitial transition describing the current state.
func (m *Monitor) Initial(now time.Time) Transition {
	reason := "start up"
	if !m.up {
		reason = "start down (alpha)"
	}
	return m.transition(KindInitial, reason, now)
}

func (m *Monitor) transition(k TransitionKind, reason string, now time.Time) Transition {
	return Transition{ID: m.id, Service: m.service, Addr: m.addr, Kind: k, Up: m.up, Reason: reason, Weight: m.Weight(), Inhibit: m.inhibit, At: now}
}

// Observe takes the result r of a check attempt that ended at now and
// returns the transition it causes, if any, and when the next attempt is due.
func (m *Monitor) Observe(now time.Time, r Result) (*Transition, time.Time) {
	t := m.timing
	start := now.Add(-max(r.Duration, 0))
	if !m.inCheck {
		m.inCheck = true
		m.checkStart = start
	}
	if r.OK {
		return m.observePass(now, r), m.nextCheck(now)
	}
	m.okRun = 0
	m.lastReason = r.Reason
	if m.up && m.retries < t.Retry {
		m.retries++
		m.next = now.Add(t.DelayBeforeRetry)
		return nil, m.next
	}
	// The check failed, retries included.
	m.retries = 0
	next := m.nextCheck(now)
	if !m.up {
		return nil, next
	}
	m.failRun++
	if m.failRun < t.Fall {
		return nil, next
	}
	m.failRun = 0
	m.up = false
	m.since = now
	tr := m.transition(KindDown, r.Reason, now)
	return &tr, next
}

func (m *Monitor) observePass(now time.Time, r Result) *Transition {
	m.retries = 0
	m.failRun = 0
	oldWeight := m.Weight()
	if r.HasWeight {
		m.dynWeight, m.hasDynWeight = r.Weight, true
	}
	if m.up {
		if m.Weight() != oldWeight {
			tr := m.transition(KindWeight, fmt.Sprintf("weight %d -> %d (misc_dynamic)", oldWeight, m.Weight()), now)
			return &tr
		}
		return nil
	}
	m.okRun++
	if m.okRun < m.timing.Rise {
		return nil
	}
	m.okRun = 0
	m.up = true
	m.since = now
	reason := "check passed"
	if m.timing.Rise > 1 {
		reason = fmt.Sprintf("%d consecutive checks passed", m.timing.Rise)
	}
	if r.Reason != "" {
		reason += ": " + r.Reason
	}
	tr := m.transition(KindUp, reason, now)
	return &tr
}

// nextCheck ends the current check and schedules the next one DelayLoop
// after its start, or now when that is already past.
func (m *Monitor) nextCheck(now time.Time) time.Time {
	m.inCheck = false
	next := m.checkStart.Add(m.timing.DelayLoop)
	if next.Before(now) {
		next = now
	}
	m.next = next
	return next
}

// PassiveFail takes an UP target DOWN now with the given reason (the proxy
// saw connections fail); it stays down until Rise passing checks. The check
// schedule is unchanged. It returns nil when the target is already down.
func (m *Monitor) PassiveFail(now time.Time, reason string) *Transition {
	if !m.up {
		return nil
	}
	m.up = false
	m.since = now
	m.okRun, m.failRun, m.retries = 0, 0, 0
	m.lastReason = reason
	tr := m.transition(KindDown, reason, now)
	return &tr
}

// inherit takes over the UP/DOWN state and dynamic weight of the Monitor
// of the same target before a reload changed its checkers.
func (m *Monitor) inherit(old *Monitor) {
	m.up, m.since = old.up, old.since
	m.dynWeight, m.hasDynWeight = old.dynWeight, old.hasDynWeight
}
