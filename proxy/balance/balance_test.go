package balance

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// members returns n members called b0..b(n-1) with the given weights (1 when
// weights is shorter), on lab addresses.
func members(n int, weights ...int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		ms[i] = Member{
			Name:   fmt.Sprintf("b%d", i),
			Addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + i)}), 80),
			Weight: w,
		}
	}
	return ms
}

// clientAddr returns the i-th of many distinct client addresses in
// 198.18.0.0/15 (i < 2^17) or 2001:db8::/32.
func clientAddr(i int, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		b[12], b[13], b[14], b[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})
}

var t0 = time.Date(2026, 11, 23, 19, 0, 0, 0, time.UTC)

func pickSeq(p *Pool, n int) string {
	var sb strings.Builder
	for range n {
		b := p.Pick(netip.Addr{}, t0, nil)
		if b == nil {
			sb.WriteString("-")
			continue
		}
		sb.WriteString(strings.TrimPrefix(b.Name(), "b"))
	}
	return sb.String()
}

func TestParseAlgo(t *testing.T) {
	tests := []struct {
		in   string
		want Algo
	}{
		{"rr", RR}, {"wrr", WRR}, {"lc", LC}, {"wlc", WLC}, {"sh", SH}, {"dh", DH}, {"mh", MH},
		{"lblc", WLC}, {"lblcr", WLC}, {"sed", WLC}, {"nq", WLC}, {"fo", WRR}, {"ovf", WRR},
		{"WLC", WLC}, {" rr ", RR},
	}
	for _, tt := range tests {
		got, err := ParseAlgo(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseAlgo(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "r r", "wrrr", "random", "source"} {
		if a, err := ParseAlgo(bad); err == nil {
			t.Errorf("ParseAlgo(%q) = %v, want error", bad, a)
		} else if !strings.HasPrefix(err.Error(), "balance: parse algo") {
			t.Errorf("error %q lacks the operation prefix", err)
		}
	}
	for a := RR; a <= MH; a++ {
		if got, err := ParseAlgo(a.String()); err != nil || got != a {
			t.Errorf("round trip of %v: %v, %v", a, got, err)
		}
	}
	if s := Algo(42).String(); s != "Algo(42)" {
		t.Errorf("Algo(42).String() = %q", s)
	}
}

func TestAdminState(t *testing.T) {
	for s := Ready; s <= Maint; s++ {
		got, err := ParseAdminState(s.String())
		if err != nil || got != s {
			t.Errorf("round trip of %v: %v, %v", s, got, err)
		}
	}
	if _, err := ParseAdminState("disabled"); err == nil {
		t.Error("ParseAdminState(disabled): want error")
	}
}

func TestSmoothWRRSequence(t *testing.T) {
	tests := []struct {
		weights []int
		want    string // one period, twice
	}{
		{[]int{5, 1, 1}, "00102000010200"},
		{[]int{1, 1, 1}, "012012"},
		{[]int{2, 1}, "010010"},
		{[]int{4, 2}, "010010"}, // gcd reduced
		{[]int{1, 2}, "101101"},
		{[]int{3, 0, 1}, "00200020"}, // weight 0 takes nothing
		{[]int{0, 0}, "----"},
	}
	for _, tt := range tests {
		p := NewPool(WRR, members(len(tt.weights), tt.weights...), Options{})
		if got := pickSeq(p, len(tt.want)); got != tt.want {
			t.Errorf("weights %v: got %s, want %s", tt.weights, got, tt.want)
		}
	}
}

func TestWRRDistribution(t *testing.T) {
	weights := []int{3, 2, 1, 7, 10}
	p := NewPool(WRR, members(len(weights), weights...), Options{})
	counts := map[string]int{}
	const periods = 1000
	for range periods * 23 {
		counts[p.Pick(netip.Addr{}, t0, nil).Name()]++
	}
	for i, w := range weights {
		if got := counts[fmt.Sprintf("b%d", i)]; got != w*periods {
			t.Errorf("b%d (weight %d): %d picks, want %d", i, w, got, w*periods)
		}
	}
	// Never a burst longer than the smooth algorithm allows: with weights
	// 3,2,1,7,10 the heaviest never gets more than 2 in a row.
	seq := pickSeq(p, 23*3)
	if strings.Contains(seq, "444") {
		t.Errorf("burst in %s", seq)
	}
}

func TestWRRLargeWeights(t *testing.T) {
	seq := smoothSequence([]int{100000, 3, 70000})
	if len(seq) > maxSeq {
		t.Fatalf("sequence length %d > %d", len(seq), maxSeq)
	}
	n := [3]int{}
	for _, i := range seq {
		n[i]++
	}
	if n[1] < 1 {
		t.Errorf("small weight lost: %v", n)
	}
	if r := float64(n[0]) / float64(n[2]); math.Abs(r-100.0/70) > 0.01 {
		t.Errorf("ratio %v, want %v", r, 100.0/70)
	}
}

func TestRR(t *testing.T) {
	p := NewPool(RR, members(4, 1, 5, 0, 1), Options{})
	if got := pickSeq(p, 6); got != "013013" {
		t.Fatalf("got %s", got)
	}
	if err := p.SetUp("b1", false); err != nil {
		t.Fatal(err)
	}
	got := pickSeq(p, 4)
	if strings.Contains(got, "1") || strings.Contains(got, "2") {
		t.Fatalf("down or weight-0 member picked: %s", got)
	}
}

func TestLC(t *testing.T) {
	tests := []struct {
		active []int
		want   string // over len(active) picks, without acquiring
	}{
		{[]int{0, 0, 0}, "012"}, // ties rotate
		{[]int{1, 0, 0}, "112"},
		{[]int{2, 1, 1}, "112"},
		{[]int{5, 7, 3}, "222"},
	}
	for _, tt := range tests {
		// weights do not matter to lc
		p := NewPool(LC, members(3, 1, 100, 2), Options{})
		acquire(t, p, tt.active)
		if got := pickSeq(p, len(tt.want)); got != tt.want {
			t.Errorf("active %v: got %s, want %s", tt.active, got, tt.want)
		}
	}
	// Acquiring what is picked spreads connections evenly.
	p := NewPool(LC, members(4), Options{})
	for range 400 {
		p.Pick(netip.Addr{}, t0, nil).Acquire()
	}
	for _, v := range p.Views() {
		if v.Active != 100 {
			t.Errorf("%s: %d active, want 100", v.Name, v.Active)
		}
	}
}

func acquire(t *testing.T, p *Pool, active []int) {
	t.Helper()
	for i, n := range active {
		b := p.Backend(fmt.Sprintf("b%d", i))
		for range n {
			if !b.Acquire() {
				t.Fatal("Acquire failed")
			}
		}
	}
}

func TestWLC(t *testing.T) {
	tests := []struct {
		weights, active []int
		want            string // over len(weights) picks, without acquiring
	}{
		{[]int{1, 1, 1}, []int{0, 0, 0}, "012"}, // ties rotate
		{[]int{1, 3}, []int{1, 2}, "11"},        // 1/1 > 2/3
		{[]int{1, 3}, []int{1, 3}, "01"},        // 1/1 == 3/3: tie
		{[]int{1, 3}, []int{1, 4}, "00"},        // 4/3 > 1
		{[]int{2, 5, 1}, []int{4, 9, 1}, "222"}, // 2, 1.8, 1
		{[]int{2, 5, 1}, []int{4, 9, 2}, "111"}, // 2, 1.8, 2
		{[]int{0, 1}, []int{0, 5}, "11"},        // weight 0 never
		{[]int{3, 1}, []int{0, 0}, "01"},        // 0/3 == 0/1: tie
	}
	for _, tt := range tests {
		p := NewPool(WLC, members(len(tt.weights), tt.weights...), Options{})
		acquire(t, p, tt.active)
		if got := pickSeq(p, len(tt.want)); got != tt.want {
			t.Errorf("weights %v active %v: got %s, want %s", tt.weights, tt.active, got, tt.want)
		}
	}
	// Acquiring what is picked converges to active counts proportional
	// to the weights.
	p := NewPool(WLC, members(3, 1, 2, 5), Options{})
	for range 800 {
		p.Pick(netip.Addr{}, t0, nil).Acquire()
	}
	for i, v := range p.Views() {
		if want := int64([]int{100, 200, 500}[i]); v.Active != want {
			t.Errorf("%s: %d active, want %d", v.Name, v.Active, want)
		}
	}
}

// hashMap returns the backend name of each of n clients.
func hashMap(p *Pool, n int) []string {
	out := make([]string, n)
	for i := range out {
		b := p.Pick(clientAddr(i, i%2 == 1), t0, nil)
		if b != nil {
			out[i] = b.Name()
		}
	}
	return out
}

// maxMaglevDisruption is the documented bound on the fraction of clients not
// on a removed backend that Maglev moves anyway (10 backends, M = 65537).
const maxMaglevDisruption = 0.02

func TestMaglevConsistency(t *testing.T) {
	for _, algo := range []Algo{SH, DH, MH} {
		t.Run(algo.String(), func(t *testing.T) {
			const clients = 100_000
			ms := members(10)
			p := NewPool(algo, ms, Options{})
			before := hashMap(p, clients)

			// Spread: each of 10 backends gets about 10%.
			count := map[string]int{}
			for _, n := range before {
				count[n]++
			}
			for name, c := range count {
				if f := float64(c) / clients; f < 0.09 || f > 0.11 {
					t.Errorf("%s has %.3f of the clients", name, f)
				}
			}

			for _, remove := range []func(){
				func() { p.Update(append(append([]Member{}, ms[:3]...), ms[4:]...)) },
				func() { mustNil(t, p.SetUp("b3", false)) },
			} {
				remove()
				after := hashMap(p, clients)
				moved, others := 0, 0
				for i := range after {
					if after[i] == "b3" {
						t.Fatalf("client %d still on removed b3", i)
					}
					if before[i] != "b3" {
						others++
						if after[i] != before[i] {
							moved++
						}
					}
				}
				frac := float64(moved) / float64(others)
				t.Logf("%s: removing 1 of 10 moved %d of %d other clients (%.3f%%)", algo, moved, others, 100*frac)
				if frac > maxMaglevDisruption {
					t.Errorf("moved %.3f of the other clients, bound %.3f", frac, maxMaglevDisruption)
				}
				// Adding it back restores the exact mapping.
				p.Update(ms)
				mustNil(t, p.SetUp("b3", true))
				if restored := hashMap(p, clients); !equal(restored, before) {
					t.Error("mapping not restored after adding the backend back")
				}
			}
		})
	}
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMaglevOrderIndependentAndDeterministic(t *testing.T) {
	ms := members(7)
	rev := make([]Member, len(ms))
	for i := range ms {
		rev[i] = ms[len(ms)-1-i]
	}
	a := hashMap(NewPool(SH, ms, Options{}), 5000)
	b := hashMap(NewPool(SH, rev, Options{}), 5000)
	if !equal(a, b) {
		t.Error("mapping depends on configuration order")
	}
	// Pinned values: the hash is deterministic across processes and nodes.
	// If this fails, the hash changed, and two halb versions in one VRRP
	// pair would map clients differently: change it only on purpose.
	got := strings.Join(a[:8], ",")
	t.Logf("first mappings: %s", got)
	if pinned := "b6,b5,b1,b6,b2,b5,b6,b0"; got != pinned {
		t.Errorf("mapping changed: got %s, want %s", got, pinned)
	}
	// dh uses another seed than sh.
	d := hashMap(NewPool(DH, ms, Options{}), 5000)
	if equal(a, d) {
		t.Error("dh maps exactly like sh")
	}
}

func TestMaglevWeights(t *testing.T) {
	weights := []int{1, 2, 3, 4}
	set := make([]*Backend, len(weights))
	for i := range set {
		set[i] = newBackend(Member{Name: fmt.Sprint("w", i)}, false)
	}
	table := buildMaglev(set, weights)
	n := make([]int, len(weights))
	for _, x := range table {
		if x == maglevEmpty {
			t.Fatal("empty slot")
		}
		n[x]++
	}
	for i, w := range weights {
		want := float64(w) / 10
		if got := float64(n[i]) / maglevSize; math.Abs(got-want) > 0.005 {
			t.Errorf("weight %d owns %.4f of the table, want %.4f", w, got, want)
		}
	}
}

func TestHashExclude(t *testing.T) {
	// b2 has a weight so small that it owns no Maglev slot: the fallback
	// must still find it.
	p := NewPool(SH, members(3, 100000, 100000, 1), Options{})
	b := p.Backend
	for i := range 2000 {
		c := clientAddr(i, false)
		first := p.Pick(c, t0, nil)
		second := p.Pick(c, t0, []*Backend{first})
		if second == nil || second == first {
			t.Fatalf("client %v: retry got %v after %v", c, second, first)
		}
		third := p.Pick(c, t0, []*Backend{first, second})
		if third == nil || third == first || third == second {
			t.Fatalf("client %v: third pick %v", c, third)
		}
		if p.Pick(c, t0, []*Backend{b("b0"), b("b1"), b("b2")}) != nil {
			t.Fatal("all excluded: want nil")
		}
		if again := p.Pick(c, t0, []*Backend{first}); again != second {
			t.Fatal("retry pick is not deterministic")
		}
	}
	if k1, k2 := p.PickKey([]byte("/index.html"), nil), p.PickKey([]byte("/index.html"), nil); k1 == nil || k1 != k2 {
		t.Errorf("PickKey not stable: %v %v", k1, k2)
	}
}

func TestExcludeNonHash(t *testing.T) {
	for _, algo := range []Algo{RR, WRR, LC, WLC} {
		p := NewPool(algo, members(3, 5, 1, 1), Options{})
		b0, b1, b2 := p.Backend("b0"), p.Backend("b1"), p.Backend("b2")
		for range 20 {
			if got := p.Pick(netip.Addr{}, t0, []*Backend{b0, b2}); got != b1 {
				t.Fatalf("%v: got %v, want b1", algo, got)
			}
		}
		if got := p.Pick(netip.Addr{}, t0, []*Backend{b0, b1, b2}); got != nil {
			t.Fatalf("%v: all excluded, got %v", algo, got.Name())
		}
	}
}

func TestMaxConn(t *testing.T) {
	ms := members(2)
	ms[0].MaxConn = 2
	for _, algo := range []Algo{RR, WRR, LC, WLC, SH} {
		p := NewPool(algo, ms, Options{})
		b0, b1 := p.Backend("b0"), p.Backend("b1")
		if !b0.Acquire() || !b0.Acquire() {
			t.Fatal("Acquire below MaxConn failed")
		}
		if b0.Acquire() {
			t.Fatal("Acquire above MaxConn succeeded")
		}
		if b0.Active() != 2 || b0.Total() != 2 {
			t.Fatalf("active %d total %d", b0.Active(), b0.Total())
		}
		// Non-hash schedulers skip the full backend; sh returns the mapping
		// and the caller's retry with exclude gets the other.
		for i := range 10 {
			c := clientAddr(i, false)
			got := p.Pick(c, t0, nil)
			if got == b0 {
				if algo != SH {
					t.Fatalf("%v picked a full backend", algo)
				}
				if b0.Acquire() {
					t.Fatal("Acquire on full backend succeeded")
				}
				got = p.Pick(c, t0, []*Backend{b0})
			}
			if got != b1 {
				t.Fatalf("%v: got %v, want b1", algo, got)
			}
		}
		b0.Release()
		if !b0.Acquire() {
			t.Fatal("Acquire after Release failed")
		}
		if b1.Acquire(); b1.Active() != 1 {
			t.Fatal("unlimited backend did not count")
		}
	}
}

func TestMaxConnConcurrent(t *testing.T) {
	b := newBackend(Member{Name: "x", MaxConn: 10}, false)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 50 {
		wg.Go(func() {
			if b.Acquire() {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 10 || b.Active() != 10 {
		t.Fatalf("%d acquired, active %d; want 10", ok, b.Active())
	}
}

func TestPersistence(t *testing.T) {
	const ttl = 300 * time.Second
	p := NewPool(RR, members(3), Options{PersistTimeout: ttl, PersistMask4: 24})
	c := netip.MustParseAddr("198.18.7.1")
	neighbour := netip.MustParseAddr("198.18.7.200") // same /24
	other := netip.MustParseAddr("198.18.8.1")

	first := p.Pick(c, t0, nil)
	for i := range 10 {
		now := t0.Add(time.Duration(i) * time.Second)
		if got := p.Pick(c, now, nil); got != first {
			t.Fatalf("pick %d: %v, want %v", i, got.Name(), first.Name())
		}
		if got := p.Pick(neighbour, now, nil); got != first {
			t.Fatalf("same /24 not persistent: %v, want %v", got.Name(), first.Name())
		}
	}
	// Another /24 goes through rr and is not glued to first.
	seen := map[*Backend]bool{}
	for i := range 3 {
		seen[p.Pick(netip.AddrFrom4([4]byte{198, 18, 20 + byte(i), 1}), t0, nil)] = true
	}
	if len(seen) < 2 {
		t.Error("different /24s all went to one backend under rr")
	}

	// Refreshed on use: a pick at t0+9s keeps it until t0+9s+ttl.
	last := t0.Add(9 * time.Second)
	if got := p.Pick(c, last.Add(ttl-time.Nanosecond), nil); got != first {
		t.Fatal("entry expired before its refreshed timeout")
	}
	last = last.Add(ttl - time.Nanosecond)
	// Expired: re-picked by rr; rr moves on, so the next pick differs.
	p.Pick(other, last, nil)
	after := p.Pick(c, last.Add(ttl), nil)
	if after == nil {
		t.Fatal("nil after expiry")
	}
	if got := p.Pick(c, last.Add(ttl+time.Second), nil); got != after {
		t.Fatal("re-picked entry not persistent")
	}
}

func TestPersistenceStates(t *testing.T) {
	const ttl = time.Minute
	c := netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name  string
		apply func(p *Pool, name string)
		keep  bool
	}{
		{"down", func(p *Pool, n string) { mustNil(t, p.SetUp(n, false)) }, false},
		{"maint", func(p *Pool, n string) { mustNil(t, p.SetAdmin(n, Maint)) }, false},
		{"drain", func(p *Pool, n string) { mustNil(t, p.SetAdmin(n, Drain)) }, true},
		{"weight0", func(p *Pool, n string) { mustNil(t, p.SetWeight(n, 0)) }, true},
		{"removed", func(p *Pool, n string) {
			var keep []Member
			for _, m := range members(3) {
				if m.Name != n {
					keep = append(keep, m)
				}
			}
			p.Update(keep)
		}, false},
		{"readded", func(p *Pool, n string) { // same name, new Addr: a new server
			ms := members(3)
			for i := range ms {
				if ms[i].Name == n {
					ms[i].Addr = netip.MustParseAddrPort("198.18.9.9:80")
				}
			}
			p.Update(ms)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPool(WLC, members(3), Options{PersistTimeout: ttl})
			first := p.Pick(c, t0, nil)
			tt.apply(p, first.Name())
			got := p.Pick(c, t0.Add(time.Second), nil)
			if (got == first) != tt.keep {
				t.Fatalf("after %s: got %v, first %v, want kept=%v", tt.name, got.Name(), first.Name(), tt.keep)
			}
			// No new client goes to a drained/weight-0 backend.
			for i := range 50 {
				if b := p.Pick(clientAddr(i, false), t0, nil); b.Name() == first.Name() && tt.keep {
					t.Fatalf("new client %d sent to %s", i, tt.name)
				}
			}
		})
	}

	// Excluding the persistent backend moves the client and overwrites.
	p := NewPool(RR, members(3), Options{PersistTimeout: ttl})
	first := p.Pick(c, t0, nil)
	second := p.Pick(c, t0, []*Backend{first})
	if second == first || second == nil {
		t.Fatalf("exclude not honoured: %v", second)
	}
	if got := p.Pick(c, t0, nil); got != second {
		t.Fatalf("entry not overwritten: got %v, want %v", got.Name(), second.Name())
	}
}

func TestPersistenceBackupReturn(t *testing.T) {
	ms := members(2)
	ms[1].Backup = true
	p := NewPool(RR, ms, Options{PersistTimeout: time.Hour})
	c := netip.MustParseAddr("198.18.3.3")
	mustNil(t, p.SetUp("b0", false))
	if got := p.Pick(c, t0, nil); got.Name() != "b1" {
		t.Fatalf("got %v, want backup b1", got.Name())
	}
	mustNil(t, p.SetUp("b0", true))
	if got := p.Pick(c, t0, nil); got.Name() != "b0" {
		t.Fatalf("persistent client stayed on backup %v after the primary returned", got.Name())
	}
}

func TestPersistenceBound(t *testing.T) {
	const ttl = time.Minute
	p := NewPool(RR, members(2), Options{PersistTimeout: ttl, PersistMax: 640})
	for i := range 20000 {
		p.Pick(clientAddr(i, i%3 == 0), t0, nil)
	}
	if n := p.PersistLen(); n > 640 || n < 320 {
		t.Fatalf("%d entries, bound 640", n)
	}
	if n := p.SweepPersist(t0.Add(ttl - time.Second)); n != 0 {
		t.Fatalf("swept %d live entries", n)
	}
	if n := p.SweepPersist(t0.Add(ttl)); n == 0 || p.PersistLen() != 0 {
		t.Fatalf("swept %d, %d left", n, p.PersistLen())
	}
	// Expired entries are swept by later inserts too.
	for i := range 200 {
		p.Pick(clientAddr(i, false), t0, nil)
	}
	later := t0.Add(3 * ttl)
	for i := range 200 {
		p.Pick(clientAddr(100000+i, false), later, nil)
	}
	if n := p.PersistLen(); n > 200+64 {
		t.Fatalf("%d entries after a sweep period; expired ones not swept", n)
	}
}

func TestDrainMaintWeight(t *testing.T) {
	p := NewPool(RR, members(3, 1, 2, 3), Options{})
	if p.Eligible() != 3 || p.LiveWeight() != 6 {
		t.Fatalf("eligible %d live %d", p.Eligible(), p.LiveWeight())
	}
	mustNil(t, p.SetAdmin("b0", Drain))
	mustNil(t, p.SetAdmin("b1", Maint))
	if got := pickSeq(p, 4); got != "2222" {
		t.Fatalf("got %s", got)
	}
	if p.Eligible() != 1 || p.LiveWeight() != 3 {
		t.Fatalf("eligible %d live %d", p.Eligible(), p.LiveWeight())
	}
	mustNil(t, p.SetWeight("b2", 0))
	if got := pickSeq(p, 2); got != "--" {
		t.Fatalf("got %s", got)
	}
	mustNil(t, p.SetAdmin("b1", Ready))
	mustNil(t, p.SetWeight("b1", 7))
	if p.LiveWeight() != 7 {
		t.Fatalf("live %d", p.LiveWeight())
	}
	v := p.Views()
	if v[1].Weight != 7 || v[1].ConfiguredWeight != 2 || !v[1].Eligible || v[0].Admin != Drain || v[0].Eligible {
		t.Fatalf("views %+v", v)
	}
}

func TestErrors(t *testing.T) {
	p := NewPool(RR, members(1), Options{})
	for _, err := range []error{p.SetUp("x", true), p.SetWeight("x", 1), p.SetAdmin("x", Drain)} {
		if !errors.Is(err, ErrNotFound) || !strings.HasPrefix(err.Error(), "balance: set ") {
			t.Errorf("err = %v", err)
		}
	}
	if err := p.SetWeight("b0", -1); err == nil {
		t.Error("negative weight accepted")
	}
	if err := p.SetAdmin("b0", AdminState(9)); err == nil {
		t.Error("invalid admin state accepted")
	}
}

func TestSorryAndBackup(t *testing.T) {
	ms := members(4, 1, 1, 2, 3)
	ms[2].Backup, ms[3].Backup = true, true
	sorry := &Member{Name: "sorry", Addr: netip.MustParseAddrPort("127.0.0.1:8080"), Data: "s"}
	for _, algo := range []Algo{RR, WRR, LC, WLC, SH, DH, MH} {
		p := NewPool(algo, ms, Options{Sorry: sorry})
		c := netip.MustParseAddr("198.18.0.1")
		name := func(ex ...*Backend) string {
			if b := p.Pick(c, t0, ex); b != nil {
				return b.Name()
			}
			return "nil"
		}
		for range 5 {
			if n := name(); n != "b0" && n != "b1" {
				t.Fatalf("%v: %s picked while primaries are up", algo, n)
			}
		}
		if p.LiveWeight() != 2 || p.Eligible() != 4 {
			t.Fatalf("%v: live %d eligible %d", algo, p.LiveWeight(), p.Eligible())
		}
		// Excluding all primaries does not fall back to backups or sorry.
		if n := name(p.Backend("b0"), p.Backend("b1")); n != "nil" {
			t.Fatalf("%v: all primaries excluded: got %s", algo, n)
		}
		mustNil(t, p.SetUp("b0", false))
		mustNil(t, p.SetAdmin("b1", Drain))
		for range 5 {
			if n := name(); n != "b2" && n != "b3" {
				t.Fatalf("%v: %s picked while only backups are eligible", algo, n)
			}
		}
		if p.LiveWeight() != 5 {
			t.Fatalf("%v: live %d", algo, p.LiveWeight())
		}
		mustNil(t, p.SetUp("b2", false))
		mustNil(t, p.SetUp("b3", false))
		if n := name(); n != "sorry" {
			t.Fatalf("%v: nothing eligible: got %s, want sorry", algo, n)
		}
		s := p.Pick(c, t0, nil)
		if !s.Sorry() || s.Data() != "s" || s.Addr().Port() != 8080 {
			t.Fatalf("sorry backend %+v", s)
		}
		if n := name(s); n != "nil" {
			t.Fatalf("%v: sorry excluded: got %s", algo, n)
		}
		if p.Eligible() != 0 || p.LiveWeight() != 0 {
			t.Fatalf("%v: eligible %d live %d", algo, p.Eligible(), p.LiveWeight())
		}
		views := p.Views()
		if last := views[len(views)-1]; !last.Sorry || last.Name != "sorry" {
			t.Fatalf("views %+v", views)
		}
		for _, v := range views[:len(views)-1] {
			if v.Sorry {
				t.Fatalf("member marked sorry: %+v", v)
			}
		}
	}
	p := NewPool(RR, nil, Options{})
	if p.Pick(netip.Addr{}, t0, nil) != nil {
		t.Fatal("empty pool without sorry: want nil")
	}
}

func TestUpdate(t *testing.T) {
	ms := members(3, 1, 2, 3)
	ms[0].Data = "v1"
	p := NewPool(WRR, ms, Options{})
	b0, b1 := p.Backend("b0"), p.Backend("b1")
	b0.Acquire()
	mustNil(t, p.SetUp("b1", false))
	mustNil(t, p.SetWeight("b2", 9))
	mustNil(t, p.SetAdmin("b0", Drain))

	ms2 := members(4, 1, 2, 3, 4)
	ms2[0].Data, ms2[0].MaxConn = "v2", 5
	ms2[2].Weight = 30 // configured weight changed: runtime weight reset
	p.Update(ms2)
	if p.Backend("b0") != b0 || p.Backend("b1") != b1 {
		t.Fatal("same name lost its *Backend")
	}
	if b0.Active() != 1 || b0.Data() != "v2" || b0.MaxConn() != 5 {
		t.Fatalf("b0 after update: active %d data %v maxconn %d", b0.Active(), b0.Data(), b0.MaxConn())
	}
	v := p.Views()
	if len(v) != 4 || v[0].Admin != Drain || v[1].Up || v[2].Weight != 30 || !v[3].Up {
		t.Fatalf("views %+v", v)
	}
	// A runtime weight survives a reload that keeps the configured weight.
	mustNil(t, p.SetWeight("b3", 8))
	p.Update(ms2)
	if v := p.Views(); v[3].Weight != 8 {
		t.Fatalf("runtime weight lost: %+v", v[3])
	}
	p.Update(ms2[:1])
	if p.Backend("b1") != nil || len(p.Views()) != 1 {
		t.Fatal("removed member still present")
	}
	// Duplicate names: the first wins.
	dup := append(members(1), Member{Name: "b0", Weight: 7})
	p.Update(dup)
	if v := p.Views(); len(v) != 1 || v[0].ConfiguredWeight != 1 {
		t.Fatalf("views %+v", v)
	}
}

func TestConcurrent(t *testing.T) {
	for _, algo := range []Algo{RR, WRR, LC, WLC, SH} {
		t.Run(algo.String(), func(t *testing.T) {
			sorry := &Member{Name: "sorry"}
			p := NewPool(algo, members(6, 1, 2, 3, 4, 5, 6), Options{PersistTimeout: time.Second, PersistMax: 128, Sorry: sorry})
			valid := map[string]bool{"sorry": true}
			for _, m := range members(8) {
				valid[m.Name] = true
			}
			stop := make(chan struct{})
			var readers, writers sync.WaitGroup
			errs := make(chan string, 16)
			for r := range 4 {
				readers.Go(func() {
					var tried []*Backend
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						now := t0.Add(time.Duration(i) * time.Millisecond)
						b := p.Pick(clientAddr(r*1000+i%500, false), now, tried[:0])
						if b == nil {
							continue
						}
						if !valid[b.Name()] {
							select {
							case errs <- b.Name():
							default:
							}
							return
						}
						if b.Acquire() {
							b.Release()
						}
						_ = p.Eligible() + p.LiveWeight()
					}
				})
			}
			iters := 300
			if algo == SH {
				iters = 40 // each change builds a 65537-slot Maglev table
			}
			for w := range 2 {
				writers.Go(func() {
					for i := range iters {
						name := fmt.Sprintf("b%d", (i+w)%6)
						switch i % 5 {
						case 0:
							_ = p.SetUp(name, i%2 == 0)
						case 1:
							_ = p.SetWeight(name, i%4)
						case 2:
							_ = p.SetAdmin(name, AdminState(i%3))
						case 3:
							p.Update(members(4 + i%5))
						case 4:
							_ = p.Views()
						}
					}
				})
			}
			writers.Wait()
			close(stop)
			readers.Wait()
			select {
			case name := <-errs:
				t.Fatalf("picked unknown backend %q", name)
			default:
			}
			for _, v := range p.Views() {
				if v.Active != 0 {
					t.Errorf("%s: active %d after all releases", v.Name, v.Active)
				}
			}
		})
	}
}

func TestPickAllocs(t *testing.T) {
	for _, algo := range []Algo{RR, WRR, LC, WLC, SH, DH, MH} {
		for _, persist := range []time.Duration{0, time.Minute} {
			p := NewPool(algo, members(10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10), Options{PersistTimeout: persist})
			c := netip.MustParseAddr("198.18.5.5")
			ex := []*Backend{p.Backend("b3")}
			p.Pick(c, t0, nil) // insert the persistence entry
			allocs := testing.AllocsPerRun(1000, func() {
				if p.Pick(c, t0, nil) == nil || p.Pick(c, t0, ex) == nil {
					t.Fatal("nil pick")
				}
			})
			if allocs != 0 {
				t.Errorf("%v persist=%v: %v allocs per Pick", algo, persist, allocs)
			}
		}
	}
}

func TestRebuildReusesTable(t *testing.T) {
	ms := members(4)
	ms[3].Backup = true
	p := NewPool(SH, ms, Options{})
	before := p.snap.Load()
	mustNil(t, p.SetUp("b3", false)) // a backup flaps while primaries serve
	after := p.snap.Load()
	if before == after || &before.table[0] != &after.table[0] {
		t.Fatal("want a new snapshot sharing the Maglev table")
	}
	mustNil(t, p.SetUp("b0", false))
	if &p.snap.Load().table[0] == &after.table[0] {
		t.Fatal("table not rebuilt after a candidate went down")
	}
}

func TestReconfigure(t *testing.T) {
	ms := members(3)
	sorry := Member{Name: "sorry", Addr: netip.MustParseAddrPort("127.0.0.1:81")}
	o := Options{PersistTimeout: time.Minute, Sorry: &sorry}
	p := NewPool(RR, ms, o)
	c := netip.MustParseAddr("198.18.4.4")
	first := p.Pick(c, t0, nil)
	first.Acquire()
	sorryB := p.Backend("sorry")

	// Same options, new scheduler: persistence, counters and the sorry
	// backend survive.
	p.Reconfigure(WLC, ms, o)
	if p.Algo() != WLC {
		t.Fatalf("algo %v", p.Algo())
	}
	if got := p.Pick(c, t0, nil); got != first || got.Active() != 1 {
		t.Fatalf("persistence or counters lost: %v", got.Name())
	}
	if p.Backend("sorry") != sorryB {
		t.Fatal("sorry backend replaced")
	}
	// wlc now: the member with the active connection is avoided by a new client.
	if got := p.Pick(netip.MustParseAddr("198.18.4.5"), t0, nil); got == first {
		t.Fatal("wlc not in effect")
	}

	// Changed persistence settings start an empty table; a new sorry
	// address is a new backend; no sorry server removes it.
	o2 := o
	o2.PersistMask4 = 24
	o2.Sorry = &Member{Name: "sorry", Addr: netip.MustParseAddrPort("127.0.0.1:82")}
	p.Reconfigure(SH, ms, o2)
	if p.PersistLen() != 0 {
		t.Fatalf("%d entries kept across a persistence change", p.PersistLen())
	}
	if p.Backend("sorry") == sorryB {
		t.Fatal("sorry with a new address kept the old backend")
	}
	p.Reconfigure(SH, ms, Options{})
	if p.Backend("sorry") != nil || p.PersistLen() != 0 {
		t.Fatal("sorry or persistence left after being removed")
	}
	for _, m := range ms {
		mustNil(t, p.SetUp(m.Name, false))
	}
	if p.Pick(c, t0, nil) != nil {
		t.Fatal("sorry server still returned")
	}
	// Unknown schedulers behave like rr.
	p.Reconfigure(Algo(200), ms, Options{})
	if p.Algo() != RR {
		t.Fatalf("algo %v", p.Algo())
	}
}

func TestPersistHugeTimeout(t *testing.T) {
	p := NewPool(RR, members(3), Options{PersistTimeout: time.Duration(math.MaxInt64)})
	c := netip.MustParseAddr("198.18.0.9")
	first := p.Pick(c, t0, nil)
	for range 5 {
		if p.Pick(c, t0.Add(time.Hour), nil) != first {
			t.Fatal("entry with a huge timeout expired (overflow)")
		}
	}
}

// Find sees only members that can take new connections, and allocates nothing.
func TestFind(t *testing.T) {
	p := NewPool(RR, members(3), Options{})
	b2 := p.Backend("b2")
	is := func(b *Backend) bool { return b == b2 }
	if got := p.Find(is); got != b2 {
		t.Fatalf("Find = %v, want b2", got)
	}
	if allocs := testing.AllocsPerRun(100, func() { p.Find(is) }); allocs != 0 {
		t.Errorf("%v allocs per Find", allocs)
	}
	p.SetUp("b2", false)
	if got := p.Find(is); got != nil {
		t.Fatalf("Find returned a down member: %v", got)
	}
}
