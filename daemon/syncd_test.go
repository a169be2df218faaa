package daemon

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"halb/config"
	"halb/ipvs"
)

// fakeSync records sync daemon calls and the daemons running.
type fakeSync struct {
	mu      sync.Mutex
	calls   []string
	running map[ipvs.SyncState]ipvs.SyncDaemon
	failIf  string // StartSyncDaemon fails on this interface
}

func (f *fakeSync) StartSyncDaemon(d ipvs.SyncDaemon) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d.Interface == f.failIf {
		return fmt.Errorf("no such device")
	}
	if _, ok := f.running[d.State]; ok {
		return fmt.Errorf("%s already running", d.State)
	}
	f.running[d.State] = d
	f.calls = append(f.calls, fmt.Sprintf("start %s %s %d", d.State, d.Interface, d.SyncID))
	return nil
}

func (f *fakeSync) StopSyncDaemon(st ipvs.SyncState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.running, st)
	f.calls = append(f.calls, "stop "+st.String())
	return nil
}

func (f *fakeSync) take() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := strings.Join(f.calls, ", ")
	f.calls = nil
	return c
}

// TestSyncFollower: keepalived's lvs_sync_daemon rules. The master daemon runs where the named
// instance is MASTER, the backup daemon elsewhere; both without an instance; a changed setting
// restarts them; stop stops them.
func TestSyncFollower(t *testing.T) {
	ft := &fakeSync{running: map[ipvs.SyncState]ipvs.SyncDaemon{}}
	f := newSyncFollower(zaptest.NewLogger(t), ft)
	masters := map[string]bool{}
	isMaster := func(n string) bool { return masters[n] }
	step := func(what, want string) {
		t.Helper()
		if !f.wait(5 * time.Second) {
			t.Fatalf("%s: no round", what)
		}
		if got := ft.take(); got != want {
			t.Fatalf("%s: calls %q, want %q", what, got, want)
		}
	}
	f.apply(&config.LVSSync{Interface: "eth1", Instance: "VI_1", SyncID: 51}, isMaster)
	step("start as backup", "start backup eth1 51")
	f.transition("VI_2", true)
	step("another instance", "")
	f.transition("VI_1", true)
	step("VI_1 master", "stop backup, start master eth1 51")
	f.transition("VI_1", true)
	step("no change", "")
	f.transition("VI_1", false)
	step("VI_1 backup again", "stop master, start backup eth1 51")

	f.apply(&config.LVSSync{Interface: "eth1", Instance: "VI_1", SyncID: 51}, isMaster)
	step("same setting on reload", "")
	f.apply(&config.LVSSync{Interface: "eth2", Instance: "VI_1", SyncID: 51}, isMaster)
	step("new interface", "stop backup, start backup eth2 51")
	masters["VI_3"] = true
	f.apply(&config.LVSSync{Interface: "eth2", Instance: "VI_3", SyncID: 53}, isMaster)
	step("followed instance changed to a master", "stop backup, start master eth2 53")

	f.apply(&config.LVSSync{Interface: "eth2", SyncID: 0}, isMaster)
	f.wait(5 * time.Second)
	got := ft.take()
	if !strings.HasPrefix(got, "stop master, ") || !strings.Contains(got, "start master eth2 0") || !strings.Contains(got, "start backup eth2 0") {
		t.Fatalf("no instance: both daemons: %q", got)
	}
	f.stop(5 * time.Second)
	got = ft.take()
	if parts := strings.Split(got, ", "); len(parts) != 2 || !slices.Contains(parts, "stop master") || !slices.Contains(parts, "stop backup") {
		t.Fatalf("stop: %q", got)
	}
	if len(ft.running) != 0 {
		t.Fatalf("still running: %v", ft.running)
	}

	// A daemon that fails to start (interface missing) is tried again on the next change.
	f = newSyncFollower(zaptest.NewLogger(t), ft)
	ft.failIf = "eth9"
	f.apply(&config.LVSSync{Interface: "eth9", Instance: "VI_1"}, isMaster)
	step("failed start", "")
	ft.failIf = ""
	f.transition("VI_1", true)
	step("next transition", "start master eth9 0")
	f.stop(5 * time.Second)
	step2 := ft.take()
	if step2 != "stop master" {
		t.Fatalf("final stop: %q", step2)
	}
}

// blockingSync never returns from StopSyncDaemon, as a kernel stuck stopping a sync thread.
type blockingSync struct {
	fakeSync
	block chan struct{}
}

func (b *blockingSync) StopSyncDaemon(ipvs.SyncState) error {
	<-b.block
	return nil
}

// TestSyncFollowerKernelHang: a kernel call that never returns stalls neither the VRRP hook nor
// stop beyond its timeout.
func TestSyncFollowerKernelHang(t *testing.T) {
	bs := &blockingSync{fakeSync: fakeSync{running: map[ipvs.SyncState]ipvs.SyncDaemon{}}, block: make(chan struct{})}
	defer close(bs.block)
	f := newSyncFollower(zaptest.NewLogger(t), bs)
	f.apply(&config.LVSSync{Interface: "eth1", Instance: "VI_1"}, func(string) bool { return false })
	if !f.wait(5 * time.Second) {
		t.Fatal("start round did not finish")
	}
	f.transition("VI_1", true) // the worker now hangs stopping the backup daemon
	for range 100 {
		f.transition("VI_1", false) // returns at once however many times
		f.transition("VI_1", true)
	}
	start := time.Now()
	f.stop(200 * time.Millisecond)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stop took %v", d)
	}
}
