package balance

import (
	"net/netip"
	"sync/atomic"
)

// Member is one configured real server.
type Member struct {
	Name    string // unique in the pool, e.g. "198.18.1.10:80"
	Addr    netip.AddrPort
	Weight  int  // configured weight (0 = takes no new connections; negative counts as 0)
	MaxConn int  // per-backend limit, 0 = unlimited
	Backup  bool // used only when no non-backup member is eligible
	Data    any  // opaque per-member data for the caller; carried through to Backend.Data
}

// Backend is the runtime identity of a member. The same *Backend is kept
// across snapshots and reloads (Pool.Update) as long as the member keeps its
// Name and Addr, so its counters survive a reload.
type Backend struct {
	// Hot, written on every connection: first cache line.
	active  atomic.Int64
	total   atomic.Uint64
	maxConn atomic.Int64
	_       [40]byte // keep other backends' counters off this cache line

	bytesIn, bytesOut atomic.Uint64 // traffic to and from this backend, added when a session or request ends

	name  string
	addr  netip.AddrPort
	data  atomic.Pointer[dataBox]
	sorry bool
}

type dataBox struct{ v any }

func newBackend(m Member, sorry bool) *Backend {
	b := &Backend{name: m.Name, addr: m.Addr, sorry: sorry}
	b.maxConn.Store(int64(max(m.MaxConn, 0)))
	b.data.Store(&dataBox{m.Data})
	return b
}

// Name returns the member's name.
func (b *Backend) Name() string { return b.name }

// Addr returns the member's address.
func (b *Backend) Addr() netip.AddrPort { return b.addr }

// Data returns the member's opaque Data (as of the latest Update).
func (b *Backend) Data() any { return b.data.Load().v }

// Sorry reports whether b is the pool's sorry server.
func (b *Backend) Sorry() bool { return b.sorry }

// MaxConn returns the connection limit, 0 if unlimited.
func (b *Backend) MaxConn() int { return int(b.maxConn.Load()) }

// Acquire counts a new connection. It returns false, counting nothing, when
// the backend already has MaxConn active connections. It takes no lock.
func (b *Backend) Acquire() bool {
	limit := b.maxConn.Load()
	if limit <= 0 {
		b.active.Add(1)
		b.total.Add(1)
		return true
	}
	for {
		cur := b.active.Load()
		if cur >= limit {
			return false
		}
		if b.active.CompareAndSwap(cur, cur+1) {
			b.total.Add(1)
			return true
		}
	}
}

// Release ends a connection counted by a successful Acquire.
func (b *Backend) Release() { b.active.Add(-1) }

// Active returns the number of connections acquired and not yet released.
func (b *Backend) Active() int64 { return b.active.Load() }

// Total returns the number of successful Acquire calls since the backend was
// created.
func (b *Backend) Total() uint64 { return b.total.Load() }

// AddBytes counts traffic of one finished session or request: in = sent to
// the backend, out = received from it.
func (b *Backend) AddBytes(in, out int64) {
	if in > 0 {
		b.bytesIn.Add(uint64(in))
	}
	if out > 0 {
		b.bytesOut.Add(uint64(out))
	}
}

// Bytes returns the traffic counted by AddBytes.
func (b *Backend) Bytes() (in, out uint64) { return b.bytesIn.Load(), b.bytesOut.Load() }

// full reports whether b is at its connection limit right now.
func (b *Backend) full() bool {
	limit := b.maxConn.Load()
	return limit > 0 && b.active.Load() >= limit
}

// BackendView is a read-only copy of a member's state, for the admin API,
// the stats page and metrics.
type BackendView struct {
	Name             string
	Addr             netip.AddrPort
	Weight           int // effective (runtime) weight
	ConfiguredWeight int
	MaxConn          int
	Up               bool
	Admin            AdminState
	Eligible         bool // up, Ready and Weight > 0
	Active           int64
	Total            uint64
	BytesIn          uint64 // sent to the backend (AddBytes)
	BytesOut         uint64 // received from the backend
	Backup           bool
	Sorry            bool // the sorry server (always Up and Ready; Eligible false)
}
