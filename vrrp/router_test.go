package vrrp

import (
	"context"
	"errors"
	"halb/internal/poll"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// wire is a fake L2 segment: every Send is delivered to the other conns.
type wire struct {
	mu    sync.Mutex
	conns []*fakeConn
}

type fakeConn struct {
	w      *wire
	src    netip.Addr
	in     chan Received
	closed chan struct{}
	once   sync.Once
}

func (w *wire) open(src netip.Addr) *fakeConn {
	c := &fakeConn{w: w, src: src, in: make(chan Received, 256), closed: make(chan struct{})}
	w.mu.Lock()
	w.conns = append(w.conns, c)
	w.mu.Unlock()
	return c
}

func (c *fakeConn) Source() netip.Addr { return c.src }

func (c *fakeConn) Send(p []byte, dst netip.Addr) error {
	select {
	case <-c.closed:
		return errors.New("closed")
	default:
	}
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	for _, o := range c.w.conns {
		if o == c {
			continue
		}
		select {
		case <-o.closed:
			continue
		default:
		}
		select {
		case o.in <- Received{Payload: append([]byte(nil), p...), Src: c.src, Dst: dst, TTL: 255}:
		default:
		}
	}
	return nil
}

func (c *fakeConn) Recv(buf []byte) (Received, error) {
	select {
	case r := <-c.in:
		return r, nil
	case <-c.closed:
		return Received{}, net.ErrClosed
	}
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// fakeAddr records the VIPs of one node.
type fakeAddr struct {
	mu       sync.Mutex
	vips     map[netip.Prefix]bool
	announce int
	adds     int
}

func newFakeAddr() *fakeAddr { return &fakeAddr{vips: map[netip.Prefix]bool{}} }

func (f *fakeAddr) Add(v VIP) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vips[v.Prefix] = true
	f.adds++
	return nil
}

func (f *fakeAddr) Del(v VIP) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.vips, v.Prefix)
	return nil
}

func (f *fakeAddr) Has(v VIP) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vips[v.Prefix], nil
}

func (f *fakeAddr) Announce(v VIP, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announce += n
	return nil
}

func (f *fakeAddr) has(p netip.Prefix) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vips[p]
}

type fakeNode struct {
	r    *Router
	addr *fakeAddr
	src  netip.Addr
}

var vipP = netip.MustParsePrefix("198.18.0.10/32")

func fakeCfg(prio uint8) Config {
	return Config{Instances: []InstanceConfig{{
		Name: "VI_1", Interface: "eth0", VRID: 51, Priority: prio, AdvertInt: 20 * time.Millisecond, Version: 3,
		VIPs: []VIP{{Prefix: vipP}}, GARPRepeat: 2, DontTrackPrimary: true,
	}}}
}

func newFakeNode(t *testing.T, w *wire, src string, cfg Config) *fakeNode {
	t.Helper()
	n := &fakeNode{addr: newFakeAddr(), src: netip.MustParseAddr(src)}
	d := deps{
		open:      func(InstanceConfig, map[netip.Addr]bool) (Conn, error) { return w.open(n.src), nil },
		addresser: n.addr,
	}
	r, err := newRouter(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	n.r = r
	return n
}

func (n *fakeNode) start(t *testing.T) {
	t.Helper()
	if err := n.r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.r.Stop(context.Background()) })
}

