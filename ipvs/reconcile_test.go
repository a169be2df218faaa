package ipvs

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

var (
	vip80  = netip.MustParseAddrPort("198.18.0.100:80")
	vip443 = netip.MustParseAddrPort("198.18.0.100:443")
	rs1    = netip.MustParseAddrPort("198.18.0.11:80")
	rs2    = netip.MustParseAddrPort("198.18.0.12:80")
	rs3    = netip.MustParseAddrPort("198.18.0.13:80")
)

func webService() Service {
	return Service{
		Addr: vip80, Protocol: TCP, Scheduler: "wrr", Timeout: 120 * time.Second,
		Dests: []Dest{
			{Addr: rs1, Weight: 1, Method: DR},
			{Addr: rs2, Weight: 1, Method: DR},
		},
	}
}

// render is the table as ipvsadm -Ln prints it, the easiest thing to compare.
func render(t *testing.T, tb Table) string {
	t.Helper()
	svcs, err := tb.Services()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Format(&b, svcs); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func mustSync(t *testing.T, r *Reconciler) {
	t.Helper()
	if err := r.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func wantCalls(t *testing.T, f *FakeTable, want ...string) {
	t.Helper()
	got := f.Calls()
	if !slices.Equal(got, want) {
		t.Errorf("table writes:\n got %q\nwant %q", got, want)
	}
}

func wantTable(t *testing.T, f *FakeTable, body string) {
	t.Helper()
	const head = "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
	if got := render(t, f); got != head+body {
		t.Errorf("table:\n%s\nwant:\n%s", got, head+body)
	}
}

func newTestReconciler(t *testing.T) (*Reconciler, *FakeTable) {
	f := NewFakeTable()
	return NewReconciler(zaptest.NewLogger(t), f), f
}

func TestReconcileCreateThenIdle(t *testing.T) {
	r, f := newTestReconciler(t)
	if err := r.SetDesired([]Service{webService()}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r)
	wantCalls(t, f,
		"NewService TCP 198.18.0.100:80",
		"NewDest TCP 198.18.0.100:80 198.18.0.11:80",
		"NewDest TCP 198.18.0.100:80 198.18.0.12:80")
	wantTable(t, f, ""+
		"TCP  198.18.0.100:80 wrr persistent 120\n"+
		"  -> 198.18.0.11:80               Route   1      0          0         \n"+
		"  -> 198.18.0.12:80               Route   1      0          0         \n")
	mustSync(t, r)
	wantCalls(t, f) // nothing to do the second time
	if got := r.Owned(); len(got) != 1 || got[0] != webService().Key() {
		t.Errorf("owned = %v", got)
	}
}

func TestReconcileWeightChange(t *testing.T) {
	r, f := newTestReconciler(t)
	s := webService()
	r.SetDesired([]Service{s})
	mustSync(t, r)
	f.Calls()
	s.Dests[1].Weight = 5
	r.SetDesired([]Service{s})
	mustSync(t, r)
	wantCalls(t, f, "UpdateDest TCP 198.18.0.100:80 198.18.0.12:80")
	wantTable(t, f, ""+
		"TCP  198.18.0.100:80 wrr persistent 120\n"+
		"  -> 198.18.0.11:80               Route   1      0          0         \n"+
		"  -> 198.18.0.12:80               Route   5      0          0         \n")
}

func TestReconcileServerDownUp(t *testing.T) {
	r, f := newTestReconciler(t)
	r.SetDesired([]Service{webService()})
	mustSync(t, r)
	f.Calls()
	k := webService().Key()

	r.SetHealth(k, rs2, false)
	mustSync(t, r)
	wantCalls(t, f, "DelDest TCP 198.18.0.100:80 198.18.0.12:80")
	wantTable(t, f, ""+
		"TCP  198.18.0.100:80 wrr persistent 120\n"+
		"  -> 198.18.0.11:80               Route   1      0          0         \n")

	// A reload with the same real servers keeps the verdict.
	r.SetDesired([]Service{webService()})
	mustSync(t, r)
	wantCalls(t, f)

	r.SetHealth(k, rs2, true)
	mustSync(t, r)
	wantCalls(t, f, "NewDest TCP 198.18.0.100:80 198.18.0.12:80")

	// A verdict for a real server the config dropped is forgotten: if it
	// comes back to the config, it starts up.
	r.SetHealth(k, rs2, false)
	one := webService()
	one.Dests = one.Dests[:1]
	r.SetDesired([]Service{one})
	mustSync(t, r)
	r.SetDesired([]Service{webService()})
	mustSync(t, r)
	wantCalls(t, f, "DelDest TCP 198.18.0.100:80 198.18.0.12:80", "NewDest TCP 198.18.0.100:80 198.18.0.12:80")
}

func TestReconcileInhibitOnFailure(t *testing.T) {
	r, f := newTestReconciler(t)
	s := webService()
	s.Dests[0].InhibitOnFailure = true
	s.Dests[0].Weight = 3
	r.SetDesired([]Service{s})
	mustSync(t, r)
	f.Calls()

	r.SetHealth(s.Key(), rs1, false)
	mustSync(t, r)
	wantCalls(t, f, "UpdateDest TCP 198.18.0.100:80 198.18.0.11:80")
	wantTable(t, f, ""+
		"TCP  198.18.0.100:80 wrr persistent 120\n"+
		"  -> 198.18.0.11:80               Route   0      0          0         \n"+
		"  -> 198.18.0.12:80               Route   1      0          0         \n")
	r.SetHealth(s.Key(), rs1, true)
	mustSync(t, r)
	wantCalls(t, f, "UpdateDest TCP 198.18.0.100:80 198.18.0.11:80")
	if !strings.Contains(render(t, f), "198.18.0.11:80               Route   3") {
		t.Errorf("weight not restored:\n%s", render(t, f))
	}
}

func TestReconcileConfigChange(t *testing.T) {
	r, f := newTestReconciler(t)
	r.SetDesired([]Service{webService()})
	mustSync(t, r)
	f.Calls()

	// New config: scheduler and persistence change, rs1 leaves, rs3 joins in
	// NAT, and a second service appears.
	s := webService()
	s.Scheduler = "sh"
	s.Timeout = 0
	s.Dests = []Dest{{Addr: rs2, Weight: 1, Method: DR}, {Addr: rs3, Weight: 2, Method: DR}}
	tls := Service{Addr: vip443, Protocol: TCP, Scheduler: "rr", Timeout: time.Minute, Netmask: 24,
		Dests: []Dest{{Addr: netip.MustParseAddrPort("198.18.0.11:443"), Weight: 1, Method: TUN}}}
	r.SetDesired([]Service{tls, s})
	mustSync(t, r)
	wantCalls(t, f,
		"UpdateService TCP 198.18.0.100:80",
		"DelDest TCP 198.18.0.100:80 198.18.0.11:80",
		"NewDest TCP 198.18.0.100:80 198.18.0.13:80",
		"NewService TCP 198.18.0.100:443",
		"NewDest TCP 198.18.0.100:443 198.18.0.11:443")
	wantTable(t, f, ""+
		"TCP  198.18.0.100:80 sh\n"+
		"  -> 198.18.0.12:80               Route   1      0          0         \n"+
		"  -> 198.18.0.13:80               Route   2      0          0         \n"+
		"TCP  198.18.0.100:443 rr persistent 60 mask 255.255.255.0\n"+
		"  -> 198.18.0.11:443              Tunnel  1      0          0         \n")

	// The :80 service leaves the config: it goes from the kernel.
	r.SetDesired([]Service{tls})
	mustSync(t, r)
	wantCalls(t, f, "DelService TCP 198.18.0.100:80")
}

func TestReconcileRecreatesAfterExternalDeletion(t *testing.T) {
	r, f := newTestReconciler(t)
	r.SetDesired([]Service{webService()})
	mustSync(t, r)
	f.Calls()

	// An operator runs ipvsadm -d for one destination, then -D for the service.
	if err := f.DelDest(webService(), Dest{Addr: rs1}); err != nil {
		t.Fatal(err)
	}
	f.Calls()
	mustSync(t, r)
	wantCalls(t, f, "NewDest TCP 198.18.0.100:80 198.18.0.11:80")

	if err := f.DelService(webService()); err != nil {
		t.Fatal(err)
	}
	f.Calls()
	mustSync(t, r)
	wantCalls(t, f,
		"NewService TCP 198.18.0.100:80",
		"NewDest TCP 198.18.0.100:80 198.18.0.11:80",
		"NewDest TCP 198.18.0.100:80 198.18.0.12:80")

	// An operator adds a destination by hand to halb's service: halb's
	// config rules its own services, so it goes.
	if err := f.NewDest(webService(), Dest{Addr: rs3, Weight: 9}); err != nil {
		t.Fatal(err)
	}
	f.Calls()
	mustSync(t, r)
	wantCalls(t, f, "DelDest TCP 198.18.0.100:80 198.18.0.13:80")
}

func TestReconcileLeavesForeignServices(t *testing.T) {
	r, f := newTestReconciler(t)
	// Someone else's services: one halb does not want, one with the same key
	// as a service in halb's config.
	other := Service{Addr: netip.MustParseAddrPort("198.18.1.1:53"), Protocol: UDP, Scheduler: "rr",
		Dests: []Dest{{Addr: netip.MustParseAddrPort("198.18.1.2:53"), Weight: 1}}}
	clash := Service{Addr: vip80, Protocol: TCP, Scheduler: "lc",
		Dests: []Dest{{Addr: rs3, Weight: 7, Method: DR}}}
	for _, s := range []Service{other, clash} {
		if err := f.NewService(s); err != nil {
			t.Fatal(err)
		}
		if err := f.NewDest(s, s.Dests[0]); err != nil {
			t.Fatal(err)
		}
	}
	before := render(t, f)
	f.Calls()

	r.SetDesired([]Service{webService()})
	err := r.Sync()
	if err == nil || !strings.Contains(err.Error(), "not created by halb") {
		t.Fatalf("Sync error = %v, want the clash reported", err)
	}
	wantCalls(t, f)
	if got := render(t, f); got != before {
		t.Errorf("foreign services changed:\n%s\nwas:\n%s", got, before)
	}
	if c := r.Conflicts(); len(c) != 1 || c[0] != clash.Key() {
		t.Errorf("Conflicts() = %v, want [%v]", c, clash.Key())
	}
	if err := r.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f)
	if got := render(t, f); got != before {
		t.Errorf("RemoveAll touched foreign services:\n%s", got)
	}

	// The operator deletes the clashing service: halb's comes in its place.
	if err := f.DelService(clash); err != nil {
		t.Fatal(err)
	}
	f.Calls()
	r.SetDesired([]Service{webService()})
	mustSync(t, r)
	if c := r.Conflicts(); len(c) != 0 {
		t.Errorf("Conflicts() = %v after the clash went", c)
	}
	if got := r.Owned(); len(got) != 1 || got[0] != clash.Key() {
		t.Errorf("Owned() = %v", got)
	}
}

func TestReconcileRemoveAll(t *testing.T) {
	r, f := newTestReconciler(t)
	other := Service{FWMark: 9, Scheduler: "rr"}
	if err := f.NewService(other); err != nil {
		t.Fatal(err)
	}
	tls := Service{Addr: vip443, Protocol: TCP, Dests: []Dest{{Addr: rs1, Weight: 1, Method: DR}}}
	r.SetDesired([]Service{webService(), tls})
	mustSync(t, r)
	// One of halb's services was already deleted by hand.
	if err := f.DelService(tls); err != nil {
		t.Fatal(err)
	}
	f.Calls()
	if err := r.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "DelService TCP 198.18.0.100:80")
	wantTable(t, f, "FWM  9 rr\n")
	if len(r.Owned()) != 0 {
		t.Errorf("still owned after RemoveAll: %v", r.Owned())
	}
	mustSync(t, r) // nothing desired any more: nothing comes back
	wantCalls(t, f)
}

