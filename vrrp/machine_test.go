package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	t0    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	me    = netip.MustParseAddr("198.18.0.2")
	peerL = netip.MustParseAddr("198.18.0.1") // lower address than me
	peerH = netip.MustParseAddr("198.18.0.3") // higher address than me
	us    = time.Microsecond
)

// run is a tiny driver: it keeps the fake clock and the last deadline.
type run struct {
	t        *testing.T
	m        *Machine
	deadline time.Time
}

func newRun(t *testing.T, cfg MachineConfig) *run {
	if cfg.Primary == (netip.Addr{}) {
		cfg.Primary = me
	}
	return &run{t: t, m: NewMachine(cfg)}
}

func (r *run) step(at time.Duration, ev Event) []Action {
	r.t.Helper()
	acts, d := r.m.Step(t0.Add(at), ev)
	r.deadline = d
	return acts
}

// fire advances to the current deadline and delivers the timer event.
func (r *run) fire() (time.Duration, []Action) {
	r.t.Helper()
	if r.deadline.IsZero() {
		r.t.Fatal("no deadline armed")
	}
	at := r.deadline.Sub(t0)
	return at, r.step(at, Event{Kind: EvTimer})
}

func (r *run) wantState(s State) {
	r.t.Helper()
	if r.m.State() != s {
		r.t.Fatalf("state %v, want %v", r.m.State(), s)
	}
}

func (r *run) wantDeadline(at time.Duration) {
	r.t.Helper()
	if got := r.deadline.Sub(t0); r.deadline.IsZero() || got != at {
		r.t.Fatalf("deadline %v, want %v", got, at)
	}
}

func kinds(acts []Action) string {
	var s []string
	for _, a := range acts {
		switch a.Kind {
		case ActSendAdvert:
			s = append(s, "advert:"+itoa(int(a.Priority)))
		case ActTransition:
			s = append(s, a.From.String()+">"+a.To.String())
		case ActGARP:
			switch {
			case a.LowerPrio:
				s = append(s, "garp-lower")
			case a.Refresh:
				s = append(s, "garp-refresh")
			default:
				s = append(s, "garp")
			}
		case ActDualMaster:
			s = append(s, "dual:"+a.Peer.String())
		}
	}
	return strings.Join(s, " ")
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func want(t *testing.T, acts []Action, w string) {
	t.Helper()
	if got := kinds(acts); got != w {
		t.Fatalf("actions %q, want %q", got, w)
	}
}

func cause(acts []Action) string {
	for _, a := range acts {
		if a.Kind == ActTransition {
			return a.Cause
		}
	}
	return ""
}

func TestSkewAndMasterDown(t *testing.T) {
	cases := []struct {
		v          int
		prio       uint8
		ivl        time.Duration
		skew, down time.Duration
	}{
		{2, 100, time.Second, 609375 * us, 3609375 * us},
		{2, 254, time.Second, 7812 * us, 3007812 * us},
		{2, 1, 3 * time.Second, 996093 * us, 9996093 * us},
		{3, 100, time.Second, 600 * time.Millisecond, 3600 * time.Millisecond},
		{3, 100, 100 * time.Millisecond, 60 * time.Millisecond, 360 * time.Millisecond},
		{3, 254, 100 * time.Millisecond, 0, 300 * time.Millisecond},
		{3, 1, 40950 * time.Millisecond, 40790 * time.Millisecond, 163640 * time.Millisecond},
	}
	for _, c := range cases {
		m := NewMachine(MachineConfig{Version: c.v, Priority: c.prio, Interval: c.ivl})
		if m.SkewTime() != c.skew || m.MasterDownInterval() != c.down {
			t.Errorf("v%d prio %d ivl %v: skew %v down %v, want %v %v", c.v, c.prio, c.ivl, m.SkewTime(), m.MasterDownInterval(), c.skew, c.down)
		}
	}
}

func TestInitBackupMaster(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 2, Priority: 100, Interval: time.Second})
	r.wantState(StateInit)
	want(t, r.step(0, Event{Kind: EvStartup}), "INIT>BACKUP")
	r.wantDeadline(3609375 * us)
	at, acts := r.fire()
	want(t, acts, "BACKUP>MASTER advert:100 garp")
	if c := cause(acts); c != "master down timer expired" {
		t.Fatalf("cause %q", c)
	}
	r.wantDeadline(at + time.Second)
	_, acts = r.fire()
	want(t, acts, "advert:100")
	r.wantDeadline(at + 2*time.Second)
	// A timer event before the deadline does nothing.
	want(t, r.step(at+1500*time.Millisecond, Event{Kind: EvTimer}), "")
	r.wantDeadline(at + 2*time.Second)
}

