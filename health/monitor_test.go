package health

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// clock drives a Monitor like the Scheduler does: each attempt starts at
// the Monitor's Next and takes dur.
type drive struct {
	t   *testing.T
	m   *Monitor
	now time.Time
}

func (d *drive) step(ok bool, reason string, dur time.Duration) *Transition {
	d.t.Helper()
	start := d.m.Next()
	if start.Before(d.now) {
		d.t.Fatalf("next %v is before now %v", start, d.now)
	}
	d.now = start.Add(dur)
	tr, next := d.m.Observe(d.now, Result{OK: ok, Reason: reason, Duration: dur})
	if next != d.m.Next() {
		d.t.Fatalf("Observe returned next %v, Next() = %v", next, d.m.Next())
	}
	return tr
}

func newDrive(t *testing.T, tg Target) *drive {
	return &drive{t: t, m: NewMonitor(tg, t0, 0), now: t0}
}

func TestMonitorKeepalivedRetry(t *testing.T) {
	// delay_loop 6, connect_timeout 3, retry 3, delay_before_retry 3.
	tm := Timing{DelayLoop: 6 * time.Second, ConnectTimeout: 3 * time.Second, Retry: 3, DelayBeforeRetry: 3 * time.Second}
	d := newDrive(t, Target{ID: "rs", Timing: tm, Weight: 1})
	if !d.m.Up() {
		t.Fatal("non-alpha target must start up")
	}
	if tr := d.step(true, "", 10*time.Millisecond); tr != nil {
		t.Fatalf("pass while up: unexpected %+v", tr)
	}
	if got, want := d.m.Next(), t0.Add(6*time.Second); !got.Equal(want) {
		t.Fatalf("next after pass = %v, want fixed rate %v", got, want)
	}
	// Server dies: 3 retries keep it up, the 4th failure takes it down.
	for i := range 3 {
		before := d.now
		if tr := d.step(false, "connection refused", time.Millisecond); tr != nil {
			t.Fatalf("failure %d: went down before retries were used: %+v", i+1, tr)
		}
		if i > 0 {
			if gap := d.now.Add(-time.Millisecond).Sub(before); gap != 3*time.Second {
				t.Fatalf("retry %d started %v after the previous attempt ended, want delay_before_retry 3s", i, gap)
			}
		}
	}
	tr := d.step(false, "connection refused", time.Millisecond)
	if tr == nil || tr.Kind != KindDown || tr.Up || tr.Reason != "connection refused" || tr.ID != "rs" {
		t.Fatalf("4th failure: got %+v, want DOWN with reason", tr)
	}
	// The check (4 attempts) ran longer than delay_loop: next one at once.
	if !d.m.Next().Equal(d.now) {
		t.Fatalf("next = %v, want now", d.m.Next())
	}
	// Down: no retries, next check a delay_loop after the check began.
	if tr := d.step(false, "connection refused", time.Millisecond); tr != nil {
		t.Fatalf("failure while down: %+v", tr)
	}
	checkStart := d.now.Add(-time.Millisecond)
	if tr := d.step(false, "connection refused", time.Millisecond); tr != nil {
		t.Fatalf("failure while down: %+v", tr)
	}
	if got := d.now.Add(-time.Millisecond).Sub(checkStart); got != 6*time.Second {
		t.Fatalf("down target rechecked after %v, want delay_loop", got)
	}
	tr = d.step(true, "", time.Millisecond)
	if tr == nil || tr.Kind != KindUp || !tr.Up {
		t.Fatalf("pass while down: got %+v, want UP", tr)
	}
}

func TestMonitorRiseFall(t *testing.T) {
	tm := Timing{DelayLoop: time.Second, Rise: 3, Fall: 2}
	d := newDrive(t, Target{ID: "rs", Timing: tm})
	if tr := d.step(false, "timeout", time.Millisecond); tr != nil {
		t.Fatalf("first failed check with fall 2: %+v", tr)
	}
	if tr := d.step(true, "", time.Millisecond); tr != nil {
		t.Fatalf("pass: %+v", tr)
	}
	if tr := d.step(false, "timeout", time.Millisecond); tr != nil {
		t.Fatal("a pass must reset the fall count")
	}
	if tr := d.step(false, "status 503 (GET /)", time.Millisecond); tr == nil || tr.Kind != KindDown || tr.Reason != "status 503 (GET /)" {
		t.Fatalf("second consecutive failure: %+v", tr)
	}
	for i := range 2 {
		if tr := d.step(true, "", time.Millisecond); tr != nil {
			t.Fatalf("pass %d of rise 3: %+v", i+1, tr)
		}
	}
	if tr := d.step(false, "timeout", time.Millisecond); tr != nil {
		t.Fatalf("failure while down: %+v", tr)
	}
	for i := range 2 {
		if tr := d.step(true, "", time.Millisecond); tr != nil {
			t.Fatalf("a failure must reset the rise count (pass %d): %+v", i+1, tr)
		}
	}
	tr := d.step(true, "", time.Millisecond)
	if tr == nil || tr.Kind != KindUp || !strings.Contains(tr.Reason, "3 consecutive") {
		t.Fatalf("third consecutive pass: %+v", tr)
	}
}

