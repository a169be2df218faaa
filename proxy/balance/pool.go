package balance

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotFound is returned (wrapped) by SetUp, SetWeight and SetAdmin for a name
// that is not a member of the pool.
var ErrNotFound = errors.New("no such member")

// maxCandidates bounds the candidate set of a snapshot (indices are uint16).
const maxCandidates = 1<<16 - 1

// Options are the pool-wide settings.
type Options struct {
	PersistTimeout time.Duration // 0 = off (keepalived persistence_timeout)
	PersistMask4   int           // prefix bits for persistence_granularity (0 means 32)
	PersistMask6   int           // 0 means 128
	PersistMax     int           // bound on persistence entries (0 means 262144)
	Sorry          *Member       // sorry_server: used when no member is eligible
}

// memberState is the writer-side state of one member, guarded by Pool.mu.
type memberState struct {
	b      *Backend
	cfg    Member
	weight int // effective weight
	up     bool
	admin  AdminState
}

func (m *memberState) eligible() bool {
	return m.up && m.admin == Ready && m.weight > 0
}

// snapshot is an immutable view of the pool used by Pick.
type snapshot struct {
	algo    Algo
	persist *persistTable // nil when persistence is off
	set     []*Backend    // candidates for new connections, configuration order
	weights []int         // effective weights, parallel to set
	seq     []uint16      // wrr: smooth sequence of indices into set
	table   []uint16      // sh/dh/mh: Maglev table of indices into set
	// sticky holds the backends that may keep persistent clients.
	sticky     map[*Backend]struct{}
	sorry      *Backend
	eligible   int
	liveWeight int
}

// Pool is a set of backends with a scheduler. Its methods are safe for
// concurrent use.
type Pool struct {
	_    [64]byte
	ctr  atomic.Uint64 // rr/wrr cursor, on its own cache line
	_    [56]byte
	snap atomic.Pointer[snapshot]

	mu      sync.Mutex // serialises writers; guards the fields below
	algo    Algo
	opts    Options
	persist *persistTable
	sorry   *Backend
	members []*memberState
	byName  map[string]*memberState
}

// NewPool returns a pool scheduling members with algo. An Algo outside the
// known values schedules like RR. Members with a duplicate Name after the
// first are ignored (configuration validation rejects them). New members
// start up and Ready.
func NewPool(algo Algo, members []Member, o Options) *Pool {
	p := &Pool{byName: map[string]*memberState{}}
	p.Reconfigure(algo, members, o)
	return p
}

// Algo returns the pool's scheduler.
func (p *Pool) Algo() Algo { return p.snap.Load().algo }

