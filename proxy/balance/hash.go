package balance

import (
	"encoding/binary"
	"net/netip"
)

// Seeds for the hashes. They are constants on purpose: the mapping of a
// client to a backend must be the same on both halb nodes of a VRRP pair
// (hash/maphash seeds are random per process, so it is not used here).
const (
	seedSource  uint64 = 0x9e3779b97f4a7c15
	seedDest    uint64 = 0xc2b2ae3d27d4eb4f
	seedKey     uint64 = 0x165667b19e3779f9
	seedShard   uint64 = 0x27d4eb2f165667c5
	seedOffset  uint64 = 0x85ebca77c2b2ae63
	seedSkip    uint64 = 0xff51afd7ed558ccd
	fnvOffset64 uint64 = 0xcbf29ce484222325
	fnvPrime64  uint64 = 0x100000001b3
)

// mix64 is the murmur3 64-bit finaliser: a bijection with full avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// hashAddr hashes an address; IPv4 and its IPv4-mapped IPv6 form hash the
// same, and the zone is ignored.
func hashAddr(a netip.Addr, seed uint64) uint64 {
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	return mix64(mix64(hi^seed) ^ lo)
}

// hashBytes is FNV-1a over b followed by mix64, seeded. (hash/fnv would
// allocate through its interface on the hot path.)
func hashBytes(b []byte, seed uint64) uint64 {
	h := fnvOffset64 ^ seed
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return mix64(h)
}

func hashString(s string, seed uint64) uint64 {
	h := fnvOffset64 ^ seed
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return mix64(h)
}
