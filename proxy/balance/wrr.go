package balance

// maxSeq bounds the length of a smooth wrr sequence.
const maxSeq = 8192

// smoothSequence returns one period of nginx's smooth weighted round robin
// over weights (all > 0) as indices: each step adds every weight to its
// current value, picks the largest current (first on ties) and subtracts the
// total from it. Weights are first divided by their gcd; if the total still
// exceeds maxSeq they are scaled down proportionally (each stays >= 1).
func smoothSequence(weights []int) []uint16 {
	if len(weights) == 0 {
		return nil
	}
	w := make([]int64, len(weights))
	g := int64(0)
	for i, x := range weights {
		w[i] = int64(max(x, 1))
		g = gcd(g, w[i])
	}
	var sum int64
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	if sum > maxSeq {
		g, sum = 0, 0
		var total int64
		for _, x := range w {
			total += x
		}
		for i := range w {
			w[i] = max(w[i]*maxSeq/total, 1)
			g = gcd(g, w[i])
		}
		for i := range w {
			w[i] /= g
			sum += w[i]
		}
	}
	cur := make([]int64, len(w))
	seq := make([]uint16, sum)
	for k := range seq {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		seq[k] = uint16(best)
	}
	return seq
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
