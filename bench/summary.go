package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Summary is one cell over several runs (--runs): medians, and each run's ratios to HAProxy.
type Summary struct {
	Target, Mode string
	Size, Conns  int
	Runs         int // runs that measured the cell
	RPS          float64
	P99          time.Duration
	Errors       uint64 // summed over the runs
	Non2xx       uint64
	// Medians of the runs' own ratios (each run's halb against the same run's HAProxy), NaN
	// when no run had one.
	VsHAProxyRPS, VsHAProxyP99 float64
	PerCore, VsHAProxyPerCore  float64
	IdleCores                  float64
	RPSRatios, PerCoreRatios   []float64 // the runs' ratios to HAProxy, in run order (NaN: none)
}

// summarize folds the rows of several runs (each already through computeRatios) into one
// summary per cell, in the order the cells first appear.
func summarize(runs [][]Row) []Summary {
	type key struct {
		target, mode string
		size, conns  int
	}
	var order []key
	cells := map[key][]Row{}
	for _, rows := range runs {
		for _, r := range rows {
			k := key{r.Target, r.Mode, r.Size, r.Conns}
			if _, ok := cells[k]; !ok {
				order = append(order, k)
			}
			cells[k] = append(cells[k], r)
		}
	}
	out := make([]Summary, 0, len(order))
	for _, k := range order {
		rs := cells[k]
		s := Summary{Target: k.target, Mode: k.mode, Size: k.size, Conns: k.conns, Runs: len(rs)}
		pick := func(f func(Row) float64) []float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return v
		}
		for _, r := range rs {
			s.Errors += r.Errors
			s.Non2xx += r.Non2xx
		}
		s.RPS = median(pick(func(r Row) float64 { return r.RPS }))
		s.P99 = time.Duration(median(pick(func(r Row) float64 { return float64(r.P99) })))
		s.RPSRatios = pick(func(r Row) float64 { return r.VsHAProxyRPS })
		s.PerCoreRatios = pick(func(r Row) float64 { return r.VsHAProxyPerCore })
		s.VsHAProxyRPS = median(s.RPSRatios)
		s.VsHAProxyP99 = median(pick(func(r Row) float64 { return r.VsHAProxyP99 }))
		s.PerCore = median(pick(func(r Row) float64 { return r.PerCore }))
		s.VsHAProxyPerCore = median(s.PerCoreRatios)
		s.IdleCores = median(pick(func(r Row) float64 { return r.IdleCores }))
		out = append(out, s)
	}
	return out
}

// median is the middle of the values that are numbers (the mean of the two middle ones for
// an even count); NaN when there are none.
func median(v []float64) float64 {
	var xs []float64
	for _, x := range v {
		if !math.IsNaN(x) {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func fmtRatios(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmtRatio(x)
	}
	return strings.Join(s, ", ")
}

// printSummary prints the medians table of a --runs set.
func printSummary(w io.Writer, n int, sums []Summary) {
	fmt.Fprintf(w, "Median of %d runs (each ratio is taken within its run, then the median of the runs' ratios):\n\n", n)
	fmt.Fprintln(w, "| target | mode | body | conns | runs | req/s | p99 ms | errors | non-2xx | rps / haproxy | rps / haproxy, each run | p99 / haproxy | req/s per proxy core | per core / haproxy | per core / haproxy, each run | idle cores |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|")
	for _, s := range sums {
		fmt.Fprintf(w, "| %s | %s | %s | %d | %d | %.0f | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s |\n",
			s.Target, s.Mode, sizeName(s.Size), s.Conns, s.Runs, s.RPS, fmtMS(s.P99), s.Errors, s.Non2xx,
			fmtRatio(s.VsHAProxyRPS), fmtRatios(s.RPSRatios), fmtRatio(s.VsHAProxyP99), fmtCount(s.PerCore),
			fmtRatio(s.VsHAProxyPerCore), fmtRatios(s.PerCoreRatios), fmtCPU(s.IdleCores))
	}
	fmt.Fprintln(w)
}
