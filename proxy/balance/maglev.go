package balance

import (
	"slices"
	"strings"
)

// maglevSize is the Maglev lookup table size, a prime much larger than any
// realistic pool (Maglev wants M >> N; 65537 keeps the imbalance under about
// 1% up to ~650 backends).
const maglevSize = 65537

const maglevEmpty = 0xffff

// buildMaglev returns a Maglev lookup table (Eisenbud et al., NSDI 2016) over
// the candidates, with Envoy's weighted population: each round, a backend
// whose weight is w takes its next preferred free slot when its accumulated
// credit allows, so it owns about w/sum of the table. Backends are visited
// in name order, so the table does not depend on configuration order.
func buildMaglev(set []*Backend, weights []int) []uint16 {
	if len(set) == 0 {
		return nil
	}
	type entry struct {
		idx       uint16
		pos, skip uint64
		w, credit uint64
	}
	ents := make([]entry, len(set))
	var maxW uint64
	for i, b := range set {
		ents[i] = entry{
			idx:  uint16(i),
			pos:  hashString(b.name, seedOffset) % maglevSize,
			skip: hashString(b.name, seedSkip)%(maglevSize-1) + 1,
			w:    uint64(max(weights[i], 1)),
		}
		maxW = max(maxW, ents[i].w)
	}
	slices.SortFunc(ents, func(a, b entry) int {
		return strings.Compare(set[a.idx].name, set[b.idx].name)
	})
	table := make([]uint16, maglevSize)
	for i := range table {
		table[i] = maglevEmpty
	}
	filled := 0
	for round := uint64(0); ; round++ {
		for i := range ents {
			e := &ents[i]
			if round*e.w < e.credit {
				continue
			}
			e.credit += maxW
			for table[e.pos] != maglevEmpty {
				if e.pos += e.skip; e.pos >= maglevSize {
					e.pos -= maglevSize
				}
			}
			table[e.pos] = e.idx
			if e.pos += e.skip; e.pos >= maglevSize {
				e.pos -= maglevSize
			}
			if filled++; filled == maglevSize {
				return table
			}
		}
	}
}
