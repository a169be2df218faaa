package balance

import (
	"net/netip"
	"sync"
	"time"
)

const (
	persistShards     = 64
	defaultPersistMax = 1 << 18
	evictSample       = 8
)

type persistEntry struct {
	b   *Backend
	exp int64 // unix nanoseconds
}

type persistShard struct {
	mu        sync.Mutex
	m         map[netip.Addr]persistEntry
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
	t := &persistTable{ttl: int64(o.PersistTimeout), mask4: 32, mask6: 128}
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
		t.shards[i].m = map[netip.Addr]persistEntry{}
	}
	return t
}

// key masks the client address to the persistence granularity.
func (t *persistTable) key(client netip.Addr) netip.Addr {
	a := client.Unmap().WithZone("")
	bits := t.mask6
	if a.Is4() {
		bits = t.mask4
	}
	pfx, err := a.Prefix(bits)
	if err != nil {
		return a
	}
	return pfx.Addr()
}

// pick returns the persistent backend of client if it may be kept, else
// schedules a new one and records it. The shard lock is held across the new
// pick so that concurrent first connections of one client agree.
func (t *persistTable) pick(p *Pool, s *snapshot, client netip.Addr, now time.Time, exclude []*Backend) *Backend {
	key := t.key(client)
	sh := &t.shards[hashAddr(key, seedShard)%persistShards]
	ns := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[key]
	if ok && e.exp > ns {
		if _, sticky := s.sticky[e.b]; sticky && !excluded(e.b, exclude) {
			e.exp = ns + t.ttl
			sh.m[key] = e
			return e.b
		}
	}
	b := p.pickNew(s, client, exclude)
	if b == nil {
		if ok {
			delete(sh.m, key)
		}
		return nil
	}
	t.put(sh, key, persistEntry{b: b, exp: ns + t.ttl}, ns, ok)
	return b
}

// put stores e under key in sh (locked), sweeping and evicting to keep the
// bound. exists says whether key is already present.
func (t *persistTable) put(sh *persistShard, key netip.Addr, e persistEntry, now int64, exists bool) {
	if now >= sh.nextSweep {
		sweepShard(sh, now)
		sh.nextSweep = now + t.ttl
	}
	if !exists && len(sh.m) >= t.perShard {
		var victim netip.Addr
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
	if p.persist == nil {
		return 0
	}
	n := 0
	for i := range p.persist.shards {
		sh := &p.persist.shards[i]
		sh.mu.Lock()
		n += sweepShard(sh, now.UnixNano())
		sh.mu.Unlock()
	}
	return n
}

// PersistLen returns the number of persistence entries (expired ones not yet
// swept included).
func (p *Pool) PersistLen() int {
	if p.persist == nil {
		return 0
	}
	n := 0
	for i := range p.persist.shards {
		sh := &p.persist.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
