package health

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap/zaptest"
)

// fakeChecker answers from a switchable verdict; it records its calls and
// whether two ever overlapped. With hang set it blocks until its deadline.
type fakeChecker struct {
	mu         sync.Mutex
	name       string
	ok         bool
	reason     string
	weight     int
	hasWeight  bool
	hang       bool
	running    int
	overlapped bool
	starts     []time.Time
	deadlines  []time.Duration
}

func (f *fakeChecker) set(ok bool, reason string) {
	f.mu.Lock()
	f.ok, f.reason = ok, reason
	f.mu.Unlock()
}

func (f *fakeChecker) Check(ctx context.Context) Result {
	start := time.Now()
	f.mu.Lock()
	f.running++
	if f.running > 1 {
		f.overlapped = true
	}
	f.starts = append(f.starts, start)
	if dl, ok := ctx.Deadline(); ok {
		f.deadlines = append(f.deadlines, dl.Sub(start))
	}
	r := Result{OK: f.ok, Reason: f.reason, Weight: f.weight, HasWeight: f.hasWeight}
	hang := f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		r = Result{Reason: "timeout"}
	}
	f.mu.Lock()
	f.running--
	f.mu.Unlock()
	r.Duration = time.Since(start)
	return r
}

func (f *fakeChecker) String() string { return "FAKE " + f.name }

func (f *fakeChecker) startTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.starts)
}

// recorder collects transitions and quorum changes.
type recorder struct {
	mu     sync.Mutex
	trs    []Transition
	quorum []QuorumChange
}

func (r *recorder) onChange(tr Transition) { r.mu.Lock(); r.trs = append(r.trs, tr); r.mu.Unlock() }
func (r *recorder) onQuorum(q QuorumChange) {
	r.mu.Lock()
	r.quorum = append(r.quorum, q)
	r.mu.Unlock()
}

func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, tr := range r.trs {
		out = append(out, tr.ID+":"+tr.Kind.String())
	}
	return out
}

func (r *recorder) last() Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.trs[len(r.trs)-1]
}

func newTestScheduler(t *testing.T, rec *recorder) *Scheduler {
	return NewScheduler(zaptest.NewLogger(t), rec.onChange, SchedulerOptions{OnQuorum: rec.onQuorum})
}

func TestSchedulerDownAndUpOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newTestScheduler(t, rec)
		fc := &fakeChecker{name: "a", ok: true}
		tm := Timing{DelayLoop: 2 * time.Second, ConnectTimeout: time.Second, Retry: 1, DelayBeforeRetry: time.Second}
		s.Set([]Target{{ID: "rs1", Checkers: []Checker{fc}, Timing: tm, Weight: 3}})
		s.Start(t.Context())
		defer s.Stop()
		synctest.Wait()
		if got := rec.kinds(); !slices.Equal(got, []string{"rs1:initial"}) {
			t.Fatalf("after start: %v", got)
		}
		advance(3 * time.Second) // checks at 0 and 2s pass
		death := time.Now()
		fc.set(false, "connection refused")
		// Checks at 4s (fail), 5s (retry fails) -> DOWN at 5s.
		advance(10 * time.Second)
		synctest.Wait()
		if got := rec.kinds(); !slices.Equal(got, []string{"rs1:initial", "rs1:down"}) {
			t.Fatalf("after death: %v", got)
		}
		down := rec.last()
		if down.Reason != "connection refused" || down.Up || down.Weight != 3 {
			t.Fatalf("down transition: %+v", down)
		}
		if d := down.At.Sub(death); d != 2*time.Second || d > tm.DetectionBound(0) {
			t.Fatalf("detected %v after death, want 2s (bound %v)", d, tm.DetectionBound(0))
		}
		fc.set(true, "")
		advance(2 * time.Second)
		synctest.Wait()
		if got := rec.kinds(); !slices.Equal(got, []string{"rs1:initial", "rs1:down", "rs1:up"}) {
			t.Fatalf("after recovery: %v", got)
		}
		st := s.Status()[0]
		if !st.Up || st.Transitions != 2 || st.ByReason["connection refused"] == 0 || st.Failures != st.ByReason["connection refused"] {
			t.Fatalf("status: %+v", st)
		}
	})
}

func TestSchedulerHungCheckEndsAtTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newTestScheduler(t, rec)
		fc := &fakeChecker{name: "hang", hang: true}
		s.Set([]Target{{ID: "rs", Checkers: []Checker{fc}, Timing: Timing{DelayLoop: time.Second, ConnectTimeout: 3 * time.Second}}})
		s.Start(t.Context())
		advance(20 * time.Second)
		synctest.Wait()
		s.Stop()
		fc.mu.Lock()
		defer fc.mu.Unlock()
		if fc.overlapped {
			t.Fatal("checks of one target overlapped")
		}
		for _, d := range fc.deadlines {
			if d != 3*time.Second {
				t.Fatalf("attempt deadline %v, want connect_timeout 3s", d)
			}
		}
		// Each check hangs 3s and delay_loop is 1s: back to back, every 3s.
		for i := 1; i < len(fc.starts); i++ {
			if gap := fc.starts[i].Sub(fc.starts[i-1]); gap != 3*time.Second {
				t.Fatalf("gap %v between checks, want 3s", gap)
			}
		}
		if got := rec.kinds(); !slices.Equal(got, []string{"rs:initial", "rs:down"}) {
			t.Fatalf("transitions %v", got)
		}
	})
}

func TestSchedulerSpreadsFirstChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestScheduler(t, &recorder{})
		const n = 10
		var fcs []*fakeChecker
		var targets []Target
		for i := range n {
			fc := &fakeChecker{name: fmt.Sprint(i), ok: true}
			fcs = append(fcs, fc)
			targets = append(targets, Target{ID: fmt.Sprint(i), Checkers: []Checker{fc}, Timing: Timing{DelayLoop: 10 * time.Second}})
		}
		begin := time.Now()
		s.Set(targets)
		s.Start(t.Context())
		advance(15 * time.Second)
		synctest.Wait()
		s.Stop()
		for i, fc := range fcs {
			st := fc.startTimes()
			if got := st[0].Sub(begin); got != time.Duration(i)*time.Second {
				t.Fatalf("target %d first check at +%v, want +%ds", i, got, i)
			}
		}
	})
}

func TestSchedulerReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newTestScheduler(t, rec)
		a := &fakeChecker{name: "a", reason: "status 503 (GET /)"}
		b := &fakeChecker{name: "b", ok: true}
		c := &fakeChecker{name: "c", ok: true}
		tm := Timing{DelayLoop: 4 * time.Second}
		s.Set([]Target{
			{ID: "a", Checkers: []Checker{a}, Timing: tm},
			{ID: "b", Checkers: []Checker{b}, Timing: tm},
			{ID: "c", Checkers: []Checker{c}, Timing: tm},
		})
		s.Start(t.Context())
		defer s.Stop()
		advance(5 * time.Second)
		synctest.Wait()
		nextA := s.Status()[0].Next
		// Reload: a unchanged (down, schedule kept), b's checker replaced,
		// c removed, d new.
		b2 := &fakeChecker{name: "b2", ok: true}
		d := &fakeChecker{name: "d", ok: true}
		s.Set([]Target{
			{ID: "a", Checkers: []Checker{a}, Timing: tm, Weight: 7},
			{ID: "b", Checkers: []Checker{b2}, Timing: tm},
			{ID: "d", Checkers: []Checker{d}, Timing: tm},
		})
		synctest.Wait()
		want := []string{"a:initial", "b:initial", "c:initial", "a:down", "c:removed", "d:initial"}
		if got := rec.kinds(); !slices.Equal(got, want) {
			t.Fatalf("transitions %v, want %v", got, want)
		}
		st := s.Status()
		if st[0].ID != "a" || st[0].Up || !st[0].Next.Equal(nextA) || st[0].Weight != 7 {
			t.Fatalf("a after reload: %+v (next was %v)", st[0], nextA)
		}
		if st[1].ID != "b" || !st[1].Up {
			t.Fatalf("b after reload: %+v", st[1])
		}
		advance(5 * time.Second)
		synctest.Wait()
		if len(b2.startTimes()) == 0 {
			t.Fatal("replaced checker never ran")
		}
		n := len(b.startTimes())
		advance(10 * time.Second)
		synctest.Wait()
		if len(b.startTimes()) != n {
			t.Fatal("old checker still runs after reload")
		}
		if len(c.startTimes()) > 2 {
			t.Fatal("removed target still checked")
		}
	})
}

func TestSchedulerPassiveFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newTestScheduler(t, rec)
		fc := &fakeChecker{name: "a", ok: true}
		s.Set([]Target{{ID: "rs", Checkers: []Checker{fc}, Timing: Timing{DelayLoop: 10 * time.Second}}})
		s.Start(t.Context())
		defer s.Stop()
		advance(time.Second)
		if !s.PassiveFail("rs", 3) {
			t.Fatal("PassiveFail of an up target returned false")
		}
		if s.PassiveFail("rs", 4) || s.PassiveFail("nope", 1) {
			t.Fatal("PassiveFail of a down or unknown target returned true")
		}
		synctest.Wait()
		if tr := rec.last(); tr.Kind != KindDown || tr.Reason != "passive: 3 consecutive connect failures" {
			t.Fatalf("passive: %+v", tr)
		}
		advance(9*time.Second + time.Millisecond)
		synctest.Wait()
		if tr := rec.last(); tr.Kind != KindUp {
			t.Fatalf("next passing check must bring it up: %+v", tr)
		}
	})
}

func TestSchedulerQuorumAndWeights(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newTestScheduler(t, rec)
		tm := Timing{DelayLoop: time.Second}
		var fcs []*fakeChecker
		var targets []Target
		for i := range 3 {
			fc := &fakeChecker{name: fmt.Sprint(i), ok: true}
			fcs = append(fcs, fc)
			targets = append(targets, Target{ID: fmt.Sprint("rs", i), Service: "vs", Checkers: []Checker{fc}, Timing: tm, Weight: 1})
		}
		s.Set(targets, Service{ID: "vs", Quorum: 2})
		s.Start(t.Context())
		defer s.Stop()
		synctest.Wait()
		if len(rec.quorum) != 1 || !rec.quorum[0].Up || rec.quorum[0].LiveWeight != 3 {
			t.Fatalf("initial quorum: %+v", rec.quorum)
		}
		fcs[0].set(false, "timeout")
		advance(2 * time.Second)
		synctest.Wait()
		if len(rec.quorum) != 1 {
			t.Fatalf("live 2 >= quorum 2: no change expected: %+v", rec.quorum)
		}
		fcs[1].set(false, "timeout")
		advance(2 * time.Second)
		synctest.Wait()
		if len(rec.quorum) != 2 || rec.quorum[1].Up || rec.quorum[1].LiveWeight != 1 {
			t.Fatalf("quorum lost: %+v", rec.quorum)
		}
		// misc_dynamic: the last server reports weight 5 -> quorum back.
		fcs[2].mu.Lock()
		fcs[2].weight, fcs[2].hasWeight = 5, true
		fcs[2].mu.Unlock()
		advance(2 * time.Second)
		synctest.Wait()
		if len(rec.quorum) != 3 || !rec.quorum[2].Up || rec.quorum[2].LiveWeight != 5 {
			t.Fatalf("quorum from dynamic weight: %+v", rec.quorum)
		}
		if tr := rec.last(); tr.Kind != KindWeight || tr.Weight != 5 || tr.ID != "rs2" {
			t.Fatalf("weight transition: %+v", tr)
		}
		if sv := s.Services(); len(sv) != 1 || !sv[0].Up || sv[0].LiveWeight != 5 || sv[0].UpAt != 2 {
			t.Fatalf("services: %+v", sv)
		}
	})
}

func TestSchedulerAllCheckersMustPass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newTestScheduler(t, rec)
		ok := &fakeChecker{name: "ok", ok: true}
		bad := &fakeChecker{name: "bad", reason: "script exit 1"}
		s.Set([]Target{{ID: "rs", Checkers: []Checker{ok, bad}, Timing: Timing{DelayLoop: time.Second}}})
		s.Start(t.Context())
		defer s.Stop()
		advance(time.Second)
		synctest.Wait()
		if tr := rec.last(); tr.Kind != KindDown || tr.Reason != "FAKE: script exit 1" {
			t.Fatalf("got %+v", tr)
		}
	})
}

