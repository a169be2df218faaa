package bench

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestHistIndexBoundsRoundTrip(t *testing.T) {
	check := func(v uint64) {
		t.Helper()
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, out of [0,%d)", v, i, histBuckets)
		}
		lo, hi := histBounds(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d with bounds [%d,%d]", v, i, lo, hi)
		}
		if v >= 1<<histSubBits && float64(hi-lo+1)/float64(lo) > 1.0/(1<<(histSubBits-1))+1e-12 {
			t.Fatalf("bucket %d [%d,%d] wider than the promised relative precision", i, lo, hi)
		}
	}
	for v := uint64(0); v < 1<<14; v++ {
		check(v)
	}
	for e := histSubBits; e <= histMaxBits; e++ {
		for _, d := range []int64{-1, 0, 1} {
			if v := uint64(int64(1)<<e + d); v <= histMaxValue {
				check(v)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		check(r.Uint64N(histMaxValue + 1))
	}
	// Buckets tile the range with no gap or overlap.
	var next uint64
	for i := range histBuckets {
		lo, hi := histBounds(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		next = hi + 1
	}
	if next != histMaxValue+1 {
		t.Fatalf("last bucket ends at %d, want %d", next-1, histMaxValue)
	}
}

func TestHistogramPercentiles(t *testing.T) {
	h := NewHistogram()
	if h.Percentile(50) != 0 || h.Count() != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	// 1..100000 µs uniformly: percentile p is p% of 100 ms, within the bucket precision.
	for i := 1; i <= 100000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	if h.Count() != 100000 {
		t.Fatalf("count %d", h.Count())
	}
	for _, p := range []float64{1, 50, 90, 99, 99.9} {
		want := time.Duration(p * float64(time.Millisecond))
		got := h.Percentile(p)
		if rel := float64(got-want) / float64(want); rel < -0.001 || rel > 0.01 {
			t.Errorf("p%v = %v, want %v (+1%%)", p, got, want)
		}
	}
	if got := h.Percentile(100); got != 100*time.Millisecond {
		t.Errorf("p100 = %v, want the max 100ms", got)
	}
	if got := h.Percentile(0); got != time.Microsecond {
		t.Errorf("p0 = %v, want the min 1µs", got)
	}
	if m := h.Mean(); m < 50*time.Millisecond || m > 50*time.Millisecond+time.Microsecond {
		t.Errorf("mean = %v, want 50.0005ms", m)
	}
}

func TestHistogramExactSmallValuesAndClamp(t *testing.T) {
	h := NewHistogram()
	h.Record(-5)
	h.Record(7)
	h.Record(7)
	h.Record(200)
	if got := h.Percentile(25); got != 0 {
		t.Errorf("p25 = %v, want 0 (negative recorded as 0)", got)
	}
	if got := h.Percentile(50); got != 7 {
		t.Errorf("p50 = %v, want 7ns", got)
	}
	if got := h.Percentile(99); got != 200 {
		t.Errorf("p99 = %v, want 200ns", got)
	}
	h.Record(time.Duration(1) << 62)
	if h.Max() != histMaxValue {
		t.Errorf("max = %v, want clamped to %v", h.Max(), time.Duration(histMaxValue))
	}
}

func TestHistogramMerge(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 10000 {
		v := time.Duration(r.Int64N(int64(time.Second)))
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
		all.Record(v)
	}
	a.Merge(b)
	a.Merge(NewHistogram())
	if a.Count() != all.Count() || a.Min() != all.Min() || a.Max() != all.Max() {
		t.Fatalf("merged count/min/max %d/%v/%v, want %d/%v/%v", a.Count(), a.Min(), a.Max(), all.Count(), all.Min(), all.Max())
	}
	for _, p := range []float64{10, 50, 99, 99.99} {
		if a.Percentile(p) != all.Percentile(p) {
			t.Errorf("p%v: merged %v, direct %v", p, a.Percentile(p), all.Percentile(p))
		}
	}
}