func TestReconcileKeepsGoingPastErrors(t *testing.T) {
	r, f := newTestReconciler(t)
	broken := true
	f.FailOn = func(op string, s Service, d Dest) error {
		if broken && op == "NewDest" && d.Addr == rs1 {
			return unix.EINVAL
		}
		return nil
	}
	tls := Service{Addr: vip443, Protocol: TCP, Dests: []Dest{{Addr: rs2, Weight: 1, Method: DR}}}
	r.SetDesired([]Service{webService(), tls})
	err := r.Sync()
	if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Sync error = %v, want EINVAL from the failed NewDest", err)
	}
	wantCalls(t, f,
		"NewService TCP 198.18.0.100:80",
		"NewDest TCP 198.18.0.100:80 198.18.0.12:80",
		"NewService TCP 198.18.0.100:443",
		"NewDest TCP 198.18.0.100:443 198.18.0.12:80")
	broken = false
	mustSync(t, r)
	wantCalls(t, f, "NewDest TCP 198.18.0.100:80 198.18.0.11:80")
}

func TestSetDesiredRejectsInvalid(t *testing.T) {
	r, f := newTestReconciler(t)
	bad := []Service{
		{Protocol: TCP},                           // no address
		{Addr: vip80, Protocol: 99},               // protocol
		{Addr: vip80, Protocol: TCP, Netmask: 33}, // netmask
		{Addr: vip80, Protocol: TCP, Scheduler: "averyveryverylongname"},
		{Addr: vip80, Protocol: TCP, Dests: []Dest{{Addr: rs1}, {Addr: rs1}}},
		{Addr: vip80, Protocol: TCP, Dests: []Dest{{Addr: rs1, Weight: -1}}},
		{Addr: vip80, Protocol: TCP, Dests: []Dest{{Addr: netip.MustParseAddrPort("[2001:db8::1]:80"), Method: DR}}},
	}
	for _, s := range bad {
		if err := r.SetDesired([]Service{s}); err == nil {
			t.Errorf("SetDesired(%+v) accepted", s)
		}
	}
	if err := r.SetDesired([]Service{webService(), webService()}); err == nil {
		t.Error("duplicate service accepted")
	}
	mustSync(t, r)
	wantCalls(t, f, // only the first copy of the duplicate survives
		"NewService TCP 198.18.0.100:80",
		"NewDest TCP 198.18.0.100:80 198.18.0.11:80",
		"NewDest TCP 198.18.0.100:80 198.18.0.12:80")
}