// TestSchedulerNotifyScripts runs real scripts, so real time: short
// intervals, and polling with a deadline for the files they write.
func TestSchedulerNotifyScripts(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string) string {
		return writeScript(t, dir, name+".sh", "echo "+name+" >> "+filepath.Join(dir, "log"))
	}
	rec := &recorder{}
	s := NewScheduler(zaptest.NewLogger(t), rec.onChange, SchedulerOptions{NotifyTimeout: 5 * time.Second})
	fc := &fakeChecker{name: "a", ok: true}
	s.Set([]Target{{ID: "rs", Service: "vs", Checkers: []Checker{fc}, Timing: Timing{DelayLoop: 20 * time.Millisecond, Omega: true},
		NotifyUp: mk("up"), NotifyDown: mk("down"), Weight: 1}},
		Service{ID: "vs", QuorumUp: mk("qup"), QuorumDown: mk("qdown")})
	s.Start(t.Context())
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			lines := strings.Fields(string(b))
			slices.Sort(lines)
			if strings.Join(lines, " ") == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("script log %q, want %q", lines, want)
			}
			<-tick.C
		}
	}
	waitFor("qup")
	fc.set(false, "connection refused")
	waitFor("down qdown qup")
	fc.set(true, "")
	waitFor("down qdown qup qup up")
	s.Stop() // omega: notify_down at shutdown
	waitFor("down down qdown qup qup up")
}

func TestSchedulerSpreadSurvivesLateStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestScheduler(t, &recorder{})
		a := &fakeChecker{name: "a", ok: true}
		b := &fakeChecker{name: "b", ok: true}
		s.Set([]Target{
			{ID: "a", Checkers: []Checker{a}, Timing: Timing{DelayLoop: 10 * time.Second}},
			{ID: "b", Checkers: []Checker{b}, Timing: Timing{DelayLoop: 10 * time.Second}},
		})
		advance(time.Minute) // the daemon was slow to start
		begin := time.Now()
		s.Start(t.Context())
		advance(6 * time.Second)
		synctest.Wait()
		s.Stop()
		if got := b.startTimes()[0].Sub(begin); got != 5*time.Second {
			t.Fatalf("second target first checked %v after Start, want its 5s offset", got)
		}
	})
}

func TestSchedulerQuorumReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newTestScheduler(t, rec)
		fc := &fakeChecker{name: "a", ok: true}
		tg := []Target{{ID: "rs", Service: "vs", Checkers: []Checker{fc}, Timing: Timing{DelayLoop: time.Second}, Weight: 3}}
		s.Set(tg, Service{ID: "vs", Quorum: 2})
		s.Start(t.Context())
		defer s.Stop()
		synctest.Wait()
		s.Set(tg, Service{ID: "vs", Quorum: 3}) // still met: no change reported
		synctest.Wait()
		if len(rec.quorum) != 1 {
			t.Fatalf("quorum changes %+v, want only the initial one", rec.quorum)
		}
		s.Set(tg, Service{ID: "vs", Quorum: 5}) // lost
		synctest.Wait()
		if len(rec.quorum) != 2 || rec.quorum[1].Up {
			t.Fatalf("quorum changes %+v, want a loss", rec.quorum)
		}
	})
}

// advance moves the fake clock of the synctest bubble it is called in by d:
// it returns, without any real waiting, once every goroutine of the bubble is
// blocked and fake time has reached now+d (timers due meanwhile have fired).
// Only for use inside synctest.Test.
func advance(d time.Duration) { <-time.After(d) }

// budgetChecker records the time its attempt was given.
type budgetChecker struct {
	own time.Duration
	got time.Duration
}

func (c *budgetChecker) Check(ctx context.Context) Result {
	if dl, ok := ctx.Deadline(); ok {
		c.got = time.Until(dl)
	}
	return Result{OK: true}
}
func (c *budgetChecker) String() string                   { return "FAKE_CHECK" }
func (c *budgetChecker) OwnConnectTimeout() time.Duration { return c.own }

// TestRunChecksOwnTimeouts: each checker of a server gets its own connect_timeout, as in
// keepalived; a checker without one gets the target's.
func TestRunChecksOwnTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, c := &budgetChecker{}, &budgetChecker{own: 7 * time.Second}, &budgetChecker{own: 500 * time.Millisecond}
		res := runChecks(t.Context(), []Checker{a, b, c}, Timing{ConnectTimeout: 2 * time.Second, DelayLoop: 10 * time.Second})
		if !res.OK || a.got != 2*time.Second || b.got != 7*time.Second || c.got != 500*time.Millisecond {
			t.Fatalf("budgets %v %v %v (%+v)", a.got, b.got, c.got, res)
		}
	})
}
