package memtrim

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

const mib = 1 << 20

func TestTrimmerStep(t *testing.T) {
	p := Policy{Tick: time.Second, Quiet: 1 * mib, QuietFor: 3, MinBurst: 16 * mib}
	cases := []struct {
		name   string
		deltas []uint64 // bytes allocated in each tick after the first reading
		want   []bool   // trim after that tick
	}{
		{
			name:   "a burst, then quiet: one trim after three quiet ticks",
			deltas: []uint64{40 * mib, 30 * mib, 0, 100 << 10, 0, 0, 0, 0},
			want:   []bool{false, false, false, false, true, false, false, false},
		},
		{
			name:   "idle from the start (health checks): never",
			deltas: []uint64{50 << 10, 50 << 10, 50 << 10, 50 << 10, 50 << 10, 50 << 10},
			want:   []bool{false, false, false, false, false, false},
		},
		{
			name:   "a blip under the burst size: never",
			deltas: []uint64{8 * mib, 0, 0, 0, 0},
			want:   []bool{false, false, false, false, false},
		},
		{
			name:   "quiet broken before its end, then kept: one trim, late",
			deltas: []uint64{20 * mib, 0, 0, 5 * mib, 0, 0, 0},
			want:   []bool{false, false, false, false, false, false, true},
		},
		{
			name:   "two bursts: a trim after each",
			deltas: []uint64{20 * mib, 0, 0, 0, 30 * mib, 0, 0, 0},
			want:   []bool{false, false, false, true, false, false, false, true},
		},
		{
			name:   "a trickle at the quiet rate never adds up to a burst",
			deltas: []uint64{1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib, 1 * mib},
			want:   []bool{false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false},
		},
		{
			name:   "busy ticks add up across quiet gaps too short for a trim",
			deltas: []uint64{10 * mib, 0, 0, 10 * mib, 0, 0, 0},
			want:   []bool{false, false, false, false, false, false, true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := Trimmer{Policy: p}
			counter := uint64(123 * mib)
			if tr.Step(counter) {
				t.Fatal("trimmed on the first reading")
			}
			for i, d := range tc.deltas {
				counter += d
				if got := tr.Step(counter); got != tc.want[i] {
					t.Fatalf("tick %d (+%d bytes): trim %v, want %v", i+1, d, got, tc.want[i])
				}
			}
		})
	}
}

// TestDefaultPolicy: what opening a thousand idle connections allocates (about 5 MiB in a
// second or two) is a burst worth a trim once quiet; health checks (tens of KiB a second) and a
// trickle under the quiet rate are not.
func TestDefaultPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		deltas []uint64
		trim   bool
	}{
		{"1,000 connections opened, then quiet", []uint64{3 * mib, 2 * mib, 0, 0, 0}, true},
		{"health checks only", []uint64{40 << 10, 40 << 10, 40 << 10, 40 << 10, 40 << 10, 40 << 10}, false},
		{"a trickle under the quiet rate", []uint64{200 << 10, 200 << 10, 200 << 10, 200 << 10, 200 << 10, 200 << 10, 200 << 10, 200 << 10}, false},
		{"one busy second of 2 MiB", []uint64{2 * mib, 0, 0, 0, 0}, false},
	} {
		tr := Trimmer{Policy: DefaultPolicy}
		counter := uint64(0)
		tr.Step(counter)
		trimmed := false
		for _, d := range tc.deltas {
			counter += d
			trimmed = tr.Step(counter) || trimmed
		}
		if trimmed != tc.trim {
			t.Errorf("%s: trimmed %v, want %v", tc.name, trimmed, tc.trim)
		}
	}
}

// TestRunTrimsOnceWhenQuiet drives the shell on a fake clock: a burst, then
// nothing: exactly one trim, QuietFor ticks after the burst, none after it.
func TestRunTrimsOnceWhenQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Tick: time.Second, Quiet: 1 * mib, QuietFor: 3, MinBurst: 16 * mib}
		var counter atomic.Uint64
		trims := make(chan time.Time, 4)
		read := func() uint64 { return counter.Load() }
		trimf := func() (uint64, uint64) {
			trims <- time.Now()
			return 64 * mib, 8 * mib
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		start := time.Now()
		go func() {
			run(ctx, p, read, trimf, zap.NewNop())
			close(done)
		}()
		synctest.Wait()
		counter.Add(100 * mib) // the burst, during the first tick
		// Tick 1 sees the burst; ticks 2, 3, 4 are quiet: the trim is at 4 s.
		if got := (<-trims).Sub(start); got != 4*time.Second {
			t.Fatalf("trimmed %v after the start, want 4s", got)
		}
		// No second trim while it stays quiet (the bubble's clock runs on).
		later := time.NewTimer(10 * time.Second)
		select {
		case at := <-trims:
			t.Fatalf("a second trim %v after the start, with no new burst", at.Sub(start))
		case <-later.C:
		}
		cancel()
		<-done
	})
}

// sink keeps the compiler from proving the test's allocations unused.
var sink [][]byte

// TestTrimReturnsMemory checks the real trim against the runtime: 16 MiB
// allocated and dropped, with no collection since, are collected.
func TestTrimReturnsMemory(t *testing.T) {
	for range 64 {
		sink = append(sink, make([]byte, 256<<10)) // 16 MiB
	}
	sink = nil
	before, after := trim()
	if before < after {
		t.Fatalf("heap grew across a trim: %d -> %d", before, after)
	}
	if before-after < 8*mib {
		t.Fatalf("heap %d -> %d bytes: the 16 MiB dropped were not collected", before, after)
	}
}
