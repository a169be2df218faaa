package balance

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"
)

const (
	persistShards     = 64
	defaultPersistMax = 1 << 18
	evictSample       = 8
	maxPersistTimeout = 100 * 365 * 24 * time.Hour
)

type persistEntry struct {
	b   *Backend
	exp int64 // unix nanoseconds
}

// persistKey is a masked client address in its 16-byte form (IPv4 as
// IPv4-mapped IPv6), cheaper to hash than a netip.Addr.
type persistKey [16]byte

type persistShard struct {
	mu        sync.Mutex
	m         map[persistKey]*persistEntry
	nextSweep int64
	_         [40]byte
}

// persistTable maps masked client addresses to backends (see the package
// doc for the rules and the bound).
type persistTable struct {
	ttl      int64
	mask4    int
	mask6    int
	perShard int
	shards   [persistShards]persistShard
}

func newPersistTable(o Options) *persistTable {
	// Clamped so that now+ttl cannot overflow.
	t := &persistTable{ttl: int64(min(o.PersistTimeout, maxPersistTimeout)), mask4: 32, mask6: 128}
	if o.PersistMask4 > 0 && o.PersistMask4 <= 32 {
		t.mask4 = o.PersistMask4
	}
	if o.PersistMask6 > 0 && o.PersistMask6 <= 128 {
		t.mask6 = o.PersistMask6
	}
	limit := o.PersistMax
	if limit <= 0 {
		limit = defaultPersistMax
	}
	t.perShard = max(limit/persistShards, 1)
	for i := range t.shards {
		t.shards[i].m = map[persistKey]*persistEntry{}
	}
	return t
}

// key masks the client address to the persistence granularity.
func (t *persistTable) key(client netip.Addr) persistKey {
	a := client.Unmap()
	bits := t.mask6
	if a.Is4() {
		bits = t.mask4
	}
	if pfx, err := a.Prefix(bits); err == nil {
		a = pfx.Addr()
	}
	return a.As16()
}

func (k persistKey) hash() uint64 {
	return mix64(mix64(binary.LittleEndian.Uint64(k[:8])^seedShard) ^ binary.LittleEndian.Uint64(k[8:]))
}

// pick returns the persistent backend of client if it may be kept, else
// schedules a new one and records it. The shard lock is held across the new
// pick so that concurrent first connections of one client agree.
func (t *persistTable) pick(p *Pool, s *snapshot, client netip.Addr, now time.Time, exclude []*Backend) *Backend {
	key := t.key(client)
	sh := &t.shards[key.hash()%persistShards]
	ns := now.UnixNano()
	sh.mu.Lock()
	e := sh.m[key]
	if e != nil && e.exp > ns {
		if _, sticky := s.sticky[e.b]; sticky && !excluded(e.b, exclude) {
			e.exp = ns + t.ttl
			b := e.b
			sh.mu.Unlock()
			return b
		}
	}
	b := p.pickNew(s, client, exclude)
	switch {
	case b == nil && e != nil:
		delete(sh.m, key)
	case b != nil && e != nil:
		e.b, e.exp = b, ns+t.ttl
	case b != nil:
		t.insert(sh, key, &persistEntry{b: b, exp: ns + t.ttl}, ns)
	}
	sh.mu.Unlock()
	return b
}

// insert adds e under the new key in sh (locked), sweeping and evicting to
// keep the bound.
func (t *persistTable) insert(sh *persistShard, key persistKey, e *persistEntry, now int64) {
	if now >= sh.nextSweep {
		sweepShard(sh, now)
		sh.nextSweep = now + t.ttl
	}
	if len(sh.m) >= t.perShard {
		var victim persistKey
		var oldest int64
		n := 0
		for k, v := range sh.m {
			if n == 0 || v.exp < oldest {
				victim, oldest = k, v.exp
			}
			if n++; n == evictSample {
				break
			}
		}
		delete(sh.m, victim)
	}
	sh.m[key] = e
}

func sweepShard(sh *persistShard, now int64) int {
	n := 0
	for k, v := range sh.m {
		if v.exp <= now {
			delete(sh.m, k)
			n++
		}
	}
	return n
}

// SweepPersist removes the expired persistence entries and returns how many
// it removed. Pick sweeps by itself; calling this from a timer only returns
// memory sooner.
func (p *Pool) SweepPersist(now time.Time) int {
	t := p.snap.Load().persist
	if t == nil {
		return 0
	}
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += sweepShard(sh, now.UnixNano())
		sh.mu.Unlock()
	}
	return n
}

// PersistLen returns the number of persistence entries (expired ones not yet
// swept included).
func (p *Pool) PersistLen() int {
	t := p.snap.Load().persist
	if t == nil {
		return 0
	}
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
