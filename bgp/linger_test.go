package bgp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestLinger(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("198.18.0.11")
	t0 := time.Unix(1000, 0)
	drain := 3 * time.Second
	var l Linger
	step := func(at time.Duration, announced []netip.Addr, want []netip.Addr, wantNext time.Duration) {
		t.Helper()
		got, next := l.Local(t0.Add(at), announced, drain)
		if !slices.Equal(got, want) {
			t.Errorf("at %v: local %v, want %v", at, got, want)
		}
		var wn time.Time
		if wantNext >= 0 {
			wn = t0.Add(wantNext)
		}
		if !next.Equal(wn) {
			t.Errorf("at %v: next %v, want %v", at, next, wn)
		}
	}
	step(0, []netip.Addr{b, a}, []netip.Addr{a, b}, -1)
	step(time.Second, []netip.Addr{b}, []netip.Addr{a, b}, 4*time.Second) // a withdrawn: lingers
	step(2*time.Second, []netip.Addr{b}, []netip.Addr{a, b}, 4*time.Second)
	step(4*time.Second, []netip.Addr{b}, []netip.Addr{b}, -1) // drain over
	step(5*time.Second, nil, []netip.Addr{b}, 8*time.Second)
	step(6*time.Second, []netip.Addr{b}, []netip.Addr{b}, -1) // re-announced before the end
	step(9*time.Second, []netip.Addr{b}, []netip.Addr{b}, -1)
}