func TestOwnerStartsMaster(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 3, Priority: 255, Interval: 100 * time.Millisecond})
	acts := r.step(0, Event{Kind: EvStartup})
	want(t, acts, "INIT>MASTER advert:255 garp")
	if c := cause(acts); !strings.Contains(c, "owner") {
		t.Fatalf("cause %q", c)
	}
	r.wantDeadline(100 * time.Millisecond)
}

func TestStartMasterHint(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 3, Priority: 100, Interval: time.Second, StartMaster: true})
	r.step(0, Event{Kind: EvStartup})
	r.wantState(StateBackup)
	r.wantDeadline(1600 * time.Millisecond)
}

func TestBackupAdverts(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 3, Priority: 100, Interval: time.Second})
	r.step(0, Event{Kind: EvStartup})
	r.wantDeadline(3600 * time.Millisecond)
	// Higher priority master with 0.5 s interval: learned (v3), timer reset.
	want(t, r.step(time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 150, Interval: 500 * time.Millisecond}), "")
	if r.m.MasterInterval() != 500*time.Millisecond {
		t.Fatalf("master interval %v", r.m.MasterInterval())
	}
	// skew = 156*50/256 = 30 cs
	r.wantDeadline(time.Second + 1500*time.Millisecond + 300*time.Millisecond)
	if a, p := r.m.Master(); a != peerL || p != 150 {
		t.Fatalf("master %v %d", a, p)
	}
	// Equal priority also resets (RFC: priority >= local).
	r.step(2*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 100, Interval: 500 * time.Millisecond})
	r.wantDeadline(2*time.Second + 1800*time.Millisecond)
	// Priority 0: Master_Down_Timer = Skew_Time.
	acts := r.step(3*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 0, Interval: 500 * time.Millisecond})
	want(t, acts, "")
	r.wantDeadline(3*time.Second + 300*time.Millisecond)
	_, acts = r.fire()
	want(t, acts, "BACKUP>MASTER advert:100 garp")
	if c := cause(acts); !strings.Contains(c, "stepped down (priority 0)") || !strings.Contains(c, peerL.String()) {
		t.Fatalf("cause %q", c)
	}
	// As master we advertise at our own interval, not the learned one.
	r.wantDeadline(3*time.Second + 300*time.Millisecond + time.Second)
}

// TestFastHandover: with fast_handover a backup takes over at once on a priority-0 advert
// instead of after Skew_Time; without it (above) it waits Skew_Time.
func TestFastHandover(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 2, Priority: 100, Interval: time.Second, FastHandover: true})
	r.step(0, Event{Kind: EvStartup})
	r.step(time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 150, Interval: time.Second})
	r.wantDeadline(time.Second + 3*time.Second + 609375*time.Microsecond)
	want(t, r.step(2*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 0, Interval: time.Second}), "")
	r.wantDeadline(2 * time.Second)
	at, acts := r.fire()
	want(t, acts, "BACKUP>MASTER advert:100 garp")
	if at != 2*time.Second {
		t.Fatalf("took over at %v, want at once (2s)", at)
	}
}

func TestV2DoesNotLearnInterval(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 2, Priority: 100, Interval: time.Second})
	r.step(0, Event{Kind: EvStartup})
	r.step(time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 200, Interval: 2 * time.Second})
	r.wantDeadline(time.Second + 3609375*us)
}