// Reconfigure is a full reload in one snapshot swap: scheduler, members (as
// Update) and options. The sorry server keeps its *Backend when its Name and
// Addr are unchanged. The persistence table is kept when PersistTimeout,
// PersistMask4/6 and PersistMax are unchanged, and otherwise started empty.
func (p *Pool) Reconfigure(algo Algo, members []Member, o Options) {
	if algo > MH {
		algo = RR
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.algo = algo
	switch {
	case o.Sorry == nil:
		p.sorry = nil
	case p.sorry != nil && p.sorry.name == o.Sorry.Name && p.sorry.addr == o.Sorry.Addr:
		p.sorry.maxConn.Store(int64(max(o.Sorry.MaxConn, 0)))
		p.sorry.data.Store(&dataBox{o.Sorry.Data})
	default:
		p.sorry = newBackend(*o.Sorry, true)
	}
	old := p.opts
	if p.persist == nil || o.PersistTimeout != old.PersistTimeout || o.PersistMask4 != old.PersistMask4 ||
		o.PersistMask6 != old.PersistMask6 || o.PersistMax != old.PersistMax {
		p.persist = nil
		if o.PersistTimeout > 0 {
			p.persist = newPersistTable(o)
		}
	}
	p.opts = o
	p.opts.Sorry = nil // not kept: the caller may reuse it
	p.update(members)
}

// Update replaces the member list (a reload). A member whose Name and Addr
// were already present keeps its *Backend (counters), health state, admin
// state and runtime weight, unless its configured Weight changed, in which
// case the effective weight becomes the new configured one. Its MaxConn,
// Backup and Data are taken from the new Member. Members with a new Name (or
// a changed Addr) start up and Ready; missing ones are removed.
func (p *Pool) Update(members []Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.update(members)
}

func (p *Pool) update(members []Member) {
	list := make([]*memberState, 0, len(members))
	byName := make(map[string]*memberState, len(members))
	for _, m := range members {
		if _, dup := byName[m.Name]; dup {
			continue
		}
		m.Weight = max(m.Weight, 0)
		m.MaxConn = max(m.MaxConn, 0)
		st, ok := p.byName[m.Name]
		if !ok || st.cfg.Addr != m.Addr {
			st = &memberState{b: newBackend(m, false), cfg: m, weight: m.Weight, up: true}
		} else {
			if st.cfg.Weight != m.Weight {
				st.weight = m.Weight
			}
			st.cfg = m
			st.b.maxConn.Store(int64(m.MaxConn))
			st.b.data.Store(&dataBox{m.Data})
		}
		list = append(list, st)
		byName[m.Name] = st
	}
	p.members, p.byName = list, byName
	p.rebuild()
}

// SetUp records a health verdict for the member called name.
func (p *Pool) SetUp(name string, up bool) error {
	return p.change("set up", name, func(m *memberState) bool {
		if m.up == up {
			return false
		}
		m.up = up
		return true
	})
}

// SetWeight sets the member's effective weight (health misc_dynamic, admin).
// Weight 0 takes no new connections but keeps persistent clients.
func (p *Pool) SetWeight(name string, w int) error {
	if w < 0 {
		return fmt.Errorf("balance: set weight %q: negative weight %d", name, w)
	}
	return p.change("set weight", name, func(m *memberState) bool {
		if m.weight == w {
			return false
		}
		m.weight = w
		return true
	})
}

// SetAdmin sets the member's admin state: Ready, Drain (no new connections,
// existing ones finish, persistent clients still honoured) or Maint.
func (p *Pool) SetAdmin(name string, s AdminState) error {
	if s > Maint {
		return fmt.Errorf("balance: set admin %q: invalid state %d", name, s)
	}
	return p.change("set admin", name, func(m *memberState) bool {
		if m.admin == s {
			return false
		}
		m.admin = s
		return true
	})
}

func (p *Pool) change(op, name string, f func(*memberState) bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.byName[name]
	if !ok {
		return fmt.Errorf("balance: %s %q: %w", op, name, ErrNotFound)
	}
	if f(m) {
		p.rebuild()
	}
	return nil
}

// rebuild computes a new snapshot from the members and publishes it. p.mu
// must be held.
func (p *Pool) rebuild() {
	s := &snapshot{algo: p.algo, persist: p.persist, sorry: p.sorry}
	if p.persist != nil {
		s.sticky = make(map[*Backend]struct{}, len(p.members))
	}
	var primaries, backups int
	for _, m := range p.members {
		if m.eligible() {
			if m.cfg.Backup {
				backups++
			} else {
				primaries++
			}
		}
	}
	s.eligible = primaries + backups
	useBackups := primaries == 0
	for _, m := range p.members {
		if s.sticky != nil && m.up && m.admin != Maint && (!m.cfg.Backup || useBackups) {
			s.sticky[m.b] = struct{}{}
		}
		if m.cfg.Backup != useBackups {
			continue
		}
		if m.eligible() && len(s.set) < maxCandidates {
			s.set = append(s.set, m.b)
			s.weights = append(s.weights, m.weight)
			s.liveWeight += m.weight
		}
	}
	if prev := p.snap.Load(); prev != nil && prev.algo == s.algo && slices.Equal(prev.set, s.set) && slices.Equal(prev.weights, s.weights) {
		// Same candidates and weights (e.g. a backup flapped while the
		// primaries serve): keep the precomputed sequence or table.
		s.seq, s.table = prev.seq, prev.table
	} else {
		switch s.algo {
		case WRR:
			s.seq = smoothSequence(s.weights)
		case SH, DH, MH:
			s.table = buildMaglev(s.set, s.weights)
		}
	}
	p.snap.Store(s)
}

// Views returns the state of every member in configuration order, followed
// by the sorry server if one is configured.
func (p *Pool) Views() []BackendView {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]BackendView, 0, len(p.members)+1)
	for _, m := range p.members {
		out = append(out, BackendView{
			Name:             m.cfg.Name,
			Addr:             m.cfg.Addr,
			Weight:           m.weight,
			ConfiguredWeight: m.cfg.Weight,
			MaxConn:          m.cfg.MaxConn,
			Up:               m.up,
			Admin:            m.admin,
			Eligible:         m.eligible(),
			Active:           m.b.Active(),
			Total:            m.b.Total(),
			BytesIn:          m.b.bytesIn.Load(),
			BytesOut:         m.b.bytesOut.Load(),
			Backup:           m.cfg.Backup,
		})
	}
	if b := p.sorry; b != nil {
		out = append(out, BackendView{
			Name:     b.name,
			Addr:     b.addr,
			MaxConn:  b.MaxConn(),
			Up:       true,
			Admin:    Ready,
			Active:   b.Active(),
			Total:    b.Total(),
			BytesIn:  b.bytesIn.Load(),
			BytesOut: b.bytesOut.Load(),
			Sorry:    true,
		})
	}
	return out
}

