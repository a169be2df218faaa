package ipvs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// OpKind is one kind of table write.
type OpKind uint8

// Table writes, in the order Plan emits them for one service.
const (
	OpDelService OpKind = iota + 1
	OpNewService
	OpUpdateService
	OpDelDest
	OpUpdateDest
	OpNewDest
)

func (k OpKind) String() string {
	switch k {
	case OpDelService:
		return "DelService"
	case OpNewService:
		return "NewService"
	case OpUpdateService:
		return "UpdateService"
	case OpDelDest:
		return "DelDest"
	case OpUpdateDest:
		return "UpdateDest"
	case OpNewDest:
		return "NewDest"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is one write Plan asks for. Dest is set for the destination kinds.
type Op struct {
	Kind    OpKind
	Service Service
	Dest    Dest
}

func (o Op) String() string {
	if o.Kind >= OpDelDest {
		return fmt.Sprintf("%s %s %s", o.Kind, o.Service, o.Dest.Addr)
	}
	return fmt.Sprintf("%s %s", o.Kind, o.Service)
}

// sameService compares what UpdateService can change.
func sameService(a, b *Service) bool {
	return a.scheduler() == b.scheduler() && a.effFlags() == b.effFlags() &&
		a.timeoutSeconds() == b.timeoutSeconds() && a.netmaskBits() == b.netmaskBits()
}

// sameDest compares what UpdateDest can change.
func sameDest(a, b *Dest) bool {
	return a.Weight == b.Weight && a.Method == b.Method &&
		a.UThreshold == b.UThreshold && a.LThreshold == b.LThreshold
}

// Plan is the pure core of reconciliation: the writes that turn current (the
// table as read) into desired, touching only the services in owned. A desired
// service that exists but is not owned is someone else's: it is returned in
// conflicts and left alone. Owned services that are no longer desired are
// deleted; owned services missing from current (deleted by hand) are created
// again with all their destinations. Inside an owned service, destinations
// follow desired exactly.
//
// desired must hold valid services with distinct keys (see Service.Validate).
func Plan(desired, current []Service, owned map[ServiceKey]bool) (ops []Op, conflicts []ServiceKey) {
	cur := make(map[ServiceKey]*Service, len(current))
	for i := range current {
		cur[current[i].Key()] = &current[i]
	}
	want := make(map[ServiceKey]bool, len(desired))
	for _, d := range desired {
		want[d.Key()] = true
	}

	// Deletions first: they may free what a creation below needs.
	var gone []ServiceKey
	for k := range owned {
		if !want[k] && cur[k] != nil {
			gone = append(gone, k)
		}
	}
	slices.SortFunc(gone, compareKeys)
	for _, k := range gone {
		ops = append(ops, Op{Kind: OpDelService, Service: *cur[k]})
	}

	ds := slices.Clone(desired)
	sortServices(ds)
	for _, d := range ds {
		d = d.Normalize()
		k := d.Key()
		c := cur[k]
		svc := d
		svc.Dests = nil
		if c == nil {
			ops = append(ops, Op{Kind: OpNewService, Service: svc})
			for _, dst := range d.Dests {
				ops = append(ops, Op{Kind: OpNewDest, Service: svc, Dest: dst})
			}
			continue
		}
		if !owned[k] {
			conflicts = append(conflicts, k)
			continue
		}
		if !sameService(&d, c) {
			ops = append(ops, Op{Kind: OpUpdateService, Service: svc})
		}
		have := make(map[netip.AddrPort]*Dest, len(c.Dests))
		for i := range c.Dests {
			have[unmapPort(c.Dests[i].Addr)] = &c.Dests[i]
		}
		wantDest := make(map[netip.AddrPort]bool, len(d.Dests))
		for _, dst := range d.Dests {
			wantDest[dst.Addr] = true
		}
		for _, cd := range c.Dests {
			if !wantDest[unmapPort(cd.Addr)] {
				ops = append(ops, Op{Kind: OpDelDest, Service: svc, Dest: cd})
			}
		}
		for _, dst := range d.Dests {
			if h := have[dst.Addr]; h == nil {
				ops = append(ops, Op{Kind: OpNewDest, Service: svc, Dest: dst})
			} else if !sameDest(&dst, h) {
				ops = append(ops, Op{Kind: OpUpdateDest, Service: svc, Dest: dst})
			}
		}
	}
	return ops, conflicts
}

type destID struct {
	svc  ServiceKey
	dest netip.AddrPort
}

// Reconciler keeps the kernel's table equal to the desired one: it owns the
// services it created, recreates what someone deleted by hand, never touches a
// service it did not create, and removes everything it made on RemoveAll.
type Reconciler struct {
	log *zap.Logger
	t   Table

	mu      sync.Mutex // guards the fields below
	desired []Service  // normalized, valid
	down    map[destID]bool
	owned   map[ServiceKey]bool
	warned  map[ServiceKey]bool // conflicts of the last Sync, each logged once

	syncMu sync.Mutex    // one Sync or RemoveAll at a time
	kick   chan struct{} // wakes Run after a change
}

// NewReconciler returns a Reconciler over t with nothing desired.
func NewReconciler(log *zap.Logger, t Table) *Reconciler {
	return &Reconciler{
		log:    log.Named("ipvs"),
		t:      t,
		down:   make(map[destID]bool),
		owned:  make(map[ServiceKey]bool),
		warned: make(map[ServiceKey]bool),
		kick:   make(chan struct{}, 1),
	}
}

func (r *Reconciler) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// SetDesired replaces the desired table (the config's IPVS services, all
// destinations with their configured weights). Invalid services and repeated
// keys are left out and reported in the error; the rest is kept. It applies on
// the next Sync (Run syncs at once).
func (r *Reconciler) SetDesired(svcs []Service) error {
	var errs []error
	keep := make([]Service, 0, len(svcs))
	seen := make(map[ServiceKey]bool, len(svcs))
	for _, s := range svcs {
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		n := s.Normalize()
		if seen[n.Key()] {
			errs = append(errs, fmt.Errorf("ipvs: service %s listed twice", n.Key()))
			continue
		}
		seen[n.Key()] = true
		keep = append(keep, n)
	}
	known := make(map[destID]bool)
	for _, s := range keep {
		for _, d := range s.Dests {
			known[destID{s.Key(), d.Addr}] = true
		}
	}
	r.mu.Lock()
	r.desired = keep
	for id := range r.down {
		if !known[id] {
			delete(r.down, id) // no longer configured: forget its verdict
		}
	}
	r.mu.Unlock()
	r.wake()
	return errors.Join(errs...)
}

// SetHealth records a health verdict for destination dest of service svc: a
// down destination is removed from the kernel's table, or kept with weight 0
// when its Dest.InhibitOnFailure is set. Destinations start up. A verdict
// outlives SetDesired (a reload) as long as the destination stays configured,
// so call SetDesired before the checkers start.
func (r *Reconciler) SetHealth(svc ServiceKey, dest netip.AddrPort, up bool) {
	id := destID{svc, unmapPort(dest)}
	r.mu.Lock()
	changed := r.down[id] == up
	if up {
		delete(r.down, id)
	} else {
		r.down[id] = true
	}
	r.mu.Unlock()
	if changed {
		r.wake()
	}
}

// Adopt makes the services with these keys halb's, as if this Reconciler had
// created them: the next Sync updates them to the desired table, or deletes
// them if they are no longer desired. It is for a daemon that restarts after a
// crash: it keeps Owned() in a state file under /run (emptied at boot, like
// the kernel's table) and adopts what it finds there, instead of reporting
// its own leftovers as someone else's.
func (r *Reconciler) Adopt(keys ...ServiceKey) {
	r.mu.Lock()
	for _, k := range keys {
		r.owned[k] = true
		delete(r.warned, k)
	}
	r.mu.Unlock()
	r.wake()
}

// Owned returns the keys of the services this Reconciler created and still
// manages.
func (r *Reconciler) Owned() []ServiceKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	ks := slices.Collect(maps.Keys(r.owned))
	slices.SortFunc(ks, compareKeys)
	return ks
}

// Conflicts returns the desired services that the last Sync found in the
// kernel but not created by halb, and so left alone.
func (r *Reconciler) Conflicts() []ServiceKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	ks := slices.Collect(maps.Keys(r.warned))
	slices.SortFunc(ks, compareKeys)
	return ks
}

