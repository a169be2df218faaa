package vrrp

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

// keepalived 2.2.7's defaults as the shell passes them: garp_lower_prio_repeat = garp_master_repeat
// (5, so on) and garp_lower_prio_delay = garp_master_delay (5 s).
func lowerPrioCfg() MachineConfig {
	return MachineConfig{Version: 3, Priority: 100, Interval: time.Second, GARPLowerPrio: true, GARPLowerPrioDelay: 5 * time.Second}
}

// A master that hears a lower priority master (the asymmetric end of a partition) stays master,
// answers with an advert and a gratuitous burst at once, and a second burst
// garp_lower_prio_delay later, to the microsecond.
func TestLowerPrioMasterGARP(t *testing.T) {
	r := master(t, lowerPrioCfg())
	start := 3600 * time.Millisecond
	heard := start + 250*time.Millisecond + 7*us
	acts := r.step(heard, Event{Kind: EvAdvert, Src: peerH, Priority: 50, Interval: time.Second})
	want(t, acts, "dual:198.18.0.3 advert:100 garp-lower")
	r.wantState(StateMaster)
	// The next timer is the advert one interval after our answer.
	r.wantDeadline(heard + time.Second)
	var lower []time.Duration
	for r.deadline.Sub(t0) <= heard+6*time.Second {
		at, acts := r.fire()
		for _, a := range acts {
			if a.Kind == ActGARP && a.LowerPrio {
				lower = append(lower, at)
			}
		}
	}
	if len(lower) != 1 || lower[0] != heard+5*time.Second {
		t.Fatalf("second lower-priority burst at %v, want [%v]", lower, heard+5*time.Second)
	}
	// One microsecond before it: not yet.
	r2 := master(t, lowerPrioCfg())
	r2.step(heard, Event{Kind: EvAdvert, Src: peerH, Priority: 50, Interval: time.Second})
	for _, a := range r2.step(heard+5*time.Second-us, Event{Kind: EvTimer}) {
		if a.LowerPrio {
			t.Fatal("second burst 1 µs early")
		}
	}
	want(t, r2.step(heard+5*time.Second, Event{Kind: EvTimer}), "garp-lower")
}

// Equal priority from a lower address is "lower" too: we stay master and announce.
func TestLowerPrioEqualLowerAddress(t *testing.T) {
	r := master(t, lowerPrioCfg())
	want(t, r.step(4*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 100, Interval: time.Second}),
		"dual:198.18.0.1 advert:100 garp-lower")
}

// garp_lower_prio_repeat 0: no burst (only the advert); garp_lower_prio_delay 0: no second burst.
func TestLowerPrioOff(t *testing.T) {
	cfg := lowerPrioCfg()
	cfg.GARPLowerPrio = false
	r := master(t, cfg)
	want(t, r.step(4*time.Second, Event{Kind: EvAdvert, Src: peerH, Priority: 50, Interval: time.Second}), "dual:198.18.0.3 advert:100")
	cfg = lowerPrioCfg()
	cfg.GARPLowerPrioDelay = 0
	r = master(t, cfg)
	want(t, r.step(4*time.Second, Event{Kind: EvAdvert, Src: peerH, Priority: 50, Interval: time.Second}), "dual:198.18.0.3 advert:100 garp-lower")
	for range 10 {
		_, acts := r.fire()
		for _, a := range acts {
			if a.LowerPrio {
				t.Fatal("second burst with garp_lower_prio_delay 0")
			}
		}
	}
}

// Leaving master cancels the pending second burst.
func TestLowerPrioCancelledOnBackup(t *testing.T) {
	r := master(t, lowerPrioCfg())
	r.step(4*time.Second, Event{Kind: EvAdvert, Src: peerH, Priority: 50, Interval: time.Second})
	want(t, r.step(4500*time.Millisecond, Event{Kind: EvAdvert, Src: peerH, Priority: 200, Interval: time.Second}), "MASTER>BACKUP")
	// Only the master down timer is armed (4.5 s + 3.6 s), not the burst at 9 s.
	r.wantDeadline(8100 * time.Millisecond)
	want(t, r.step(8*time.Second, Event{Kind: EvTimer}), "")
}