func (n *fakeNode) state() State { return n.r.Status()[0].State }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(5*time.Second, 2*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestRouterPairFake(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the routers' cleanups
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		a := newFakeNode(t, w, "198.18.0.1", fakeCfg(150))
		b := newFakeNode(t, w, "198.18.0.2", fakeCfg(100))
		a.start(t)
		b.start(t)
		eventually(t, "a master, b backup", func() bool {
			return a.state() == StateMaster && b.state() == StateBackup && b.r.Status()[0].MasterAddr == a.src
		})
		if !a.addr.has(vipP) || b.addr.has(vipP) {
			t.Fatal("VIP placement")
		}
		st := b.r.Status()[0]
		if st.MasterAddr != a.src || st.MasterPriority != 150 || st.Counters.AdvertsReceived == 0 {
			t.Fatalf("b status %+v", st)
		}

		// External tracker lowers a below b: b preempts.
		a.r.SetTracker("VI_1", "vs web", TrackerState{Weight: -60, Reason: "virtual server web down"})
		eventually(t, "b master after a's priority drop", func() bool { return b.state() == StateMaster && a.state() == StateBackup })
		sa := a.r.Status()[0]
		if sa.EffectivePriority != 90 || len(sa.Contributions) != 1 || sa.Contributions[0].Reason != "virtual server web down" {
			t.Fatalf("a status %+v", sa)
		}
		if !strings.Contains(b.r.Status()[0].LastTransition.Cause, "preempting lower priority master 198.18.0.1 (prio 90)") {
			t.Fatalf("cause %q", b.r.Status()[0].LastTransition.Cause)
		}
		eventually(t, "VIP moved", func() bool { return b.addr.has(vipP) && !a.addr.has(vipP) })

		// A fault tracker puts a in FAULT.
		a.r.SetTracker("VI_1", "vs web", TrackerState{Fault: true, Reason: "quorum lost"})
		eventually(t, "a fault", func() bool { return a.state() == StateFault })
		if c := a.r.Status()[0].LastTransition.Cause; c != "quorum lost" {
			t.Fatalf("cause %q", c)
		}
		a.r.SetTracker("VI_1", "vs web", TrackerState{})
		eventually(t, "a master again", func() bool { return a.state() == StateMaster && b.state() == StateBackup })

		// Stop a: priority 0, b takes over.
		if err := a.r.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if a.addr.has(vipP) {
			t.Fatal("VIP left after Stop")
		}
		eventually(t, "b master after stop", func() bool { return b.state() == StateMaster })
		if c := b.r.Status()[0].LastTransition.Cause; !strings.Contains(c, "stepped down (priority 0)") {
			t.Fatalf("cause %q", c)
		}
		b.r.Stop(context.Background())
	})
}

func TestRouterDropsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		a := newFakeNode(t, w, "198.18.0.1", fakeCfg(150))
		a.start(t)
		eventually(t, "master", func() bool { return a.state() == StateMaster })
		inj := w.open(netip.MustParseAddr("198.18.0.9"))
		bad := Advert{Version: 2, VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{vip4}}
		b, _ := bad.Marshal(inj.src, GroupV4())
		inj.Send(b, GroupV4())
		other := Advert{Version: 3, VRID: 52, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{vip4}}
		b, _ = other.Marshal(inj.src, GroupV4())
		inj.Send(b, GroupV4())
		eventually(t, "drops counted", func() bool {
			d := a.r.Status()[0].Counters.Dropped
			return d[DropVersion] == 1 && d[DropVRID] == 1
		})
		if a.state() != StateMaster {
			t.Fatal("a dropped packet changed the state")
		}
		// A lower-priority master is reported as a dual master.
		low := Advert{Version: 3, VRID: 51, Priority: 10, Interval: 20 * time.Millisecond, Addrs: []netip.Addr{vip4}}
		b, _ = low.Marshal(inj.src, GroupV4())
		inj.Send(b, GroupV4())
		eventually(t, "dual master counted", func() bool { return a.r.Status()[0].Counters.DualMaster == 1 })
	})
}

// TestRouterSiblingVRIDNotDropped: two instances on one interface hear each other's adverts on
// their sockets; those are not drops. A VRID nobody here runs still is.
func TestRouterSiblingVRIDNotDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		cfg := fakeCfg(150)
		second := cfg.Instances[0]
		second.Name, second.VRID, second.VIPs = "VI_2", 52, []VIP{{Prefix: netip.MustParsePrefix("198.18.0.20/32")}}
		cfg.Instances = append(cfg.Instances, second)
		n := &fakeNode{addr: newFakeAddr(), src: netip.MustParseAddr("198.18.0.1")}
		d := deps{
			open:      func(InstanceConfig, map[netip.Addr]bool) (Conn, error) { return w.open(n.src), nil },
			addresser: n.addr,
		}
		r, err := newRouter(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), cfg, d)
		if err != nil {
			t.Fatal(err)
		}
		n.r = r
		n.start(t)
		peer := newFakeNode(t, w, "198.18.0.2", fakeCfg(100)) // VRID 51 adverts reach both of n's sockets
		peer.start(t)
		eventually(t, "both masters elected", func() bool {
			st := r.Status()
			return len(st) == 2 && st[0].State == StateMaster && st[1].State == StateMaster && st[0].Counters.AdvertsSent > 3 && st[1].Counters.AdvertsSent > 3
		})
		inj := w.open(netip.MustParseAddr("198.18.0.9"))
		foreign := Advert{Version: 3, VRID: 99, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{vip4}}
		b, _ := foreign.Marshal(inj.src, GroupV4())
		inj.Send(b, GroupV4())
		eventually(t, "the foreign VRID counted on both", func() bool {
			st := r.Status()
			return st[0].Counters.Dropped[DropVRID] == 1 && st[1].Counters.Dropped[DropVRID] == 1
		})
	})
}

func TestRouterApplyNoFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		a := newFakeNode(t, w, "198.18.0.1", fakeCfg(150))
		a.start(t)
		eventually(t, "master", func() bool { return a.state() == StateMaster })
		before := a.r.Status()[0].Counters.Transitions
		cfg := fakeCfg(140)
		extra := netip.MustParsePrefix("198.18.0.20/32")
		cfg.Instances[0].VIPs = append(cfg.Instances[0].VIPs, VIP{Prefix: extra})
		cfg.Instances[0].Name = "VI_renamed"
		if err := a.r.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		eventually(t, "reconfigured", func() bool {
			s := a.r.Status()
			return len(s) == 1 && s[0].Name == "VI_renamed" && s[0].EffectivePriority == 140 && a.addr.has(extra)
		})
		s := a.r.Status()[0]
		if s.State != StateMaster || s.Counters.Transitions != before || !a.addr.has(vipP) {
			t.Fatalf("flapped: %+v", s)
		}
		// A changed VRID is a different instance: the old one stops, a new starts.
		cfg.Instances[0].VRID = 60
		if err := a.r.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		eventually(t, "new instance master", func() bool { s := a.r.Status(); return len(s) == 1 && s[0].VRID == 60 && s[0].State == StateMaster })
		// Bad config is refused and changes nothing.
		cfg.Instances[0].VRID = 0
		if err := a.r.Apply(cfg); err == nil {
			t.Fatal("bad config accepted")
		}
	})
}

func TestRouterSyncGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		cfg := fakeCfg(150)
		i2 := cfg.Instances[0]
		i2.Name, i2.VRID, i2.VIPs = "VI_2", 52, []VIP{{Prefix: netip.MustParsePrefix("198.18.0.20/32")}}
		cfg.Instances = append(cfg.Instances, i2)
		cfg.SyncGroups = []SyncGroupConfig{{Name: "G", Members: []string{"VI_1", "VI_2"}}}
		a := newFakeNode(t, w, "198.18.0.1", cfg)
		a.start(t)
		both := func(s State) func() bool {
			return func() bool { st := a.r.Status(); return st[0].State == s && st[1].State == s }
		}
		eventually(t, "both master", both(StateMaster))
		a.r.SetTracker("VI_1", "x", TrackerState{Fault: true, Reason: "x failed"})
		eventually(t, "both fault", both(StateFault))
		if c := a.r.Status()[1].LastTransition.Cause; !strings.Contains(c, "sync group G") {
			t.Fatalf("VI_2 cause %q", c)
		}
		a.r.SetTracker("VI_1", "x", TrackerState{})
		eventually(t, "both master again", both(StateMaster))
	})
}