// Desired returns the table halb wants in the kernel now: the desired
// services with health verdicts applied (halb's view for `ctl show ipvs`).
func (r *Reconciler) Desired() []Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.effectiveLocked()
}

func (r *Reconciler) effectiveLocked() []Service {
	out := make([]Service, 0, len(r.desired))
	for _, s := range r.desired {
		k := s.Key()
		e := s
		e.Dests = make([]Dest, 0, len(s.Dests))
		for _, d := range s.Dests {
			if r.down[destID{k, d.Addr}] {
				if !d.InhibitOnFailure {
					continue
				}
				d.Weight = 0
			}
			e.Dests = append(e.Dests, d)
		}
		out = append(out, e)
	}
	return out
}

// Sync reads the table, plans and applies the difference. It goes on past a
// failed write and returns all failures joined; the next Sync retries them.
func (r *Reconciler) Sync() error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()

	cur, err := r.t.Services()
	if err != nil {
		return fmt.Errorf("ipvs: sync: %w", err)
	}
	r.mu.Lock()
	desired := r.effectiveLocked()
	owned := maps.Clone(r.owned)
	r.mu.Unlock()

	ops, conflicts := Plan(desired, cur, owned)
	r.mu.Lock()
	for k := range r.warned {
		if !slices.Contains(conflicts, k) {
			delete(r.warned, k) // resolved: log again if it comes back
		}
	}
	r.mu.Unlock()
	var errs []error
	for _, k := range conflicts {
		errs = append(errs, r.conflict(k))
	}
	failed := make(map[ServiceKey]bool)
	for _, op := range ops {
		k := op.Service.Key()
		if failed[k] {
			continue
		}
		if err := r.apply(op); err != nil {
			switch {
			case op.Kind == OpNewService && errors.Is(err, unix.EEXIST):
				// Created by someone else between our read and our write.
				errs = append(errs, r.conflict(k))
			case op.Kind == OpDelService && errors.Is(err, unix.ESRCH):
				r.disown(k)
				continue
			default:
				errs = append(errs, err)
			}
			if op.Kind == OpNewService {
				failed[k] = true
			}
			continue
		}
		switch op.Kind {
		case OpNewService:
			r.own(k)
		case OpDelService:
			r.disown(k)
		}
	}

	// Forget owned services that are neither desired nor present any more.
	present := make(map[ServiceKey]bool, len(cur))
	for _, c := range cur {
		present[c.Key()] = true
	}
	want := make(map[ServiceKey]bool, len(desired))
	for _, d := range desired {
		want[d.Key()] = true
	}
	r.mu.Lock()
	for k := range r.owned {
		if !want[k] && !present[k] {
			delete(r.owned, k)
		}
	}
	r.mu.Unlock()
	return errors.Join(errs...)
}

