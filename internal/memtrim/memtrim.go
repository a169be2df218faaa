// Package memtrim gives the memory a burst of traffic left behind back to the
// system once the process has gone quiet.
//
// Go keeps what a busy period used: objects in sync.Pools (request records,
// 16 KiB readers, response heads) stay there until two garbage collections
// have passed, collections happen only when something allocates, and freed
// pages go back to the system only slowly. A proxy holding 10,000 idle
// connections allocates almost nothing, so after the burst that opened them
// its RSS stayed at the burst's peak: about 2.8 KiB per connection on the
// development VM, where the connections themselves need under 1 KiB
// (docs/dataplane.md, "Memory"). HAProxy and nginx give buffers back as
// connections go idle; here a Trimmer notices the quiet (the runtime's
// allocation counter standing still) and forces two collections, which empty
// the pools, and returns the free pages (debug.FreeOSMemory).
//
// The decision is pure (Trimmer.Step); Run is the shell that samples the
// runtime once per tick and trims.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"go.uber.org/zap"
)

// Policy says when a process counts as quiet and when a trim is worth it.
type Policy struct {
	Tick     time.Duration // how often the allocation counter is read
	Quiet    uint64        // at most this many bytes allocated in one tick is quiet
	QuietFor int           // quiet ticks in a row before a trim
	MinBurst uint64        // bytes allocated in busy ticks since the last trim for one to be worth it
}

// DefaultPolicy trims after 3 s with at most 256 KiB allocated per second,
// once busy seconds allocated at least 4 MiB since the last trim (about what
// opening a thousand keep-alive connections allocates, or some thousands of
// requests): a server that stays idle, runs its health checks or serves a
// trickle never trims; one that was busy trims once when it stops. (With 16
// MiB, a burst of 1,000 or 3,000 connections left 5.4 and 3.2 KiB per
// connection behind, where a trim leaves 2.5 and 1.2: docs/dataplane.md.)
var DefaultPolicy = Policy{Tick: time.Second, Quiet: 256 << 10, QuietFor: 3, MinBurst: 4 << 20}

// Trimmer is the decision: fed the cumulative allocation counter at every
// tick, it says when to trim. The zero value of its state is ready.
type Trimmer struct {
	Policy
	last    uint64 // the counter at the previous tick
	started bool
	burst   uint64 // bytes allocated in busy ticks since the last trim
	quiet   int    // quiet ticks in a row
}

// Step takes the runtime's cumulative count of bytes allocated at one tick
// and reports whether to trim now. After a trim it waits for the next burst.
func (t *Trimmer) Step(allocated uint64) bool {
	if !t.started {
		t.started, t.last = true, allocated
		return false
	}
	d := allocated - t.last
	if allocated < t.last { // not a counter that goes back; start over
		d = 0
	}
	t.last = allocated
	if d > t.Quiet {
		t.burst += d
		t.quiet = 0
		return false
	}
	t.quiet++
	if t.quiet < t.QuietFor || t.burst < t.MinBurst {
		return false
	}
	t.burst, t.quiet = 0, 0
	return true
}

// allocsMetric is the runtime's cumulative count of bytes allocated on the heap.
const allocsMetric = "/gc/heap/allocs:bytes"

// Run trims by p until ctx ends: every p.Tick it reads the runtime's
// allocation counter, and when the Trimmer says so it collects twice (the
// first collection moves the pools' objects to their victim caches, the
// second drops them) and returns the free pages to the system. Each trim is
// logged at debug level with the heap before and after.
func Run(ctx context.Context, p Policy, log *zap.Logger) {
	s := []metrics.Sample{{Name: allocsMetric}}
	read := func() uint64 {
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[0].Value.Uint64()
	}
	run(ctx, p, read, trim, log)
}

// run is Run with the counter and the trim given: what tests drive.
func run(ctx context.Context, p Policy, read func() uint64, trim func() (before, after uint64), log *zap.Logger) {
	t := Trimmer{Policy: p}
	tick := time.NewTicker(p.Tick)
	defer tick.Stop()
	t.Step(read())
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if t.Step(read()) {
			before, after := trim()
			log.Debug("quiet: memory given back", zap.Uint64("heap_before", before), zap.Uint64("heap_after", after))
		}
	}
}

// trim collects twice and gives the free pages back; it returns the bytes
// held by heap objects (live, or dead and not yet swept) before and after.
func trim() (before, after uint64) {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	before = s[0].Value.Uint64()
	debug.FreeOSMemory()
	debug.FreeOSMemory()
	metrics.Read(s)
	return before, s[0].Value.Uint64()
}

// heapMetric is the memory held by heap objects, live or not yet swept.
const heapMetric = "/memory/classes/heap/objects:bytes"