func TestRouterScriptsAndNotify(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "ok")
	log := filepath.Join(dir, "notify.log")
	chk := filepath.Join(dir, "chk.sh")
	note := filepath.Join(dir, "note.sh")
	os.WriteFile(chk, []byte("#!/bin/sh\ntest -e "+flag+"\n"), 0o755)
	os.WriteFile(note, []byte("#!/bin/sh\necho \"$@\" >> "+log+"\n"), 0o755)
	os.WriteFile(flag, nil, 0o644)
	w := &wire{}
	cfg := fakeCfg(150)
	cfg.Scripts = []ScriptConfig{{Name: "chk", Script: chk, Interval: 10 * time.Millisecond, Timeout: time.Second, Weight: -100, Fall: 2, Rise: 1}}
	cfg.Instances[0].TrackScripts = []TrackScriptRef{{Name: "chk"}}
	cfg.Instances[0].Notify = note
	a := newFakeNode(t, w, "198.18.0.1", cfg)
	b := newFakeNode(t, w, "198.18.0.2", fakeCfg(100))
	a.start(t)
	b.start(t)
	eventually(t, "a master", func() bool { return a.state() == StateMaster && b.state() == StateBackup })
	os.Remove(flag)
	eventually(t, "b master after script failure", func() bool { return b.state() == StateMaster && a.state() == StateBackup })
	s := a.r.Status()[0]
	if s.EffectivePriority != 50 || !strings.Contains(s.Contributions[0].Reason, "script chk failed (weight -100)") {
		t.Fatalf("status %+v", s)
	}
	a.r.Stop(context.Background())
	data, _ := os.ReadFile(log)
	for _, want := range []string{"INSTANCE VI_1 MASTER 150", "INSTANCE VI_1 BACKUP 50", "INSTANCE VI_1 STOP"} {
		if !strings.Contains(string(data), want) {
			t.Fatalf("notify log lacks %q:\n%s", want, data)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := fakeCfg(100)
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	mut := []func(c *InstanceConfig){
		func(c *InstanceConfig) { c.VRID = 0 },
		func(c *InstanceConfig) { c.Priority = 0 },
		func(c *InstanceConfig) { c.Version = 2 }, // 20 ms is not whole seconds
		func(c *InstanceConfig) { c.Version = 2; c.AdvertInt = time.Second; c.Family = 6 },
		func(c *InstanceConfig) { c.AuthType = AuthPass },
		func(c *InstanceConfig) { c.VIPs = nil },
		func(c *InstanceConfig) { c.TrackScripts = []TrackScriptRef{{Name: "nope"}} },
		func(c *InstanceConfig) { c.Interface = "" },
	}
	for i, m := range mut {
		c := fakeCfg(100)
		m(&c.Instances[0])
		if err := c.validate(); err == nil {
			t.Errorf("mutation %d accepted", i)
		}
	}
}

// TestRouterSyncGroupNoFlap: when one member must be backup (a tracker
// lowered it below the peer), the whole group stays backup on this node
// instead of preempting with the other member and flapping.
func TestRouterSyncGroupNoFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		group := func(prio uint8) Config {
			cfg := fakeCfg(prio)
			// 200 ms: a loaded test machine (with -race) must not stall for a
			// master-down interval, or it sees a genuine takeover.
			cfg.Instances[0].AdvertInt = 200 * time.Millisecond
			i2 := cfg.Instances[0]
			i2.Name, i2.VRID, i2.VIPs = "VI_2", 52, []VIP{{Prefix: netip.MustParsePrefix("198.18.0.20/32")}}
			cfg.Instances = append(cfg.Instances, i2)
			cfg.SyncGroups = []SyncGroupConfig{{Name: "G", Members: []string{"VI_1", "VI_2"}}}
			return cfg
		}
		a := newFakeNode(t, w, "198.18.0.1", group(150))
		b := newFakeNode(t, w, "198.18.0.2", group(100))
		a.start(t)
		b.start(t)
		states := func(n *fakeNode, s State) bool {
			st := n.r.Status()
			return st[0].State == s && st[1].State == s
		}
		eventually(t, "a master, b backup", func() bool { return states(a, StateMaster) && states(b, StateBackup) })
		a.r.SetTracker("VI_1", "vs", TrackerState{Weight: -60, Reason: "vs down"})
		// Keepalived's rule: the group is master only where all members can be.
		// Which node ends up master depends on timing (a's lowered VI_1 may
		// keep it if b's VI_2 still hears a's VI_2); it must be one node for
		// both members, and then stay put.
		var m, bk *fakeNode
		eventually(t, "consistent group", func() bool {
			switch {
			case states(a, StateMaster) && states(b, StateBackup):
				m, bk = a, b
			case states(b, StateMaster) && states(a, StateBackup):
				m, bk = b, a
			default:
				return false
			}
			return true
		})
		count := func() uint64 {
			var n uint64
			for _, s := range append(a.r.Status(), b.r.Status()...) {
				n += s.Counters.Transitions
			}
			return n
		}
		before := count()
		// 10 advert intervals ≈ 3 master-down intervals: a preempt cycle would
		// show within one.
		flapped := poll.Until(2*time.Second, 5*time.Millisecond, func() bool {
			return !states(m, StateMaster) || !states(bk, StateBackup)
		})
		if flapped {
			t.Fatalf("group flapped: a %v %v, b %v %v", a.r.Status()[0].State, a.r.Status()[1].State, b.r.Status()[0].State, b.r.Status()[1].State)
		}
		if n := count(); n != before {
			t.Fatalf("%d transitions while stable", n-before)
		}
		a.r.SetTracker("VI_1", "vs", TrackerState{})
		eventually(t, "a master again", func() bool { return states(a, StateMaster) && states(b, StateBackup) })
	})
}

func TestRouterOwnAddressDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &wire{}
		a := newFakeNode(t, w, "198.18.0.1", fakeCfg(100))
		other := netip.MustParseAddr("198.18.0.5") // a second address of this node
		a.r.deps.localAddrs = func() map[netip.Addr]bool { return map[netip.Addr]bool{other: true} }
		a.start(t)
		eventually(t, "master", func() bool { return a.state() == StateMaster })
		inj := w.open(other)
		adv := Advert{Version: 3, VRID: 51, Priority: 200, Interval: 20 * time.Millisecond, Addrs: []netip.Addr{vip4}}
		b, _ := adv.Marshal(other, GroupV4())
		inj.Send(b, GroupV4())
		eventually(t, "own drop counted", func() bool { return a.r.Status()[0].Counters.Dropped[DropOwn] == 1 })
		if a.state() != StateMaster {
			t.Fatal("own advert changed the state")
		}
	})
}
