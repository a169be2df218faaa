package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram is a log-linear latency histogram in the style of HdrHistogram, written by hand
// (no HDR histogram module is in go.mod). Values are nanoseconds. Values below 2^histSubBits
// are counted exactly; above that each power-of-two range is split into 2^(histSubBits-1)
// equal buckets, so a reported value is within 1/2^(histSubBits-1) (0.78 %) of the recorded
// one. Values above histMaxValue are clamped to it. The zero value is not usable: use
// NewHistogram. A Histogram is not safe for concurrent use; give each goroutine its own and
// Merge them.
type Histogram struct {
	counts []uint64
	total  uint64
	min    uint64
	max    uint64
	sum    float64
}

const (
	histSubBits  = 8
	histMaxBits  = 40 // 2^40 ns ≈ 18 minutes
	histMaxValue = 1<<histMaxBits - 1
	histBuckets  = 1<<histSubBits + (histMaxBits-histSubBits)<<(histSubBits-1)
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, histBuckets), min: math.MaxUint64}
}

// histIndex maps a value to its bucket.
func histIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	n := bits.Len64(v) // > histSubBits
	g := n - histSubBits
	top := v >> uint(g) // in [2^(S-1), 2^S)
	return 1<<histSubBits + (g-1)<<(histSubBits-1) + int(top-1<<(histSubBits-1))
}

// histBounds returns the smallest and largest value that map to bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < 1<<histSubBits {
		return uint64(i), uint64(i)
	}
	j := i - 1<<histSubBits
	g := j>>(histSubBits-1) + 1
	top := uint64(j&(1<<(histSubBits-1)-1)) + 1<<(histSubBits-1)
	lo = top << uint(g)
	hi = lo + 1<<uint(g) - 1
	return lo, hi
}

// Record adds one value.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	if v > histMaxValue {
		v = histMaxValue
	}
	h.counts[histIndex(v)]++
	h.total++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min is the smallest recorded value (0 when empty).
func (h *Histogram) Min() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Max is the largest recorded value (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact mean of the recorded values (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Percentile returns the value below or at which p percent of the recorded values lie
// (p in [0, 100]), as the highest value of its bucket, clamped to the recorded min and max;
// p 0 is the min.
// It returns 0 for an empty histogram.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if p <= 0 {
		return time.Duration(h.min)
	}
	p = min(p, 100)
	rank := uint64(math.Ceil(p / 100 * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := histBounds(i)
			return time.Duration(min(max(hi, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