func TestPreemptLowerMaster(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 2, Priority: 200, Interval: time.Second})
	r.step(0, Event{Kind: EvStartup})
	down := 3*time.Second + 218750*us // skew 56/256 s
	r.wantDeadline(down)
	// Lower priority adverts are ignored: the down timer is not reset.
	r.step(time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 100, Interval: time.Second})
	r.step(2*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 100, Interval: time.Second})
	r.wantDeadline(down)
	_, acts := r.fire()
	want(t, acts, "BACKUP>MASTER advert:200 garp")
	if c := cause(acts); !strings.Contains(c, "preempting lower priority master 198.18.0.1 (prio 100)") {
		t.Fatalf("cause %q", c)
	}
}

func TestNoPreempt(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 2, Priority: 200, Interval: time.Second, NoPreempt: true})
	r.step(0, Event{Kind: EvStartup})
	r.step(time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 100, Interval: time.Second})
	r.wantDeadline(time.Second + 3*time.Second + 218750*us)
	r.wantState(StateBackup)
}

func TestPreemptDelay(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 3, Priority: 200, Interval: time.Second, PreemptDelay: 5 * time.Second})
	r.step(0, Event{Kind: EvStartup})
	// skew = 56*100/256 = 21 cs; down = 3.21 s
	for s := time.Duration(1); s <= 5; s++ {
		r.step(s*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 100, Interval: time.Second})
		r.wantDeadline(s*time.Second + 3210*time.Millisecond)
	}
	// At 6 s the delay (counted from the first lower advert at 1 s) is over:
	// the advert at 6 s is ignored and the timer armed at 5 s fires.
	r.step(6*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 100, Interval: time.Second})
	r.wantDeadline(5*time.Second + 3210*time.Millisecond)
	_, acts := r.fire()
	want(t, acts, "BACKUP>MASTER advert:200 garp")
}

func master(t *testing.T, cfg MachineConfig) *run {
	t.Helper()
	r := newRun(t, cfg)
	r.step(0, Event{Kind: EvStartup})
	r.fire()
	r.wantState(StateMaster)
	return r
}

func TestMasterAdverts(t *testing.T) {
	cfg := MachineConfig{Version: 3, Priority: 100, Interval: time.Second}
	start := 3600 * time.Millisecond

	t.Run("higher priority", func(t *testing.T) {
		r := master(t, cfg)
		acts := r.step(start+100*time.Millisecond, Event{Kind: EvAdvert, Src: peerL, Priority: 110, Interval: 2 * time.Second})
		want(t, acts, "MASTER>BACKUP")
		if c := cause(acts); c != "higher priority advert from 198.18.0.1 (prio 110)" {
			t.Fatalf("cause %q", c)
		}
		// learned interval 2 s: 3×2 + 156*200/256 cs (121 cs) = 7.21 s
		r.wantDeadline(start + 100*time.Millisecond + 7210*time.Millisecond)
	})
	t.Run("equal priority higher address", func(t *testing.T) {
		r := master(t, cfg)
		acts := r.step(start+time.Millisecond, Event{Kind: EvAdvert, Src: peerH, Priority: 100, Interval: time.Second})
		want(t, acts, "MASTER>BACKUP")
		if c := cause(acts); !strings.Contains(c, "equal priority advert from higher address 198.18.0.3") {
			t.Fatalf("cause %q", c)
		}
	})
	t.Run("equal priority lower address", func(t *testing.T) {
		r := master(t, cfg)
		acts := r.step(start+time.Millisecond, Event{Kind: EvAdvert, Src: peerL, Priority: 100, Interval: time.Second})
		want(t, acts, "dual:198.18.0.1 advert:100")
		r.wantState(StateMaster)
		r.wantDeadline(start + time.Millisecond + time.Second)
	})
	t.Run("lower priority", func(t *testing.T) {
		r := master(t, cfg)
		acts := r.step(start+time.Millisecond, Event{Kind: EvAdvert, Src: peerH, Priority: 50, Interval: time.Second})
		want(t, acts, "dual:198.18.0.3 advert:100")
		if acts[0].PeerPriority != 50 {
			t.Fatal("peer priority")
		}
	})
	t.Run("priority 0", func(t *testing.T) {
		r := master(t, cfg)
		acts := r.step(start+time.Millisecond, Event{Kind: EvAdvert, Src: peerH, Priority: 0, Interval: time.Second})
		want(t, acts, "advert:100")
		r.wantDeadline(start + time.Millisecond + time.Second)
	})
}

