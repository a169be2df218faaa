package vrrp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

func TestParseLeadingInt(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1\n", 1, true}, {"  -5 apples", -5, true}, {"+7", 7, true},
		{"", 0, false}, {"x1", 0, false}, {"-", 0, false}, {"99999999999999999999", 1 << 31, true},
		{"\t42\r\n", 42, true},
	}
	for _, c := range cases {
		if v, ok := parseLeadingInt(c.in); v != c.want || ok != c.ok {
			t.Errorf("%q: %d %v, want %d %v", c.in, v, ok, c.want, c.ok)
		}
	}
}

func FuzzParseLeadingInt(f *testing.F) {
	for _, s := range []string{"0", "-12", " +3x", "", "99999999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := parseLeadingInt(s)
		if v > 1<<31 || v < -(1<<31) || (!ok && v != 0) {
			t.Fatalf("%q: %d %v", s, v, ok)
		}
	})
}

// TestFileState follows keepalived.conf(5), "Track files": weight 0 means a
// non-zero value is a failure; otherwise value × weight is added, and below
// -253 means FAULT.
func TestFileState(t *testing.T) {
	cases := []struct {
		w     int
		rev   bool
		val   int64
		want  int
		fault bool
	}{
		{0, false, 0, 0, false}, {0, false, 1, 0, true}, {0, false, -3, 0, true},
		{0, true, 0, 0, true}, {0, true, 1, 0, false},
		{1, false, 20, 20, false}, {1, false, -20, -20, false}, {-10, false, 3, -30, false},
		{-10, true, 3, 30, false}, {1, false, -254, 0, true}, {254, false, -1, 0, true},
		{1, false, 1000, 253, false}, {10, false, 1 << 31, 253, false},
	}
	for _, c := range cases {
		ts := fileState("f", c.w, c.rev, fileValue{val: c.val, reason: "value"})
		if ts.Weight != c.want || ts.Fault != c.fault {
			t.Errorf("weight %d reverse %v value %d: %+v", c.w, c.rev, c.val, ts)
		}
	}
}

func TestReadTrackFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if fv := readTrackFile(p); fv.val != 0 || !strings.Contains(fv.reason, "missing") {
		t.Fatalf("missing: %+v", fv)
	}
	os.WriteFile(p, []byte("oops"), 0o644)
	if fv := readTrackFile(p); fv.val != 0 || !strings.Contains(fv.reason, "not a number") {
		t.Fatalf("garbage: %+v", fv)
	}
	os.WriteFile(p, []byte("-7\n"), 0o644)
	if fv := readTrackFile(p); fv.val != -7 || fv.reason != "value -7" {
		t.Fatalf("value: %+v", fv)
	}
	// init_file writes only a missing file, unless overwrite.
	q := filepath.Join(dir, "g")
	initTrackFile(zap.NewNop(), FileConfig{Path: q, Init: true, InitValue: 5})
	initTrackFile(zap.NewNop(), FileConfig{Path: q, Init: true, InitValue: 6})
	if b, _ := os.ReadFile(q); string(b) != "5\n" {
		t.Fatalf("init_file: %q", b)
	}
	initTrackFile(zap.NewNop(), FileConfig{Path: q, Init: true, InitValue: 6, Overwrite: true})
	if b, _ := os.ReadFile(q); string(b) != "6\n" {
		t.Fatalf("init_file overwrite: %q", b)
	}
}

// TestRouterTrackFile: a maintenance flag file moves the VIP and back, and a
// weighted one changes the priority; a reload that drops the tracking lets
// the instance recover.
func TestRouterTrackFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		maint := filepath.Join(dir, "maint")
		prio := filepath.Join(dir, "prio")
		w := &wire{}
		cfg := fakeCfg(150)
		cfg.TrackPoll = 5 * time.Millisecond
		cfg.Files = []FileConfig{
			{Name: "maint", Path: maint, Weight: 0, Init: true}, // created with 0
			{Name: "prio", Path: prio, Weight: 1},
		}
		cfg.Instances[0].TrackFiles = []TrackFileRef{{Name: "maint"}, {Name: "prio", Weight: -60, WeightSet: true}}
		a := newFakeNode(t, w, "198.18.0.1", cfg)
		b := newFakeNode(t, w, "198.18.0.2", fakeCfg(100))
		a.start(t)
		b.start(t)
		if data, err := os.ReadFile(maint); err != nil || string(data) != "0\n" {
			t.Fatalf("init_file: %q %v", data, err)
		}
		eventually(t, "a master", func() bool { return a.state() == StateMaster && b.state() == StateBackup })

		os.WriteFile(maint, []byte("1\n"), 0o644)
		eventually(t, "a FAULT, b master", func() bool { return a.state() == StateFault && b.state() == StateMaster })
		if c := a.r.Status()[0].LastTransition.Cause; !strings.Contains(c, "file maint value 1") {
			t.Fatalf("cause %q", c)
		}
		os.WriteFile(maint, []byte("0\n"), 0o644)
		eventually(t, "a master again", func() bool { return a.state() == StateMaster && b.state() == StateBackup })

		os.WriteFile(prio, []byte("1"), 0o644) // 1 × -60: 150 → 90, below b
		eventually(t, "b master on a's lower priority", func() bool { return a.state() == StateBackup && b.state() == StateMaster })
		st := a.r.Status()[0]
		if st.EffectivePriority != 90 {
			t.Fatalf("effective priority %d: %+v", st.EffectivePriority, st.Contributions)
		}

		cfg.Instances[0].TrackFiles = nil
		if err := a.r.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a master after the reload", func() bool { return a.state() == StateMaster && a.r.Status()[0].EffectivePriority == 150 })
		a.r.Stop(context.Background())
	})
}
