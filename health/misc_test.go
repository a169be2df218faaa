package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMiscExitCodes(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		body    string
		dynamic bool
		ok      bool
		weight  int
		reason  string
	}{
		{body: "exit 0", ok: true},
		{body: "echo 'backend says no' >&2; exit 1", reason: "script exit 1: backend says no"},
		{body: "exit 5", reason: "script exit 5"},
		{body: "exit 0", dynamic: true, ok: true},
		{body: "exit 1", dynamic: true, reason: "script exit 1"},
		{body: "exit 2", dynamic: true, ok: true, weight: 0},
		{body: "exit 12", dynamic: true, ok: true, weight: 10},
		{body: "exit 255", dynamic: true, ok: true, weight: 253},
		{body: "kill -TERM $$", reason: "script killed by signal terminated"},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%s dynamic=%v", tc.body, tc.dynamic), func(t *testing.T) {
			p := writeScript(t, dir, fmt.Sprintf("s%d.sh", i), tc.body)
			r := checkWithin(t, &MiscChecker{Command: p, Dynamic: tc.dynamic}, 5*time.Second)
			if r.OK != tc.ok || r.Reason != tc.reason {
				t.Fatalf("got ok=%v reason %q, want ok=%v %q", r.OK, r.Reason, tc.ok, tc.reason)
			}
			if tc.ok && tc.dynamic && tc.body != "exit 0" && (!r.HasWeight || r.Weight != tc.weight) {
				t.Fatalf("weight %v/%d, want %d", r.HasWeight, r.Weight, tc.weight)
			}
			if tc.body == "exit 0" && r.HasWeight {
				t.Fatal("exit 0 must not set a weight")
			}
		})
	}
}

func TestMiscArgsWithoutShell(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	p := writeScript(t, dir, "args.sh", `for a in "$@"; do echo "[$a]"; done > `+out)
	r := checkWithin(t, &MiscChecker{Command: p + ` one "two words" 'it''s'`}, 5*time.Second)
	if !r.OK {
		t.Fatal(r.Reason)
	}
	got, _ := os.ReadFile(out)
	if want := "[one]\n[two words]\n[its]\n"; string(got) != want {
		t.Fatalf("args %q, want %q", got, want)
	}
}

func TestMiscTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	p := writeScript(t, dir, "hang.sh", "sleep 60 &\necho $! > "+pidFile+"\nwait")
	fd := countFDs(t)
	r := checkWithin(t, &MiscChecker{Command: p}, 2*time.Second)
	if r.OK || r.Reason != "script timeout after 2s (killed)" {
		t.Fatalf("got %+v", r)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// The grandchild got SIGKILL with its group: poll until it is gone
	// (or a zombie waiting for its new parent).
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived the timeout", pid)
		}
		<-tick.C
	}
	if after := countFDs(t); after > fd {
		t.Fatalf("descriptor leak: %d -> %d", fd, after)
	}
}

func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func TestMiscFloodIsBounded(t *testing.T) {
	// 64 MB to stdout, then exit 1: the script is never blocked, the kept
	// output stays at the limit.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run := runScript(ctx, `/bin/sh -c "head -c 67108864 /dev/zero; exit 1"`, ScriptOptions{})
	if run.err != nil || run.timedOut || run.exitCode != 1 {
		t.Fatalf("run: %+v", run)
	}
	if len(run.output) != defaultOutputLimit {
		t.Fatalf("kept %d bytes of output, want the %d limit", len(run.output), defaultOutputLimit)
	}
}