func TestPlanIPv6AndFWMark(t *testing.T) {
	v6 := Service{Addr: netip.MustParseAddrPort("[2001:db8::100]:80"), Protocol: TCP, Scheduler: "mh",
		Flags: FlagSched2, Dests: []Dest{{Addr: netip.MustParseAddrPort("[2001:db8::11]:80"), Weight: 1, Method: DR}}}
	fw := Service{FWMark: 5, Family: IPv6, Timeout: 30 * time.Second, Netmask: 64,
		Dests: []Dest{{Addr: netip.MustParseAddrPort("[2001:db8::12]:0"), Weight: 2, Method: TUN}}}
	f := NewFakeTable()
	r := NewReconciler(zap.NewNop(), f)
	if err := r.SetDesired([]Service{fw, v6}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r)
	wantTable(t, f, ""+
		"TCP  [2001:db8::100]:80 mh (mh-port)\n"+
		"  -> [2001:db8::11]:80            Route   1      0          0         \n"+
		"FWM  5 IPv6 wlc persistent 30 mask 64\n"+
		"  -> [2001:db8::12]:0             Tunnel  2      0          0         \n")
	cur, _ := f.Services()
	if ops, conflicts := Plan(r.Desired(), cur, map[ServiceKey]bool{v6.Key(): true, fw.Key(): true}); len(ops)+len(conflicts) != 0 {
		t.Errorf("plan after sync not empty: %v %v", ops, conflicts)
	}
}