// Backend returns the member called name, or nil.
func (p *Pool) Backend(name string) *Backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.byName[name]; ok {
		return m.b
	}
	if p.sorry != nil && p.sorry.name == name {
		return p.sorry
	}
	return nil
}

// Find returns the first member that can take new connections now and for
// which match is true, or nil. It reads the current snapshot: no lock, no
// allocation (persistence by cookie looks its server up with it).
func (p *Pool) Find(match func(*Backend) bool) *Backend {
	for _, b := range p.snap.Load().set {
		if match(b) {
			return b
		}
	}
	return nil
}

// Eligible returns the number of members that can take new connections now
// (backups included, the sorry server not).
func (p *Pool) Eligible() int { return p.snap.Load().eligible }

// LiveWeight returns the sum of the effective weights of the members that
// take new connections now: the eligible non-backup members, or the eligible
// backups when no non-backup member is eligible. Drained, maint, down and
// weight-0 members count 0. It is what keepalived's quorum compares against.
func (p *Pool) LiveWeight() int { return p.snap.Load().liveWeight }

// String describes the pool briefly, for logs.
func (p *Pool) String() string {
	s := p.snap.Load()
	var b strings.Builder
	fmt.Fprintf(&b, "%s pool, %d eligible:", s.algo, s.eligible)
	for _, x := range s.set {
		b.WriteByte(' ')
		b.WriteString(x.name)
	}
	return b.String()
}

// Pick chooses a backend for a new connection from client at time now,
// skipping the backends in exclude (already tried). It returns nil when no
// candidate is left and no sorry server applies. Pick only chooses: the
// caller calls Acquire on the result and, when that fails, calls Pick again
// with the backend added to exclude.
func (p *Pool) Pick(client netip.Addr, now time.Time, exclude []*Backend) *Backend {
	s := p.snap.Load()
	var b *Backend
	if s.persist != nil && client.IsValid() {
		b = s.persist.pick(p, s, client, now, exclude)
	} else {
		b = p.pickNew(s, client, exclude)
	}
	if b == nil && s.eligible == 0 && s.sorry != nil && !excluded(s.sorry, exclude) {
		return s.sorry
	}
	return b
}