func TestShutdown(t *testing.T) {
	cfg := MachineConfig{Version: 2, Priority: 100, Interval: time.Second}
	r := master(t, cfg)
	want(t, r.step(5*time.Second, Event{Kind: EvShutdown}), "advert:0 MASTER>STOP")
	if !r.deadline.IsZero() {
		t.Fatal("timer left armed after shutdown")
	}
	b := newRun(t, cfg)
	b.step(0, Event{Kind: EvStartup})
	want(t, b.step(time.Second, Event{Kind: EvShutdown}), "BACKUP>STOP")
	want(t, b.step(2*time.Second, Event{Kind: EvShutdown}), "")
	// Restart after stop.
	want(t, b.step(3*time.Second, Event{Kind: EvStartup}), "STOP>BACKUP")
}

func TestFault(t *testing.T) {
	cfg := MachineConfig{Version: 2, Priority: 100, Interval: time.Second}
	r := master(t, cfg)
	acts := r.step(5*time.Second, Event{Kind: EvFault, Fault: true, Cause: "interface eth0 down"})
	want(t, acts, "advert:0 MASTER>FAULT")
	if cause(acts) != "interface eth0 down" || !r.deadline.IsZero() {
		t.Fatal("cause or timer")
	}
	// Adverts and timers are ignored in Fault.
	want(t, r.step(6*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 1}), "")
	want(t, r.step(6*time.Second, Event{Kind: EvFault, Fault: true, Cause: "again"}), "")
	acts = r.step(7*time.Second, Event{Kind: EvFault, Fault: false, Cause: "interface eth0 up"})
	want(t, acts, "FAULT>BACKUP")
	r.wantDeadline(7*time.Second + 3609375*us)

	b := newRun(t, cfg)
	b.step(0, Event{Kind: EvStartup})
	want(t, b.step(time.Second, Event{Kind: EvFault, Fault: true, Cause: "script chk failed"}), "BACKUP>FAULT")
	// Fault clear while not in fault is a no-op.
	m := newRun(t, cfg)
	want(t, m.step(0, Event{Kind: EvFault, Fault: false}), "")
	// Fault before startup.
	want(t, m.step(0, Event{Kind: EvFault, Fault: true, Cause: "x"}), "INIT>FAULT")

	o := newRun(t, MachineConfig{Version: 3, Priority: 255, Interval: time.Second})
	o.step(0, Event{Kind: EvStartup})
	o.step(time.Second, Event{Kind: EvFault, Fault: true, Cause: "down"})
	want(t, o.step(2*time.Second, Event{Kind: EvFault, Fault: false, Cause: "up"}), "FAULT>MASTER advert:255 garp")
}

func TestPriorityChange(t *testing.T) {
	r := master(t, MachineConfig{Version: 3, Priority: 100, Interval: time.Second})
	want(t, r.step(4*time.Second, Event{Kind: EvPriority, Priority: 80}), "advert:80")
	r.wantDeadline(5 * time.Second)
	want(t, r.step(4*time.Second, Event{Kind: EvPriority, Priority: 80}), "")
	if r.m.Priority() != 80 {
		t.Fatal("priority")
	}
	// Now a 90 advert beats us.
	want(t, r.step(4500*time.Millisecond, Event{Kind: EvAdvert, Src: peerL, Priority: 90, Interval: time.Second}), "MASTER>BACKUP")
	// Backup with raised priority preempts the 90 master on its down timer.
	b := newRun(t, MachineConfig{Version: 3, Priority: 80, Interval: time.Second})
	b.step(0, Event{Kind: EvStartup})
	b.step(time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 90, Interval: time.Second})
	want(t, b.step(1500*time.Millisecond, Event{Kind: EvPriority, Priority: 100}), "")
	b.step(2*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 90, Interval: time.Second})
	// skew at 80: 176*100/256 = 68 cs → down at 1 + 3.68
	b.wantDeadline(4680 * time.Millisecond)
	_, acts := b.fire()
	want(t, acts, "BACKUP>MASTER advert:100 garp")
}