func TestMonitorAlpha(t *testing.T) {
	d := newDrive(t, Target{ID: "rs", Timing: Timing{DelayLoop: time.Second, Retry: 5, Alpha: true}})
	if d.m.Up() {
		t.Fatal("alpha target must start down")
	}
	if in := d.m.Initial(t0); in.Kind != KindInitial || in.Up {
		t.Fatalf("initial: %+v", in)
	}
	// Down: a failure is not retried (next is delay_loop, not delay_before_retry).
	d.step(false, "connection refused", 0)
	if got := d.m.Next().Sub(d.now); got != time.Second {
		t.Fatalf("alpha target retried after %v", got)
	}
	if tr := d.step(true, "", 0); tr == nil || tr.Kind != KindUp {
		t.Fatalf("alpha: first pass must bring it up, got %+v", tr)
	}
}

func TestMonitorSlowCheckFixedRate(t *testing.T) {
	d := newDrive(t, Target{Timing: Timing{DelayLoop: time.Second}})
	d.step(true, "", 300*time.Millisecond)
	if got := d.m.Next(); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("next = %v, want start + delay_loop", got)
	}
	// A check longer than delay_loop: next right after it, never overlapping.
	d.step(true, "", 1500*time.Millisecond)
	if got := d.m.Next(); !got.Equal(d.now) {
		t.Fatalf("next = %v, want now %v", got, d.now)
	}
}

func TestMonitorDynamicWeightAndInhibit(t *testing.T) {
	m := NewMonitor(Target{ID: "rs", Weight: 5, Inhibit: true, Timing: Timing{DelayLoop: time.Second}}, t0, 0)
	now := t0
	obs := func(r Result) *Transition {
		now = m.Next().Add(r.Duration)
		tr, _ := m.Observe(now, r)
		return tr
	}
	if tr := obs(Result{OK: true, Weight: 5, HasWeight: true}); tr != nil {
		t.Fatalf("same weight: %+v", tr)
	}
	tr := obs(Result{OK: true, Weight: 9, HasWeight: true})
	if tr == nil || tr.Kind != KindWeight || tr.Weight != 9 || !tr.Up {
		t.Fatalf("weight change: %+v", tr)
	}
	tr = obs(Result{Reason: "script exit 1"})
	if tr == nil || tr.Kind != KindDown || !tr.Inhibit || tr.Weight != 9 {
		t.Fatalf("down with inhibit: %+v", tr)
	}
	if m.Weight() != 9 {
		t.Fatalf("dynamic weight must stick: %d", m.Weight())
	}
}

func TestMonitorPassiveFail(t *testing.T) {
	d := newDrive(t, Target{ID: "rs", Timing: Timing{DelayLoop: time.Second, Retry: 2}})
	d.step(false, "timeout", 0) // one retry in progress
	next := d.m.Next()
	tr := d.m.PassiveFail(d.now, "passive: 3 consecutive connect failures")
	if tr == nil || tr.Kind != KindDown || tr.Reason != "passive: 3 consecutive connect failures" {
		t.Fatalf("passive: %+v", tr)
	}
	if d.m.PassiveFail(d.now, "again") != nil {
		t.Fatal("passive fail of a down target must not report again")
	}
	if !d.m.Next().Equal(next) {
		t.Fatal("passive fail must keep the schedule")
	}
	if tr := d.step(true, "", 0); tr == nil || tr.Kind != KindUp {
		t.Fatalf("next passing check must bring it up: %+v", tr)
	}
}

func TestDetectionBound(t *testing.T) {
	tm := Timing{DelayLoop: 6 * time.Second, ConnectTimeout: 3 * time.Second, Retry: 3, DelayBeforeRetry: 3 * time.Second}
	// 6 + 4*3 + 3*3 = 27s
	if got := tm.DetectionBound(0); got != 27*time.Second {
		t.Fatalf("bound = %v, want 27s", got)
	}
	tm.Fall = 2
	// round = 21s > delay_loop: 6 + 21 + 21
	if got := tm.DetectionBound(0); got != 48*time.Second {
		t.Fatalf("bound fall 2 = %v, want 48s", got)
	}
}

// TestMonitorDetectionWithinBound drives worst cases through the pure core
// and checks the DOWN transition never comes later than DetectionBound.
func TestMonitorDetectionWithinBound(t *testing.T) {
	for _, tm := range []Timing{
		{DelayLoop: 6 * time.Second, ConnectTimeout: 3 * time.Second, Retry: 3, DelayBeforeRetry: 3 * time.Second},
		{DelayLoop: time.Second, ConnectTimeout: 2 * time.Second, Retry: 1, Fall: 3},
		{DelayLoop: 2 * time.Second, ConnectTimeout: 500 * time.Millisecond, Fall: 2},
	} {
		bound := tm.DetectionBound(0)
		for _, deathAfter := range []time.Duration{0, time.Millisecond, tm.DelayLoop / 2, tm.DelayLoop - time.Millisecond} {
			d := newDrive(t, Target{Timing: tm})
			d.step(true, "", 0)
			death := t0.Add(deathAfter)
			var down time.Time
			for range 100 {
				start := d.m.Next()
				ok := start.Before(death)
				dur := time.Duration(0)
				if !ok {
					dur = tm.withDefaults().ConnectTimeout // worst case: every attempt times out
				}
				if tr := d.step(ok, "timeout", dur); tr != nil && tr.Kind == KindDown {
					down = tr.At
					break
				}
			}
			if down.IsZero() {
				t.Fatalf("%+v: never went down", tm)
			}
			if got := down.Sub(death); got > bound {
				t.Fatalf("%+v death at +%v: detected after %v > bound %v", tm, deathAfter, got, bound)
			}
		}
	}
}