func (r *Reconciler) own(k ServiceKey) {
	r.mu.Lock()
	r.owned[k] = true
	delete(r.warned, k)
	r.mu.Unlock()
}

func (r *Reconciler) disown(k ServiceKey) {
	r.mu.Lock()
	delete(r.owned, k)
	r.mu.Unlock()
}

func (r *Reconciler) conflict(k ServiceKey) error {
	r.mu.Lock()
	first := !r.warned[k]
	r.warned[k] = true
	r.mu.Unlock()
	if first {
		r.log.Warn("service exists in the kernel but was not created by halb; leaving it alone",
			zap.Stringer("service", k))
	}
	return fmt.Errorf("ipvs: service %s exists and was not created by halb: left untouched "+
		"(delete it with ipvsadm -D, or change the config)", k)
}

func (r *Reconciler) apply(op Op) error {
	var err error
	switch op.Kind {
	case OpNewService:
		err = r.t.NewService(op.Service)
	case OpUpdateService:
		err = r.t.UpdateService(op.Service)
	case OpDelService:
		err = r.t.DelService(op.Service)
	case OpNewDest:
		err = r.t.NewDest(op.Service, op.Dest)
	case OpUpdateDest:
		err = r.t.UpdateDest(op.Service, op.Dest)
	case OpDelDest:
		err = r.t.DelDest(op.Service, op.Dest)
	}
	if err != nil {
		return err
	}
	fields := []zap.Field{zap.Stringer("op", op.Kind), zap.Stringer("service", op.Service)}
	if op.Kind >= OpDelDest {
		fields = append(fields, zap.Stringer("dest", op.Dest.Addr), zap.Int("weight", op.Dest.Weight),
			zap.Stringer("method", op.Dest.Method))
	}
	r.log.Info("ipvs table changed", fields...)
	return nil
}

// RemoveAll deletes every service this Reconciler created (their destinations
// go with them) and clears the desired table, so that a later Sync adds
// nothing. Services it did not create stay.
func (r *Reconciler) RemoveAll() error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	r.desired = nil
	owned := slices.Collect(maps.Keys(r.owned))
	r.mu.Unlock()
	slices.SortFunc(owned, compareKeys)

	var errs []error
	for _, k := range owned {
		s := Service{Family: k.Family, Protocol: k.Protocol, Addr: k.Addr, FWMark: k.FWMark}
		err := r.t.DelService(s)
		switch {
		case err == nil:
			r.log.Info("ipvs table changed", zap.Stringer("op", OpDelService), zap.Stringer("service", k))
		case errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT):
		default:
			errs = append(errs, err)
			continue
		}
		r.disown(k)
	}
	return errors.Join(errs...)
}

// DefaultInterval is Run's interval when it is given none.
const DefaultInterval = 5 * time.Second

// Run syncs at once, then every interval and after each SetDesired or
// SetHealth change, until ctx is done; then it removes everything it created
// (RemoveAll) and returns that error. Sync errors are logged, each distinct
// one once until it changes.
func (r *Reconciler) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last string
	for {
		err := r.Sync()
		switch {
		case err != nil && err.Error() != last:
			r.log.Error("ipvs sync failed", zap.Error(err))
			last = err.Error()
		case err == nil && last != "":
			r.log.Info("ipvs sync recovered")
			last = ""
		}
		select {
		case <-ctx.Done():
			return r.RemoveAll()
		case <-tick.C:
		case <-r.kick:
		}
	}
}
