package bgp

import (
	"cmp"
	"net/netip"
	"slices"
)

// RoutePlan is what turns the announced routes into the desired ones.
type RoutePlan struct {
	Add      []Route // new or changed routes (an AddPath of an existing prefix replaces it)
	Withdraw []Route // routes no longer desired
}

// Empty reports whether the plan changes nothing.
func (p RoutePlan) Empty() bool { return len(p.Add) == 0 && len(p.Withdraw) == 0 }

// PlanRoutes compares the announced routes with the desired ones. A prefix appears once in the
// result; when desired lists a prefix twice the first wins. The output is sorted by prefix.
func PlanRoutes(announced, desired []Route) RoutePlan {
	have := map[netip.Prefix]Route{}
	for _, r := range announced {
		have[r.Prefix] = r
	}
	want := map[netip.Prefix]Route{}
	for _, r := range desired {
		if _, dup := want[r.Prefix]; !dup {
			want[r.Prefix] = r
		}
	}
	var p RoutePlan
	for pfx, r := range want {
		if h, ok := have[pfx]; !ok || !h.Equal(r) {
			p.Add = append(p.Add, r)
		}
	}
	for pfx, r := range have {
		if _, ok := want[pfx]; !ok {
			p.Withdraw = append(p.Withdraw, r)
		}
	}
	byPrefix := func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) }
	slices.SortFunc(p.Add, byPrefix)
	slices.SortFunc(p.Withdraw, byPrefix)
	return p
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// NeighborPlan is what turns the configured neighbors into the desired ones.
type NeighborPlan struct {
	Add    []Neighbor
	Update []Neighbor // same address, other settings: GoBGP resets the session
	Delete []netip.Addr
}

// PlanNeighbors compares the configured neighbors with the desired ones, by address.
func PlanNeighbors(have, want []Neighbor) NeighborPlan {
	h := map[netip.Addr]Neighbor{}
	for _, n := range have {
		h[n.Addr] = n
	}
	w := map[netip.Addr]bool{}
	var p NeighborPlan
	for _, n := range want {
		if w[n.Addr] {
			continue
		}
		w[n.Addr] = true
		old, ok := h[n.Addr]
		switch {
		case !ok:
			p.Add = append(p.Add, n)
		case old != n:
			p.Update = append(p.Update, n)
		}
	}
	for _, n := range have {
		if !w[n.Addr] {
			p.Delete = append(p.Delete, n.Addr)
		}
	}
	return p
}
