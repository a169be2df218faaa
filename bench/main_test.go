package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("128, 64KiB,1k,2MiB,small,big,0")
	if err != nil {
		t.Fatal(err)
	}
	want := []int{128, 65536, 1024, 2 << 20, 128, 65536, 0}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"", "x", "12Q", "-1", "65MiB", "1GiB"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
	if _, err := parseInts("64,x"); err == nil {
		t.Error("parseInts accepted x")
	}
}

func TestMainUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--nope"},
		{"--conns", "0"},
		{"--sizes", "huge"},
		{"--modes", "udp"},
		{"--targets", "envoy"},
		{"stray"},
		{"--idle", "5", "stray"},
	} {
		var out, errb bytes.Buffer
		if rc := run(context.Background(), args, &out, &errb); rc != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, rc, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if rc := run(context.Background(), []string{"-h"}, &out, &errb); rc != 0 || !strings.Contains(errb.String(), "--idle") && !strings.Contains(errb.String(), "-idle") {
		t.Errorf("-h: exit %d, usage %q", rc, errb.String())
	}
}

func TestIdleFlagForms(t *testing.T) {
	// Every form reaches option validation with the flags after N still parsed: a bad
	// --modes after "--idle 5" must be a usage error, not ignored.
	for _, args := range [][]string{{"--idle", "5", "--modes", "udp"}, {"--idle=5", "--modes", "udp"}, {"--idle", "--modes", "udp"}} {
		var out, errb bytes.Buffer
		if rc := run(context.Background(), args, &out, &errb); rc != 2 || !strings.Contains(errb.String(), `mode "udp"`) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and the bad mode named", args, rc, errb.String())
		}
	}
}

func TestIdleFlag(t *testing.T) {
	var f idleFlag
	if err := f.Set("true"); err != nil || !f.set || f.n != 0 {
		t.Fatalf("--idle: %+v %v", f, err)
	}
	if err := f.Set("2500"); err != nil || f.n != 2500 {
		t.Fatalf("--idle=2500: %+v %v", f, err)
	}
	if err := f.Set("-3"); err == nil {
		t.Fatal("--idle=-3 accepted")
	}
}

func TestFindHalb(t *testing.T) {
	t.Setenv("HALB_BIN", "")
	if got := findHalb("/x/halb", "/y/z"); got != "/x/halb" {
		t.Errorf("flag: %q", got)
	}
	t.Setenv("HALB_BIN", "/env/halb")
	if got := findHalb("", "/y/z"); got != "/env/halb" {
		t.Errorf("env: %q", got)
	}
	t.Setenv("HALB_BIN", "")
	if got := findHalb("", "/nonexistent/dir/bench"); got != "" {
		t.Errorf("no halb next to the executable: %q", got)
	}
}
