package bgp

import (
	"net/netip"
	"slices"
	"time"
)

// Linger decides which VIPs stay local: an announced VIP is local, and a withdrawn one stays
// local for the drain time, so that packets the routers still send during convergence (and the
// connections already open) are accepted rather than dropped. It is a pure core: the caller gives
// the time.
type Linger struct {
	gone map[netip.Addr]time.Time // withdrawn VIP -> when
	prev map[netip.Addr]bool
}

// Local returns the VIPs that must be local at now, sorted, and the next time the answer
// changes by itself (zero: never).
func (l *Linger) Local(now time.Time, announced []netip.Addr, drain time.Duration) ([]netip.Addr, time.Time) {
	if l.gone == nil {
		l.gone, l.prev = map[netip.Addr]time.Time{}, map[netip.Addr]bool{}
	}
	cur := map[netip.Addr]bool{}
	for _, a := range announced {
		cur[a] = true
		delete(l.gone, a)
	}
	for a := range l.prev {
		if !cur[a] {
			l.gone[a] = now
		}
	}
	l.prev = cur
	out := slices.Collect(func(yield func(netip.Addr) bool) {
		for a := range cur {
			if !yield(a) {
				return
			}
		}
	})
	var next time.Time
	for a, at := range l.gone {
		end := at.Add(drain)
		if !now.Before(end) {
			delete(l.gone, a)
			continue
		}
		out = append(out, a)
		if next.IsZero() || end.Before(next) {
			next = end
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, next
}