// Run syncs at once, reacts to SetHealth without waiting for the interval,
// and removes everything when its context ends.
func TestRunLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := NewFakeTable()
		r := NewReconciler(zap.NewNop(), f)
		r.SetDesired([]Service{webService()})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx, time.Hour) }()
		synctest.Wait()
		wantCalls(t, f,
			"NewService TCP 198.18.0.100:80",
			"NewDest TCP 198.18.0.100:80 198.18.0.11:80",
			"NewDest TCP 198.18.0.100:80 198.18.0.12:80")

		r.SetHealth(webService().Key(), rs1, false)
		synctest.Wait()
		wantCalls(t, f, "DelDest TCP 198.18.0.100:80 198.18.0.11:80")

		// Deleted by hand: back after the next interval.
		if err := f.DelService(webService()); err != nil {
			t.Fatal(err)
		}
		f.Calls()
		advance(time.Hour)
		synctest.Wait()
		wantCalls(t, f,
			"NewService TCP 198.18.0.100:80",
			"NewDest TCP 198.18.0.100:80 198.18.0.12:80")

		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		wantCalls(t, f, "DelService TCP 198.18.0.100:80")
	})
}

// A restarted daemon adopts its own leftovers (keys kept in a state file) and
// takes them over instead of reporting them as foreign.
func TestReconcileAdoptAfterRestart(t *testing.T) {
	f := NewFakeTable()
	first := NewReconciler(zap.NewNop(), f)
	tls := Service{FWMark: 3, Family: IPv6, Dests: []Dest{{Addr: netip.MustParseAddrPort("[2001:db8::11]:0"), Weight: 1, Method: DR}}}
	first.SetDesired([]Service{webService(), tls})
	mustSync(t, first)
	state, err := json.Marshal(first.Owned())
	if err != nil {
		t.Fatal(err)
	}
	// first dies without RemoveAll; a new one starts with a changed config.
	f.Calls()
	var keys []ServiceKey
	if err := json.Unmarshal(state, &keys); err != nil {
		t.Fatalf("state %s: %v", state, err)
	}
	second := NewReconciler(zap.NewNop(), f)
	second.Adopt(keys...)
	s := webService()
	s.Dests[0].Weight = 4
	second.SetDesired([]Service{s})
	mustSync(t, second)
	wantCalls(t, f,
		"DelService FWM 3 IPv6",
		"UpdateDest TCP 198.18.0.100:80 198.18.0.11:80")
	if c := second.Conflicts(); len(c) != 0 {
		t.Errorf("conflicts after adoption: %v", c)
	}
}

