package bgp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func rt(s string) Route { return Route{Prefix: netip.MustParsePrefix(s)} }

func TestPlanRoutes(t *testing.T) {
	med := rt("198.18.0.10/32")
	med.MED, med.HasMED = 10, true
	cases := []struct {
		name            string
		have, want      []Route
		add, withdrawal []Route
	}{
		{name: "nothing"},
		{name: "first announce", want: []Route{rt("198.18.0.11/32"), rt("198.18.0.10/32")},
			add: []Route{rt("198.18.0.10/32"), rt("198.18.0.11/32")}},
		{name: "steady", have: []Route{rt("198.18.0.10/32")}, want: []Route{rt("198.18.0.10/32")}},
		{name: "withdraw", have: []Route{rt("198.18.0.10/32"), rt("2001:db8::10/128")}, want: []Route{rt("2001:db8::10/128")},
			withdrawal: []Route{rt("198.18.0.10/32")}},
		{name: "attribute change replaces", have: []Route{rt("198.18.0.10/32")}, want: []Route{med}, add: []Route{med}},
		{name: "duplicate desired: first wins", want: []Route{med, rt("198.18.0.10/32")}, add: []Route{med}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := PlanRoutes(c.have, c.want)
			if d := cmp.Diff(c.add, p.Add); d != "" {
				t.Errorf("add (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.withdrawal, p.Withdraw); d != "" {
				t.Errorf("withdraw (-want +got):\n%s", d)
			}
			if p.Empty() != (len(c.add)+len(c.withdrawal) == 0) {
				t.Errorf("Empty() = %v", p.Empty())
			}
		})
	}
}

func TestPlanNeighbors(t *testing.T) {
	a := Neighbor{Addr: netip.MustParseAddr("198.18.1.1"), RemoteAS: 65000}
	b := Neighbor{Addr: netip.MustParseAddr("198.18.1.2"), RemoteAS: 65000}
	b2 := b
	b2.HoldTime = 3 * time.Second
	c := Neighbor{Addr: netip.MustParseAddr("2001:db8::1"), RemoteAS: 65001}
	p := PlanNeighbors([]Neighbor{a, b}, []Neighbor{b2, c, c})
	want := NeighborPlan{Add: []Neighbor{c}, Update: []Neighbor{b2}, Delete: []netip.Addr{a.Addr}}
	if d := cmp.Diff(want, p, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
		t.Fatalf("plan (-want +got):\n%s", d)
	}
}

func TestKeepalive(t *testing.T) {
	for _, c := range []struct{ hold, ka time.Duration }{
		{0, 30 * time.Second}, {3 * time.Second, time.Second}, {9 * time.Second, 3 * time.Second}, {4 * time.Second, time.Second},
	} {
		if got := (Neighbor{HoldTime: c.hold}).Keepalive(); got != c.ka {
			t.Errorf("hold %v: keepalive %v, want %v", c.hold, got, c.ka)
		}
	}
}

func TestHostRoute(t *testing.T) {
	if got := HostRoute(netip.MustParseAddr("::ffff:198.18.0.10")); got.String() != "198.18.0.10/32" {
		t.Errorf("v4-mapped: %s", got)
	}
	if got := HostRoute(netip.MustParseAddr("2001:db8::10")); got.String() != "2001:db8::10/128" {
		t.Errorf("v6: %s", got)
	}
}
