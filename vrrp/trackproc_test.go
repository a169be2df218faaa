package vrrp

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func TestProcMatches(t *testing.T) {
	nginx := procInfo{comm: "nginx", argv: []string{"nginx: worker process"}}
	hap := procInfo{comm: "haproxy", argv: []string{"/usr/sbin/haproxy", "-Ws", "-f", "/etc/haproxy/haproxy.cfg"}}
	long := procInfo{comm: "a-very-long-pro", argv: []string{"/opt/a-very-long-program-name"}}
	cases := []struct {
		pc   ProcConfig
		p    procInfo
		want bool
	}{
		{ProcConfig{Process: "haproxy"}, hap, true},
		{ProcConfig{Process: "hap"}, hap, false}, // exact, unlike pgrep
		{ProcConfig{Process: "nginx"}, nginx, true},
		{ProcConfig{Process: "a-very-long-program-name"}, long, true}, // the kernel keeps 15 bytes
		{ProcConfig{Process: "haproxy", Params: []string{"-Ws", "-f", "/etc/haproxy/haproxy.cfg"}}, hap, true},
		{ProcConfig{Process: "/usr/sbin/haproxy", Params: []string{"-Ws", "-f", "/etc/haproxy/haproxy.cfg"}}, hap, true},
		{ProcConfig{Process: "haproxy", Params: []string{"-Ws"}}, hap, false},
		{ProcConfig{Process: "haproxy", Params: []string{"-Ws"}, ParamMatch: "partial"}, hap, true},
		{ProcConfig{Process: "haproxy", Params: []string{"-Ws", "-f", "/etc/hap"}, ParamMatch: "initial"}, hap, true},
		{ProcConfig{Process: "haproxy", Params: []string{"-Ws", "-x", "/etc/hap"}, ParamMatch: "initial"}, hap, false},
		{ProcConfig{Process: "haproxy", ParamsSet: true}, hap, false}, // param_match alone: no arguments allowed
		{ProcConfig{Process: "/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg", FullCommand: true}, hap, true},
		{ProcConfig{Process: "haproxy -Ws", FullCommand: true}, hap, false},
	}
	for i, c := range cases {
		if got := c.pc.matches(c.p); got != c.want {
			t.Errorf("case %d %+v: %v, want %v", i, c.pc, got, c.want)
		}
	}
}

func TestProcDelays(t *testing.T) {
	pc := ProcConfig{Quorum: 1, QuorumMax: 2, ForkDelay: 2 * time.Second, TerminateDelay: time.Second}
	t0 := time.Unix(1000, 0)
	v := procValue{ok: true}
	v = pc.step(v, 0, t0) // lost, not yet failed
	if !v.ok || !v.pending {
		t.Fatalf("at once: %+v", v)
	}
	if v = pc.step(v, 1, t0.Add(500*time.Millisecond)); !v.ok || v.pending {
		t.Fatalf("back within terminate_delay: %+v", v)
	}
	v = pc.step(v, 0, t0.Add(time.Second))
	if v = pc.step(v, 0, t0.Add(2*time.Second)); v.ok {
		t.Fatalf("after terminate_delay: %+v", v)
	}
	v = pc.step(v, 3, t0.Add(3*time.Second)) // above quorum_max: still failed
	if v.ok || v.reason != "3 running, quorum 1..2" {
		t.Fatalf("over quorum_max: %+v", v)
	}
	v = pc.step(v, 2, t0.Add(4*time.Second))
	if v = pc.step(v, 2, t0.Add(5*time.Second)); v.ok {
		t.Fatalf("before fork_delay: %+v", v)
	}
	if v = pc.step(v, 2, t0.Add(6*time.Second)); !v.ok {
		t.Fatalf("after fork_delay: %+v", v)
	}
}

// fakeProcs writes a /proc-like tree: pid → stat and cmdline.
type fakeProcs struct {
	t    *testing.T
	root string
	next int
}