// lower_prio_no_advert: the RFC behaviour, no advert answer; the burst still goes out.
func TestLowerPrioNoAdvert(t *testing.T) {
	cfg := lowerPrioCfg()
	cfg.LowerPrioNoAdvert = true
	r := master(t, cfg)
	want(t, r.step(4*time.Second, Event{Kind: EvAdvert, Src: peerH, Priority: 50, Interval: time.Second}), "dual:198.18.0.3 garp-lower")
	// The regular advert timer is untouched: 3.6 s + 1 s = 4.6 s.
	r.wantDeadline(4600 * time.Millisecond)
}

// higher_prio_send_advert: a master that yields first sends one advert with its own priority.
func TestHigherPrioSendAdvert(t *testing.T) {
	cfg := lowerPrioCfg()
	cfg.HigherPrioSendAdvert = true
	r := master(t, cfg)
	want(t, r.step(4*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 200, Interval: time.Second}), "advert:100 MASTER>BACKUP")
	cfg.HigherPrioSendAdvert = false
	r = master(t, cfg)
	want(t, r.step(4*time.Second, Event{Kind: EvAdvert, Src: peerL, Priority: 200, Interval: time.Second}), "MASTER>BACKUP")
}

// The two ends of the asymmetric heal, machine against machine: A (150) hears B (100) first and
// sends its burst; B, hearing A later, yields. Whoever of the two announced itself last, the
// winner's burst is the last announcement on the segment.
func TestAsymmetricHealMachines(t *testing.T) {
	a := master(t, MachineConfig{Version: 3, Priority: 150, Interval: time.Second, GARPLowerPrio: true, GARPLowerPrioDelay: 5 * time.Second, Primary: peerL})
	b := master(t, MachineConfig{Version: 3, Priority: 100, Interval: time.Second, GARPLowerPrio: true, GARPLowerPrioDelay: 5 * time.Second})
	// B became master during the partition and announced last. A hears B at 10 s.
	acts := a.step(10*time.Second, Event{Kind: EvAdvert, Src: me, Priority: 100, Interval: time.Second})
	want(t, acts, "dual:198.18.0.2 advert:150 garp-lower")
	// B hears A 1.5 s later and yields, without announcing.
	want(t, b.step(11500*time.Millisecond, Event{Kind: EvAdvert, Src: peerL, Priority: 150, Interval: time.Second}), "MASTER>BACKUP")
}

// TestRouterLowerPrioBurst: the shell sends garp_lower_prio_repeat announcements per VIP when the
// machine asks, at once and garp_lower_prio_delay later (fake clock).
func TestRouterLowerPrioBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		cfg := fakeCfg(150)
		cfg.Instances[0].GARPDelay = 0
		cfg.Instances[0].GARPLowerPrioRepeat = 7
		cfg.Instances[0].GARPLowerPrioDelay = 3 * time.Second
		a := newFakeNode(t, w, "198.18.0.1", cfg)
		a.start(t)
		eventually(t, "master", func() bool { return a.state() == StateMaster })
		announced := func() int { a.addr.mu.Lock(); defer a.addr.mu.Unlock(); return a.addr.announce }
		before := announced()
		inj := w.open(netip.MustParseAddr("198.18.0.9"))
		low := Advert{Version: 3, VRID: 51, Priority: 50, Interval: 20 * time.Millisecond, Addrs: []netip.Addr{vipP.Addr()}}
		b, _ := low.Marshal(inj.src, GroupV4())
		inj.Send(b, GroupV4())
		synctest.Wait()
		if got := announced() - before; got != 7 {
			t.Fatalf("announcements after the lower priority master: %d, want 7", got)
		}
		if a.state() != StateMaster {
			t.Fatal("gave up to a lower priority master")
		}
		<-time.After(3*time.Second - time.Millisecond) // fake clock: just before the second burst
		synctest.Wait()
		if got := announced() - before; got != 7 {
			t.Fatalf("second burst early: %d", got)
		}
		<-time.After(2 * time.Millisecond) // fake clock
		synctest.Wait()
		if got := announced() - before; got != 14 {
			t.Fatalf("after garp_lower_prio_delay: %d announcements, want 14", got)
		}
	})
}