// PickKey chooses a backend by consistent (Maglev) hashing of key, for
// sh/dh/mh pools: for example a URL or a Host header ("balance uri"). It does
// not use persistence. For the other schedulers it behaves like Pick without
// a client address.
func (p *Pool) PickKey(key []byte, exclude []*Backend) *Backend {
	s := p.snap.Load()
	var b *Backend
	if s.table != nil {
		b = s.hashPick(hashBytes(key, seedKey), exclude)
	} else {
		b = p.pickNew(s, netip.Addr{}, exclude)
	}
	if b == nil && s.eligible == 0 && s.sorry != nil && !excluded(s.sorry, exclude) {
		return s.sorry
	}
	return b
}

func excluded(b *Backend, exclude []*Backend) bool {
	return slices.Contains(exclude, b)
}

// pickNew runs the scheduler on snapshot s.
func (p *Pool) pickNew(s *snapshot, client netip.Addr, exclude []*Backend) *Backend {
	n := len(s.set)
	if n == 0 {
		return nil
	}
	switch s.algo {
	case WRR:
		l := uint64(len(s.seq))
		start := p.ctr.Add(1) - 1
		if b := s.set[s.seq[start%l]]; !b.full() && !excluded(b, exclude) {
			return b
		}
		if !s.anyUsable(exclude) {
			return nil
		}
		for i := uint64(1); i < l; i++ {
			if b := s.set[s.seq[(start+i)%l]]; !b.full() && !excluded(b, exclude) {
				return b
			}
		}
		return nil
	case LC, WLC:
		// Scan from a rotating start so that ties rotate (see the package
		// doc); weights are all 1 for lc.
		start := (p.ctr.Add(1) - 1) % uint64(n)
		var best *Backend
		var bestActive, bestWeight int64
		for j := range uint64(n) {
			i := start + j
			if i >= uint64(n) {
				i -= uint64(n)
			}
			b := s.set[i]
			if b.full() || excluded(b, exclude) {
				continue
			}
			a, w := b.active.Load(), int64(1)
			if s.algo == WLC {
				w = int64(s.weights[i])
			}
			if best == nil || bestActive*w > a*bestWeight {
				best, bestActive, bestWeight = b, a, w
			}
		}
		return best
	case SH, MH:
		return s.hashPick(hashAddr(client, seedSource), exclude)
	case DH:
		return s.hashPick(hashAddr(client, seedDest), exclude)
	default: // RR
		start := p.ctr.Add(1) - 1
		for i := range uint64(n) {
			if b := s.set[(start+i)%uint64(n)]; !b.full() && !excluded(b, exclude) {
				return b
			}
		}
		return nil
	}
}

// anyUsable reports whether some candidate is neither full nor excluded.
func (s *snapshot) anyUsable(exclude []*Backend) bool {
	for _, b := range s.set {
		if !b.full() && !excluded(b, exclude) {
			return true
		}
	}
	return false
}

// hashProbes is how many following Maglev slots hashPick tries when the
// mapped backend is excluded, before it scans the candidates in order.
const hashProbes = 64

// hashPick looks h up in the Maglev table. When the mapped backend is
// excluded, the following table slots are probed (they map to effectively
// random candidates), then the candidates are scanned from h mod n, so the
// answer stays a deterministic function of h and the exclude set.
func (s *snapshot) hashPick(h uint64, exclude []*Backend) *Backend {
	if len(s.table) == 0 {
		return nil
	}
	m := uint64(len(s.table))
	slot := h % m
	b := s.set[s.table[slot]]
	if len(exclude) == 0 || !excluded(b, exclude) {
		return b
	}
	for range hashProbes {
		if slot++; slot == m {
			slot = 0
		}
		if b := s.set[s.table[slot]]; !excluded(b, exclude) {
			return b
		}
	}
	n := uint64(len(s.set))
	for i := range n {
		if b := s.set[(h+i)%n]; !excluded(b, exclude) {
			return b
		}
	}
	return nil
}