func (f *fakeProcs) add(comm, state string, argv ...string) string {
	f.next++
	pid := strconv.Itoa(f.next)
	dir := filepath.Join(f.root, pid)
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "stat"), []byte(pid+" ("+comm+") "+state+" 1 1 1 0 -1"), 0o644)
	os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(argv, "\x00")+"\x00"), 0o644)
	return pid
}

func (f *fakeProcs) kill(pid string) { os.RemoveAll(filepath.Join(f.root, pid)) }

func TestScanProcs(t *testing.T) {
	f := &fakeProcs{t: t, root: t.TempDir()}
	f.add("haproxy", "S", "/usr/sbin/haproxy", "-f", "x")
	f.add("we)ird (name", "R", "w")
	f.add("haproxy", "Z")
	os.MkdirAll(filepath.Join(f.root, "self"), 0o755)
	ps := scanProcs(f.root, true)
	if len(ps) != 2 {
		t.Fatalf("%+v", ps)
	}
	names := ps[0].comm + "|" + ps[1].comm
	if names != "haproxy|we)ird (name" || len(ps[0].argv) != 3 || ps[0].argv[2] != "x" {
		t.Fatalf("%+v", ps)
	}
}

// TestRouterTrackProcess: the master loses its tracked process and goes to
// FAULT; the process comes back and so does the master.
func TestRouterTrackProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProcs{t: t, root: t.TempDir()}
		pid := f.add("haproxy", "S", "haproxy")
		w := &wire{}
		cfg := fakeCfg(150)
		cfg.TrackPoll = 5 * time.Millisecond
		cfg.Procs = []ProcConfig{{Name: "chk_haproxy", Process: "haproxy", Quorum: 1, QuorumMax: -1}}
		cfg.Instances[0].TrackProcs = []TrackProcRef{{Name: "chk_haproxy"}}
		src := netip.MustParseAddr("198.18.0.1")
		a := &fakeNode{addr: newFakeAddr(), src: src}
		r, err := newRouter(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), cfg, deps{
			open:      func(InstanceConfig, map[netip.Addr]bool) (Conn, error) { return w.open(src), nil },
			addresser: a.addr,
			procRoot:  f.root,
		})
		if err != nil {
			t.Fatal(err)
		}
		a.r = r
		b := newFakeNode(t, w, "198.18.0.2", fakeCfg(100))
		a.start(t)
		b.start(t)
		eventually(t, "a master", func() bool { return a.state() == StateMaster && b.state() == StateBackup })
		f.kill(pid)
		eventually(t, "a FAULT", func() bool { return a.state() == StateFault && b.state() == StateMaster })
		if c := a.r.Status()[0].LastTransition.Cause; !strings.Contains(c, "process chk_haproxy failed (0 running, quorum 1)") {
			t.Fatalf("cause %q", c)
		}
		f.add("haproxy", "S", "haproxy")
		eventually(t, "a master again", func() bool { return a.state() == StateMaster && b.state() == StateBackup })
		a.r.Stop(context.Background())
	})
}

// TestRouterOnTransition: the hook hears every state change of every instance.
func TestRouterOnTransition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var seen []string
		w := &wire{}
		cfg := fakeCfg(150)
		cfg.OnTransition = func(name string, to State) {
			mu.Lock()
			seen = append(seen, name+" "+to.String())
			mu.Unlock()
		}
		a := newFakeNode(t, w, "198.18.0.1", cfg)
		a.start(t)
		eventually(t, "a master", func() bool { return a.state() == StateMaster })
		a.r.Stop(context.Background())
		mu.Lock()
		defer mu.Unlock()
		if len(seen) < 2 || seen[len(seen)-2] != "VI_1 MASTER" || !strings.HasPrefix(seen[len(seen)-1], "VI_1 ") || seen[len(seen)-1] == "VI_1 MASTER" {
			t.Fatalf("transitions heard: %v", seen)
		}
	})
}