func TestGARPTiming(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 3, Priority: 254, Interval: time.Second, GARPDelay: 5 * time.Second, GARPRefresh: 60 * time.Second})
	r.step(0, Event{Kind: EvStartup})
	at, _ := r.fire() // 3 s
	if at != 3*time.Second {
		t.Fatalf("became master at %v", at)
	}
	var garps []time.Duration
	for range 70 {
		now, acts := r.fire()
		for _, a := range acts {
			if a.Kind == ActGARP {
				garps = append(garps, now)
			}
		}
	}
	wantG := []time.Duration{8 * time.Second, 63 * time.Second}
	if len(garps) != 2 || garps[0] != wantG[0] || garps[1] != wantG[1] {
		t.Fatalf("garps at %v, want %v", garps, wantG)
	}
}

func TestSyncForce(t *testing.T) {
	cfg := MachineConfig{Version: 3, Priority: 100, Interval: time.Second}
	b := newRun(t, cfg)
	b.step(0, Event{Kind: EvStartup})
	acts := b.step(time.Second, Event{Kind: EvForceMaster, Cause: "sync group G: VI_2 became MASTER"})
	want(t, acts, "BACKUP>MASTER advert:100 garp")
	acts = b.step(2*time.Second, Event{Kind: EvForceBackup, Cause: "sync group G: VI_2 became BACKUP"})
	want(t, acts, "advert:0 MASTER>BACKUP")
	b.wantDeadline(2*time.Second + 3600*time.Millisecond)
	// Forcing a stopped or faulted machine does nothing.
	b.step(3*time.Second, Event{Kind: EvFault, Fault: true})
	want(t, b.step(3*time.Second, Event{Kind: EvForceMaster}), "")
}

func TestStateStrings(t *testing.T) {
	for s, w := range map[State]string{StateInit: "INIT", StateBackup: "BACKUP", StateMaster: "MASTER", StateFault: "FAULT", StateStop: "STOP", 9: "state(9)"} {
		if s.String() != w {
			t.Errorf("%d: %q", s, s.String())
		}
	}
}

func TestHoldForSyncGroup(t *testing.T) {
	r := newRun(t, MachineConfig{Version: 3, Priority: 100, Interval: time.Second})
	r.step(0, Event{Kind: EvStartup})
	if !r.m.HoldUntil().IsZero() {
		t.Fatal("hold without a master")
	}
	// A higher master heard at 1 s: hold until 1 s + 3.6 s.
	r.step(time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 150, Interval: time.Second})
	if h := r.m.HoldUntil().Sub(t0); h != 4600*time.Millisecond {
		t.Fatalf("hold until %v", h)
	}
	// A lower master (preempted) does not extend the hold.
	r.step(2*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 50, Interval: time.Second})
	if h := r.m.HoldUntil().Sub(t0); h != 4600*time.Millisecond {
		t.Fatalf("hold until %v after a lower advert", h)
	}
	if r.m.DownDue(t0.Add(4599 * time.Millisecond)) {
		t.Fatal("down due early")
	}
	if !r.m.DownDue(t0.Add(4600 * time.Millisecond)) {
		t.Fatal("down not due")
	}
	// A veto re-arms the down timer for one interval.
	want(t, r.step(4600*time.Millisecond, Event{Kind: EvHold}), "")
	r.wantDeadline(5600 * time.Millisecond)
	r.wantState(StateBackup)
	_, acts := r.fire()
	want(t, acts, "BACKUP>MASTER advert:100 garp")
	if !r.m.HoldUntil().IsZero() {
		t.Fatal("hold while master")
	}
	// Priority 0 clears the hold.
	b := newRun(t, MachineConfig{Version: 3, Priority: 100, Interval: time.Second})
	b.step(0, Event{Kind: EvStartup})
	b.step(time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 150, Interval: time.Second})
	b.step(2*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 0, Interval: time.Second})
	if !b.m.HoldUntil().IsZero() {
		t.Fatal("hold after priority 0")
	}
}
