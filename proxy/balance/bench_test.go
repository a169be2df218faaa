package balance

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func BenchmarkPick(b *testing.B) {
	weights := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, algo := range []Algo{RR, WRR, LC, WLC, SH, DH, MH} {
		for _, persist := range []bool{false, true} {
			name := algo.String()
			o := Options{}
			if persist {
				name += "+persist"
				o.PersistTimeout = time.Hour
			}
			b.Run(name, func(b *testing.B) {
				p := NewPool(algo, members(10, weights...), o)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						// 256 distinct clients: persistence hits after the first round.
						c := netip.AddrFrom4([4]byte{198, 18, 2, byte(i)})
						if p.Pick(c, t0, nil) == nil {
							b.Fatal("nil pick")
						}
						i++
					}
				})
			})
		}
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	be := newBackend(Member{Name: "x", MaxConn: 1 << 30}, false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if be.Acquire() {
				be.Release()
			}
		}
	})
}

// BenchmarkRebuild measures a snapshot rebuild (what SetUp costs) per
// scheduler and pool size.
func BenchmarkRebuild(b *testing.B) {
	for _, algo := range []Algo{RR, WRR, SH} {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", algo, n), func(b *testing.B) {
				ws := make([]int, n)
				for i := range ws {
					ws[i] = 1 + i%7
				}
				ms := make([]Member, n)
				for i := range ms {
					ms[i] = Member{Name: fmt.Sprintf("m%d", i), Weight: ws[i]}
				}
				p := NewPool(algo, ms, Options{})
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					_ = p.SetUp("m0", i%2 == 0)
				}
			})
		}
	}
}