func TestParseCommand(t *testing.T) {
	cases := []struct {
		in    string
		words []string
		shell bool
		err   bool
	}{
		{in: "/usr/bin/check", words: []string{"/usr/bin/check"}},
		{in: "  /bin/x  a\tb  ", words: []string{"/bin/x", "a", "b"}},
		{in: `/bin/x "a b" 'c d' e"f g"h`, words: []string{"/bin/x", "a b", "c d", "ef gh"}},
		{in: `/bin/x "say \"hi\"" 'no \ escape'`, words: []string{"/bin/x", `say "hi"`, `no \ escape`}},
		{in: `/bin/x "" y`, words: []string{"/bin/x", "", "y"}},
		{in: `/bin/x "a|b"`, words: []string{"/bin/x", "a|b"}},
		{in: `/bin/check | grep ok`, words: []string{"/bin/check", "|", "grep", "ok"}, shell: true},
		{in: `</dev/tcp/127.0.0.1/80`, words: []string{"</dev/tcp/127.0.0.1/80"}, shell: true},
		{in: `/bin/x $HOME`, words: []string{"/bin/x", "$HOME"}, shell: true},
		{in: `/bin/x "unterminated`, err: true},
		{in: "   ", err: true},
	}
	for _, tc := range cases {
		w, sh, err := ParseCommand(tc.in)
		if (err != nil) != tc.err {
			t.Fatalf("%q: err %v", tc.in, err)
		}
		if err == nil && (!slices.Equal(w, tc.words) || sh != tc.shell) {
			t.Fatalf("%q: got %q shell=%v, want %q shell=%v", tc.in, w, sh, tc.words, tc.shell)
		}
	}
}

func TestScriptSecurity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the rule is about root-owned paths")
	}
	base := t.TempDir() // 0700, root-owned, under sticky /tmp
	safe := writeScript(t, base, "safe.sh", "exit 0")
	if err := CheckScriptSecurity(safe + " arg"); err != nil {
		t.Fatalf("safe script refused: %v", err)
	}

	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // umask
		t.Fatal(err)
	}
	inOpen := writeScript(t, open, "s.sh", "exit 0")
	err := CheckScriptSecurity(inOpen)
	if !errors.Is(err, ErrInsecureScript) || !strings.Contains(err.Error(), "writable by non-root") {
		t.Fatalf("world-writable directory: %v", err)
	}

	sticky := filepath.Join(base, "sticky")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := CheckScriptSecurity(writeScript(t, sticky, "s.sh", "exit 0")); err != nil {
		t.Fatalf("sticky directory (like /tmp) must be allowed: %v", err)
	}

	owned := writeScript(t, base, "owned.sh", "exit 0")
	if err := os.Chown(owned, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := CheckScriptSecurity(owned); !errors.Is(err, ErrInsecureScript) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("non-root owner: %v", err)
	}

	groupW := writeScript(t, base, "groupw.sh", "exit 0")
	if err := os.Chown(groupW, 0, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(groupW, 0o775); err != nil {
		t.Fatal(err)
	}
	if err := CheckScriptSecurity(groupW); !errors.Is(err, ErrInsecureScript) {
		t.Fatalf("group-writable, non-root group: %v", err)
	}

	// Through a symlink: the target's path is checked too.
	link := filepath.Join(base, "link.sh")
	if err := os.Symlink(inOpen, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckScriptSecurity(link); !errors.Is(err, ErrInsecureScript) {
		t.Fatalf("symlink to an insecure script: %v", err)
	}

	// The checker refuses to run it, with the reason.
	r := checkWithin(t, &MiscChecker{Command: inOpen, Script: ScriptOptions{Security: true}}, 5*time.Second)
	if r.OK || !strings.Contains(r.Reason, "insecure script") {
		t.Fatalf("insecure script run: %+v", r)
	}
	if r := checkWithin(t, &MiscChecker{Command: inOpen}, 5*time.Second); !r.OK {
		t.Fatalf("without enable_script_security it runs: %+v", r)
	}
}

func TestScriptUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	run := runScript(ctx, `/bin/sh -c "id -u; id -G"`, ScriptOptions{User: "nobody"})
	if run.err != nil || run.exitCode != 0 {
		t.Fatalf("run: %+v", run)
	}
	u, _ := user.Lookup("nobody")
	lines := strings.Fields(run.output)
	if len(lines) < 1 || lines[0] != u.Uid {
		t.Fatalf("ran as %q, want uid %s", run.output, u.Uid)
	}
	if slices.Contains(lines[1:], "0") {
		t.Fatalf("root group kept: %q", run.output)
	}
	run = runScript(ctx, "/bin/true", ScriptOptions{User: "no-such-user-halb"})
	if run.err == nil || !strings.Contains(run.err.Error(), "no-such-user-halb") {
		t.Fatalf("unknown user: %+v", run)
	}
}
