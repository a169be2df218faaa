package ipvs

import (
	"net/netip"
	"testing"
	"time"
)

// bigTable is n services with d DR destinations each.
func bigTable(n, d int) []Service {
	svcs := make([]Service, n)
	for i := range svcs {
		s := Service{
			Addr:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 80),
			Protocol: TCP, Scheduler: "wrr", Timeout: time.Minute,
		}
		for j := range d {
			s.Dests = append(s.Dests, Dest{
				Addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(j >> 8), byte(j)}), 80),
				Weight: 1, Method: DR,
			})
		}
		svcs[i] = s.Normalize()
	}
	return svcs
}

// BenchmarkPlanSteady is one reconcile pass over 1000 services × 10
// destinations when nothing changed (the common case every interval).
func BenchmarkPlanSteady(b *testing.B) {
	desired := bigTable(1000, 10)
	current := bigTable(1000, 10)
	owned := make(map[ServiceKey]bool, len(desired))
	for _, s := range desired {
		owned[s.Key()] = true
	}
	b.ReportAllocs()
	for b.Loop() {
		if ops, _ := Plan(desired, current, owned); len(ops) != 0 {
			b.Fatal("ops on a steady table")
		}
	}
}

func BenchmarkEncodeNewDest(b *testing.B) {
	s := webService()
	d := s.Dests[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newDestReq(&s, &d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeService(b *testing.B) {
	payload := func() []byte {
		m, err := newServiceReq(&Service{Addr: vip80, Protocol: TCP, Scheduler: "wrr", Timeout: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		return m.Data
	}()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeService(payload); err != nil {
			b.Fatal(err)
		}
	}
}
