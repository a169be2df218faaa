package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// State is a VRRP instance state (RFC 5798 §6.4, plus Fault and Stop as in
// keepalived).
type State uint8

// States.
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
	StateStop
)

func (s State) String() string {
	switch s {
	case StateInit:
		return "INIT"
	case StateBackup:
		return "BACKUP"
	case StateMaster:
		return "MASTER"
	case StateFault:
		return "FAULT"
	case StateStop:
		return "STOP"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MachineConfig is the static part of a state machine.
type MachineConfig struct {
	Version  int           // 2 or 3
	Priority uint8         // initial effective priority; 255 only for the address owner
	Interval time.Duration // Advertisement_Interval
	// Primary is this router's primary address (advert source), used for the
	// equal-priority tie break.
	Primary      netip.Addr
	NoPreempt    bool
	PreemptDelay time.Duration
	// StartMaster is keepalived's "state MASTER": a non-owner takes over
	// after one interval + skew instead of Master_Down_Interval when it
	// hears nobody.
	StartMaster bool
	GARPDelay   time.Duration // second gratuitous burst after becoming master; 0: none
	GARPRefresh time.Duration // periodic gratuitous burst while master; 0: none
	// FastHandover (halb's fast_handover): on a priority-0 advert a backup takes over at once
	// instead of after Skew_Time. Skew_Time lets the best of several backups win; in a two-node
	// pair there is only one, and the planned handover drops from Skew_Time to about zero.
	FastHandover bool
	// GARPLowerPrio (keepalived's garp_lower_prio_repeat > 0): a master that hears a lower
	// priority master answers with a gratuitous burst (ActGARP LowerPrio), and again after
	// GARPLowerPrioDelay when that is positive (garp_lower_prio_delay). It moves the hosts
	// of the segment back to us after a partition, whichever of the two heard the other first.
	GARPLowerPrio      bool
	GARPLowerPrioDelay time.Duration
	// LowerPrioNoAdvert (lower_prio_no_advert): a master that hears a lower priority master
	// does not answer with an advert at once (RFC behaviour; keepalived answers by default).
	LowerPrioNoAdvert bool
	// HigherPrioSendAdvert (higher_prio_send_advert): a master that hears a higher priority
	// master sends one advert with its own priority before going back to backup, so that the
	// other master, hearing a lower priority, sends its garp_lower_prio_repeat burst.
	HigherPrioSendAdvert bool
}

// EventKind says what happened.
type EventKind uint8

// Events.
const (
	EvStartup     EventKind = iota
	EvShutdown              // stop: a master sends priority 0
	EvTimer                 // the deadline returned by the last Step was reached
	EvAdvert                // a valid advert for this VRID (Src, Priority, Interval)
	EvPriority              // effective priority changed (Priority)
	EvFault                 // fault set (Fault true) or cleared (Fault false), with Cause
	EvForceMaster           // sync group: a member became master
	EvForceBackup           // sync group: a member went back to backup
	// EvHold: the sync group vetoes taking over now (another member still
	// hears a master it must not preempt); a due down timer is re-armed
	// for one interval.
	EvHold
)

// Event is one input of Machine.Step.
type Event struct {
	Kind     EventKind
	Src      netip.Addr
	Priority uint8
	Interval time.Duration
	Fault    bool
	Cause    string
}

// ActionKind says what the shell must do.
type ActionKind uint8

// Actions.
const (
	ActSendAdvert ActionKind = iota // send an advert with Priority
	ActTransition                   // state changed From → To because of Cause
	ActGARP                         // send a gratuitous ARP / unsolicited NA burst
	ActDualMaster                   // another master (Peer, PeerPriority) was seen while master
)

// Action is one output of Machine.Step.
type Action struct {
	Kind         ActionKind
	Priority     uint8
	From, To     State
	Cause        string
	Peer         netip.Addr
	PeerPriority uint8
	Refresh      bool // ActGARP: a periodic refresh burst (garp_master_refresh_repeat)
	LowerPrio    bool // ActGARP: a burst against a lower priority master (garp_lower_prio_repeat)
}

// Machine is the pure VRRP state machine: it never reads the clock and owns
// no sockets. The shell calls Step with the current time and an event and
// arms one timer for the returned deadline (zero: none).
type Machine struct {
	cfg   MachineConfig
	state State
	prio  uint8

	masterInterval time.Duration // Master_Adver_Interval
	masterAddr     netip.Addr    // current master as far as we know
	masterPrio     uint8
	masterSeen     time.Time // last advert we accepted from a master we do not preempt

	adverAt   time.Time // Adver_Timer
	downAt    time.Time // Master_Down_Timer
	downCause string
	garpAt    time.Time // delayed second burst
	refreshAt time.Time // periodic refresh
	lowerAt   time.Time // second burst against a lower priority master
	preemptAt time.Time // preempt_delay: lower-priority masters tolerated until then
}

// NewMachine returns a machine in StateInit.
func NewMachine(cfg MachineConfig) *Machine {
	return &Machine{cfg: cfg, prio: cfg.Priority, masterInterval: cfg.Interval}
}

// Reconfigure replaces the configuration and keeps the state (reload
// without flap). Timers already armed run out; new ones use cfg.
func (m *Machine) Reconfigure(cfg MachineConfig) {
	if m.cfg.Version == 2 || m.state != StateBackup {
		m.masterInterval = cfg.Interval
	}
	m.cfg = cfg
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Priority returns the effective priority.
func (m *Machine) Priority() uint8 { return m.prio }

// Master returns the address and priority of the current master when we are
// backup (zero when unknown).
func (m *Machine) Master() (netip.Addr, uint8) { return m.masterAddr, m.masterPrio }

// MasterInterval returns Master_Adver_Interval (learned from the master in v3).
func (m *Machine) MasterInterval() time.Duration { return m.masterInterval }

// SkewTime returns Skew_Time for the current priority and master interval.
// v3: ((256-prio) × Master_Adver_Interval in centiseconds) / 256 centiseconds;
// v2: (256-prio)/256 seconds (computed in microseconds, as keepalived).
func (m *Machine) SkewTime() time.Duration {
	p := 256 - int64(m.prio)
	if m.cfg.Version == 2 {
		return time.Duration(p*1_000_000/256) * time.Microsecond
	}
	cs := int64(m.masterInterval / (10 * time.Millisecond))
	return time.Duration(p*cs/256) * 10 * time.Millisecond
}

// MasterDownInterval returns 3 × Master_Adver_Interval + Skew_Time.
func (m *Machine) MasterDownInterval() time.Duration {
	return 3*m.masterInterval + m.SkewTime()
}

func (m *Machine) owner() bool { return m.cfg.Priority == 255 }

// DownDue reports whether, in Backup, the Master_Down_Timer has expired at now.
func (m *Machine) DownDue(now time.Time) bool {
	return m.state == StateBackup && !m.downAt.IsZero() && !now.Before(m.downAt)
}

// HoldUntil is, in Backup, the time until which we keep hearing a master
// we must not preempt (last accepted advert + Master_Down_Interval); zero
// otherwise. Sync groups use it to keep their members together.
func (m *Machine) HoldUntil() time.Time {
	if m.state != StateBackup || m.masterSeen.IsZero() {
		return time.Time{}
	}
	return m.masterSeen.Add(m.MasterDownInterval())
}

// Step feeds one event at time now and returns the actions to perform, in
// order, and the next deadline (zero: no timer).
func (m *Machine) Step(now time.Time, ev Event) ([]Action, time.Time) {
	var acts []Action
	switch ev.Kind {
	case EvStartup:
		if m.state == StateInit || m.state == StateStop {
			acts = m.startup(now, acts)
		}
	case EvShutdown:
		acts = m.shutdown(acts)
	case EvTimer:
		acts = m.timer(now, acts)
	case EvAdvert:
		acts = m.advert(now, ev, acts)
	case EvPriority:
		old := m.prio
		m.prio = ev.Priority
		if m.state == StateMaster && old != m.prio {
			acts = append(acts, Action{Kind: ActSendAdvert, Priority: m.prio})
			m.adverAt = now.Add(m.cfg.Interval)
		}
	case EvFault:
		acts = m.fault(now, ev, acts)
	case EvForceMaster:
		if m.state == StateBackup {
			acts = m.becomeMaster(now, ev.Cause, acts)
		}
	case EvForceBackup:
		if m.state == StateMaster {
			acts = append(acts, Action{Kind: ActSendAdvert, Priority: 0})
			acts = m.becomeBackup(now, m.cfg.Interval, ev.Cause, acts)
		}
	case EvHold:
		if m.DownDue(now) {
			m.downAt = now.Add(m.masterInterval)
		}
	}
	return acts, m.deadline()
}

func (m *Machine) startup(now time.Time, acts []Action) []Action {
	if m.owner() && m.prio == 255 {
		return m.becomeMaster(now, "address owner (priority 255)", acts)
	}
	acts = m.becomeBackup(now, m.cfg.Interval, "startup", acts)
	if m.cfg.StartMaster {
		m.downAt = now.Add(m.cfg.Interval + m.SkewTime())
		m.downCause = "no master heard after startup (state MASTER)"
	}
	return acts
}

func (m *Machine) shutdown(acts []Action) []Action {
	if m.state == StateMaster {
		acts = append(acts, Action{Kind: ActSendAdvert, Priority: 0})
	}
	if m.state != StateStop {
		acts = append(acts, Action{Kind: ActTransition, From: m.state, To: StateStop, Cause: "shutdown"})
	}
	m.state = StateStop
	m.clearTimers()
	return acts
}

func (m *Machine) clearTimers() {
	m.adverAt, m.downAt, m.garpAt, m.refreshAt, m.lowerAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
}

func (m *Machine) becomeMaster(now time.Time, cause string, acts []Action) []Action {
	from := m.state
	m.state = StateMaster
	m.clearTimers()
	m.masterAddr, m.masterPrio = m.cfg.Primary, m.prio
	m.preemptAt = time.Time{}
	acts = append(acts,
		Action{Kind: ActTransition, From: from, To: StateMaster, Cause: cause},
		Action{Kind: ActSendAdvert, Priority: m.prio},
		Action{Kind: ActGARP})
	m.adverAt = now.Add(m.cfg.Interval)
	if m.cfg.GARPDelay > 0 {
		m.garpAt = now.Add(m.cfg.GARPDelay)
	}
	if m.cfg.GARPRefresh > 0 {
		m.refreshAt = now.Add(m.cfg.GARPRefresh)
	}
	return acts
}

func (m *Machine) becomeBackup(now time.Time, masterInterval time.Duration, cause string, acts []Action) []Action {
	from := m.state
	m.state = StateBackup
	m.clearTimers()
	m.preemptAt = time.Time{}
	m.masterSeen = time.Time{}
	if m.cfg.Version == 3 {
		m.masterInterval = masterInterval
	}
	m.downAt = now.Add(m.MasterDownInterval())
	m.downCause = "master down timer expired"
	if from != StateBackup {
		acts = append(acts, Action{Kind: ActTransition, From: from, To: StateBackup, Cause: cause})
	}
	return acts
}

func (m *Machine) timer(now time.Time, acts []Action) []Action {
	switch m.state {
	case StateBackup:
		if !m.downAt.IsZero() && !now.Before(m.downAt) {
			return m.becomeMaster(now, m.downCause, acts)
		}
	case StateMaster:
		if !m.adverAt.IsZero() && !now.Before(m.adverAt) {
			acts = append(acts, Action{Kind: ActSendAdvert, Priority: m.prio})
			m.adverAt = now.Add(m.cfg.Interval)
		}
		if !m.garpAt.IsZero() && !now.Before(m.garpAt) {
			acts = append(acts, Action{Kind: ActGARP})
			m.garpAt = time.Time{}
		}
		if !m.refreshAt.IsZero() && !now.Before(m.refreshAt) {
			acts = append(acts, Action{Kind: ActGARP, Refresh: true})
			m.refreshAt = now.Add(m.cfg.GARPRefresh)
		}
		if !m.lowerAt.IsZero() && !now.Before(m.lowerAt) {
			acts = append(acts, Action{Kind: ActGARP, LowerPrio: true})
			m.lowerAt = time.Time{}
		}
	}
	return acts
}

// higher reports whether an advert (prio, src) beats us in the Master state.
func (m *Machine) higher(prio uint8, src netip.Addr) bool {
	if prio != m.prio {
		return prio > m.prio
	}
	return src.Compare(m.cfg.Primary) > 0
}

func (m *Machine) advert(now time.Time, ev Event, acts []Action) []Action {
	switch m.state {
	case StateBackup:
		if ev.Priority == 0 {
			m.downAt = now.Add(m.SkewTime())
			if m.cfg.FastHandover {
				m.downAt = now
			}
			m.downCause = fmt.Sprintf("master %v stepped down (priority 0)", ev.Src)
			m.masterAddr, m.masterPrio = netip.Addr{}, 0
			m.masterSeen = time.Time{}
			return acts
		}
		tolerate := false
		if !m.cfg.NoPreempt && ev.Priority < m.prio && m.cfg.PreemptDelay > 0 {
			if m.preemptAt.IsZero() {
				m.preemptAt = now.Add(m.cfg.PreemptDelay)
			}
			tolerate = now.Before(m.preemptAt)
		}
		if m.cfg.NoPreempt || ev.Priority >= m.prio || tolerate {
			if m.cfg.Version == 3 && ev.Interval > 0 {
				m.masterInterval = ev.Interval
			}
			m.downAt = now.Add(m.MasterDownInterval())
			m.downCause = "master down timer expired"
			m.masterAddr, m.masterPrio = ev.Src, ev.Priority
			m.masterSeen = now
			return acts
		}
		// Preempt: ignore the lower-priority master; our down timer fires.
		m.downCause = fmt.Sprintf("preempting lower priority master %v (prio %d)", ev.Src, ev.Priority)
		m.masterAddr, m.masterPrio = ev.Src, ev.Priority
	case StateMaster:
		if ev.Priority == 0 {
			acts = append(acts, Action{Kind: ActSendAdvert, Priority: m.prio})
			m.adverAt = now.Add(m.cfg.Interval)
			return acts
		}
		if m.higher(ev.Priority, ev.Src) {
			cause := fmt.Sprintf("higher priority advert from %v (prio %d)", ev.Src, ev.Priority)
			if ev.Priority == m.prio {
				cause = fmt.Sprintf("equal priority advert from higher address %v (prio %d)", ev.Src, ev.Priority)
			}
			ivl := ev.Interval
			if ivl <= 0 {
				ivl = m.cfg.Interval
			}
			if m.cfg.HigherPrioSendAdvert {
				acts = append(acts, Action{Kind: ActSendAdvert, Priority: m.prio})
			}
			acts = m.becomeBackup(now, ivl, cause, acts)
			m.masterAddr, m.masterPrio = ev.Src, ev.Priority
			m.masterSeen = now
			return acts
		}
		// Two masters and we stay: report, assert ourselves at once (keepalived does unless
		// lower_prio_no_advert), and move the segment's neighbour caches back to us: the other
		// master may have announced itself last, and it may not hear us for a while yet.
		acts = append(acts, Action{Kind: ActDualMaster, Peer: ev.Src, PeerPriority: ev.Priority})
		if !m.cfg.LowerPrioNoAdvert {
			acts = append(acts, Action{Kind: ActSendAdvert, Priority: m.prio})
			m.adverAt = now.Add(m.cfg.Interval)
		}
		if m.cfg.GARPLowerPrio {
			acts = append(acts, Action{Kind: ActGARP, LowerPrio: true})
			if m.cfg.GARPLowerPrioDelay > 0 {
				m.lowerAt = now.Add(m.cfg.GARPLowerPrioDelay)
			}
		}
	}
	return acts
}

func (m *Machine) fault(now time.Time, ev Event, acts []Action) []Action {
	if ev.Fault {
		switch m.state {
		case StateFault, StateStop, StateInit:
			if m.state == StateInit {
				acts = append(acts, Action{Kind: ActTransition, From: m.state, To: StateFault, Cause: ev.Cause})
				m.state = StateFault
			}
			return acts
		case StateMaster:
			acts = append(acts, Action{Kind: ActSendAdvert, Priority: 0})
		}
		acts = append(acts, Action{Kind: ActTransition, From: m.state, To: StateFault, Cause: ev.Cause})
		m.state = StateFault
		m.clearTimers()
		return acts
	}
	if m.state != StateFault {
		return acts
	}
	if m.owner() && m.prio == 255 {
		return m.becomeMaster(now, ev.Cause, acts)
	}
	return m.becomeBackup(now, m.cfg.Interval, ev.Cause, acts)
}

func (m *Machine) deadline() time.Time {
	var d time.Time
	for _, t := range []time.Time{m.adverAt, m.downAt, m.garpAt, m.refreshAt, m.lowerAt} {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}