func TestServiceKeyText(t *testing.T) {
	for _, k := range []ServiceKey{
		webService().Key(),
		{Family: IPv6, Protocol: UDP, Addr: netip.MustParseAddrPort("[2001:db8::1]:53")},
		{Family: IPv4, Protocol: SCTP, Addr: netip.MustParseAddrPort("198.18.0.1:9")},
		{Family: IPv4, FWMark: 1},
		{Family: IPv6, FWMark: 4294967295},
	} {
		b, _ := k.MarshalText()
		var back ServiceKey
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("%q: got %+v, %v; want %+v", b, back, err, k)
		}
	}
	for _, bad := range []string{"", "TCP", "FWM 0", "FWM x", "FWM 1 IPv5", "ICMP 198.18.0.1:1", "TCP 198.18.0.1", "TCP 198.18.0.1:80 x"} {
		var k ServiceKey
		if err := k.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %+v", bad, k)
		}
	}
}

// FuzzServiceKeyText: whatever UnmarshalText accepts marshals back to a text
// that parses to the same key.
func FuzzServiceKeyText(f *testing.F) {
	for _, s := range []string{"TCP 198.18.0.100:80", "UDP [2001:db8::1]:53", "FWM 7", "FWM 8 IPv6", "SCTP [::ffff:198.18.0.1]:9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var k ServiceKey
		if k.UnmarshalText([]byte(s)) != nil {
			return
		}
		b, _ := k.MarshalText()
		var back ServiceKey
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, k, b, back, err)
		}
	})
}

// advance moves the fake clock of the synctest bubble it is called in by d:
// it returns, without any real waiting, once every goroutine of the bubble is
// blocked and fake time has reached now+d (timers due meanwhile have fired).
// Only for use inside synctest.Test.
func advance(d time.Duration) { <-time.After(d) }
