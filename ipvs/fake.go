package ipvs

import (
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// FakeTable is an in-memory Table with the kernel's semantics where they
// matter to a caller: adding an existing service or destination fails with
// EEXIST, touching a missing service fails with ESRCH and a missing
// destination with ENOENT. It is safe for concurrent use.
type FakeTable struct {
	mu    sync.Mutex
	svcs  map[ServiceKey]*Service
	calls []string

	// FailOn, when set, is asked before every write ("NewService",
	// "UpdateDest", ...); a non-nil error is returned instead of applying it.
	FailOn func(op string, s Service, d Dest) error
}

var _ Table = (*FakeTable)(nil)

// NewFakeTable returns an empty table.
func NewFakeTable() *FakeTable {
	return &FakeTable{svcs: make(map[ServiceKey]*Service)}
}

// Calls returns the writes applied so far, as "NewService TCP 198.18.0.1:80"
// or "UpdateDest TCP 198.18.0.1:80 198.18.0.11:80", and forgets them.
func (f *FakeTable) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *FakeTable) write(op string, s Service, d *Dest, fn func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var dd Dest
	name := op + " " + s.String()
	if d != nil {
		dd = *d
		name += " " + d.Addr.String()
	}
	if f.FailOn != nil {
		if err := f.FailOn(op, s, dd); err != nil {
			return fmt.Errorf("ipvs: fake %s: %w", name, err)
		}
	}
	if err := fn(); err != nil {
		return fmt.Errorf("ipvs: fake %s: %w", name, err)
	}
	f.calls = append(f.calls, name)
	return nil
}

// Services returns a deep copy of the table, normalized as the kernel reports it.
func (f *FakeTable) Services() ([]Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Service, 0, len(f.svcs))
	for _, s := range f.svcs {
		c := *s
		c.Dests = slices.Clone(s.Dests)
		out = append(out, c)
	}
	sortServices(out)
	return out, nil
}

// stored is how the kernel keeps a service or destination: normalized, and
// without the Reconciler-only field.
func stored(s Service) Service {
	n := s.Normalize()
	n.Dests = nil
	return n
}

func storedDest(d Dest) Dest {
	d.InhibitOnFailure = false
	return d
}

// NewService adds s without destinations.
func (f *FakeTable) NewService(s Service) error {
	return f.write("NewService", s, nil, func() error {
		if err := s.Validate(); err != nil {
			return unix.EINVAL
		}
		k := s.Key()
		if _, ok := f.svcs[k]; ok {
			return unix.EEXIST
		}
		n := stored(s)
		f.svcs[k] = &n
		return nil
	})
}

// UpdateService replaces the scheduler, flags, timeout and netmask of s.
func (f *FakeTable) UpdateService(s Service) error {
	return f.write("UpdateService", s, nil, func() error {
		old, ok := f.svcs[s.Key()]
		if !ok {
			return unix.ESRCH
		}
		n := stored(s)
		n.Dests = old.Dests
		*old = n
		return nil
	})
}

// DelService removes s and its destinations.
func (f *FakeTable) DelService(s Service) error {
	return f.write("DelService", s, nil, func() error {
		k := s.Key()
		if _, ok := f.svcs[k]; !ok {
			return unix.ESRCH
		}
		delete(f.svcs, k)
		return nil
	})
}

func (f *FakeTable) destIndex(s Service, d Dest) (*Service, int, error) {
	svc, ok := f.svcs[s.Key()]
	if !ok {
		return nil, -1, unix.ESRCH
	}
	i := slices.IndexFunc(svc.Dests, func(x Dest) bool { return x.Addr == unmapPort(d.Addr) })
	return svc, i, nil
}

// NewDest adds d to s.
func (f *FakeTable) NewDest(s Service, d Dest) error {
	return f.write("NewDest", s, &d, func() error {
		svc, i, err := f.destIndex(s, d)
		if err != nil {
			return err
		}
		if i >= 0 {
			return unix.EEXIST
		}
		d.Addr = unmapPort(d.Addr)
		svc.Dests = append(svc.Dests, storedDest(d))
		slices.SortFunc(svc.Dests, func(a, b Dest) int { return a.Addr.Compare(b.Addr) })
		return nil
	})
}

// UpdateDest replaces d's weight, method and thresholds.
func (f *FakeTable) UpdateDest(s Service, d Dest) error {
	return f.write("UpdateDest", s, &d, func() error {
		svc, i, err := f.destIndex(s, d)
		if err != nil {
			return err
		}
		if i < 0 {
			return unix.ENOENT
		}
		old := svc.Dests[i]
		d.Addr = old.Addr
		d.ActiveConns, d.InactConns, d.PersistConns = old.ActiveConns, old.InactConns, old.PersistConns
		svc.Dests[i] = storedDest(d)
		return nil
	})
}

// DelDest removes d from s.
func (f *FakeTable) DelDest(s Service, d Dest) error {
	return f.write("DelDest", s, &d, func() error {
		svc, i, err := f.destIndex(s, d)
		if err != nil {
			return err
		}
		if i < 0 {
			return unix.ENOENT
		}
		svc.Dests = slices.Delete(svc.Dests, i, i+1)
		return nil
	})
}
