package admin

import (
	"bytes"
	"encoding/json"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func runCtl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = ctlMain(args, &o, &e, func() time.Time { return t0 })
	return code, o.String(), e.String()
}

// lineWith returns the output line that contains every one of subs.
func lineWith(t *testing.T, out string, subs ...string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			return l
		}
	}
	t.Errorf("no line with %q in:\n%s", subs, out)
	return ""
}

func TestCtlTables(t *testing.T) {
	e := start(t, false, nil)

	code, out, errOut := runCtl(t, "-s", e.sock, "show", "backends")
	if code != ExitOK || errOut != "" {
		t.Fatalf("show backends: code %d, stderr %q", code, errOut)
	}
	t.Logf("\n%s", out)
	contains(t, "header", strings.SplitN(out, "\n", 2)[0], "SERVICE", "BACKEND", "ADDRESS", "STATE", "IN STATE", "WEIGHT", "ACTIVE", "LAST CHECK")
	// Each row's fields, in order, on one line.
	for _, want := range [][]string{
		{"web", "web1", "198.18.0.11:80", "UP", "2h00m", "100", "6", "60000", "OK HTTP 200 (3ms)", "2s ago"},
		{"web", "web2", "DRAIN", "5m00s"},
		{"web", "web3", "DOWN", "1m30s", "FAIL connection refused (1ms)", "3s ago"},
		{"web", "web4", "MAINT", "1d02h", "0 (cfg 50)"},
		{"web", "sorry", "UP", "backup"},
		{"db", "pg1", "198.18.0.21:5432", "DOWN", "FAIL timeout (2s)"},
	} {
		l := lineWith(t, out, want[1]+" ")
		pos := 0
		for _, w := range want {
			i := strings.Index(l[pos:], w)
			if i < 0 {
				t.Errorf("row %q: %q missing or out of order", l, w)
				break
			}
			pos += i + len(w)
		}
	}
	// Aligned: the STATE column starts at the same offset on every line.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	col := strings.Index(lines[0], "STATE")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("STATE column not aligned at %d: %q", col, l)
		}
	}

	code, out, _ = runCtl(t, "-s", e.sock, "show", "backends", "db")
	if code != ExitOK || strings.Contains(out, "web1") || !strings.Contains(out, "pg1") {
		t.Errorf("show backends db: %d\n%s", code, out)
	}

	code, out, _ = runCtl(t, "-s", e.sock, "show", "services")
	if code != ExitOK {
		t.Fatalf("show services: %d", code)
	}
	lineWith(t, out, "web", "198.18.0.10:80", "http", "up", "2/5", "12", "123456", "5.0 MiB", "3.0 GiB", "120000", "2000")
	lineWith(t, out, "db", "tcp", "down", "0/1")

	code, out, _ = runCtl(t, "-s", e.sock, "show", "vrrp")
	if code != ExitOK {
		t.Fatalf("show vrrp: %d", code)
	}
	lineWith(t, out, "VI_WEB1", "eth0", "51", "MASTER", "101", "81", "198.18.0.2", "backup->master 1h00m ago (master down timer)", "3600", "auth_fail=2,ttl=1", "chk_haproxy-20!FAULT")

	code, out, _ = runCtl(t, "-s", e.sock, "show", "info")
	if code != ExitOK {
		t.Fatalf("show info: %d", code)
	}
	lineWith(t, out, "version:", "1.2.3")
	lineWith(t, out, "uptime:", "3h04m")
	lineWith(t, out, "last reload:", "ok 10m00s ago")
	lineWith(t, out, "config hash:", "9f2c41d07a")

	code, out, _ = runCtl(t, "-s", e.sock, "show", "ipvs")
	if code != ExitOK || out != e.src.ipvs {
		t.Errorf("show ipvs: %d %q", code, out)
	}

	code, out, _ = runCtl(t, "-s", e.sock, "help")
	if code != ExitOK {
		t.Fatalf("help: %d", code)
	}
	lineWith(t, out, "set weight SERVICE/BACKEND N", "0..256")
}

func TestCtlJSON(t *testing.T) {
	e := start(t, false, nil)
	for _, args := range [][]string{
		{"-s", e.sock, "--json", "show", "vrrp"},
		{"-s", e.sock, "show", "vrrp", "--json"},
	} {
		code, out, _ := runCtl(t, args...)
		var vs []VRRPInstance
		if code != ExitOK || json.Unmarshal([]byte(out), &vs) != nil || !reflect.DeepEqual(vs, e.src.vrrp) {
			t.Errorf("%q: code %d\n%s", args, code, out)
		}
	}
	code, out, _ := runCtl(t, "-s", e.sock, "-json", "drain", "backend", "web/web2")
	if code != ExitOK || strings.TrimSpace(out) != `"web/web2: draining"` {
		t.Errorf("drain --json: %d %q", code, out)
	}
}

func TestCtlExitCodes(t *testing.T) {
	e := start(t, false, nil)

	// 0: a change goes through to the controller.
	code, out, _ := runCtl(t, "-s", e.sock, "drain", "backend", "web/198.18.0.11:80")
	if code != ExitOK || !strings.Contains(out, "web/198.18.0.11:80: draining") {
		t.Errorf("drain: %d %q", code, out)
	}
	if c := e.ctl.Calls(); len(c) != 1 || c[0] != (call{"state", "web", "198.18.0.11:80", AdminDrain}) {
		t.Errorf("calls %+v", c)
	}

	// A shell argument with a space stays one word.
	code, _, errOut := runCtl(t, "-s", e.sock, "set", "weight", "fwmark 5/198.18.0.11:80", "7")
	if c := e.ctl.Calls(); code != ExitOK || len(c) != 2 || c[1] != (call{"weight", "fwmark 5", "198.18.0.11:80", "7"}) {
		t.Errorf("service name with a space: %d %q %+v", code, errOut, c)
	}

	// 1: refused by the daemon, its reason on stderr.
	code, out, errOut = runCtl(t, "-s", e.sock, "enable", "backend", "nope/x")
	if code != ExitRefused || out != "" || !strings.Contains(errOut, `unknown service "nope"`) {
		t.Errorf("refused: %d %q %q", code, out, errOut)
	}

	// 2: usage errors are caught before anything is sent.
	before := len(e.ctl.Calls())
	for _, args := range [][]string{
		{"-s", e.sock},
		{"-s", e.sock, "frobnicate"},
		{"-s", e.sock, "set", "weight", "web/web1", "300"},
		{"-s", e.sock, "drain", "web1"},
		{"-s", e.sock, "prompt"},
		{"-bogus-flag"},
	} {
		code, _, errOut := runCtl(t, args...)
		if code != ExitUsage || errOut == "" {
			t.Errorf("%q: code %d, stderr %q; want %d with a message", args, code, errOut, ExitUsage)
		}
	}
	if n := len(e.ctl.Calls()); n != before {
		t.Errorf("usage errors reached the controller")
	}
	code, _, errOut = runCtl(t, "-h")
	if code != ExitOK || !strings.Contains(errOut, "exit codes") || !strings.Contains(errOut, "drain backend SERVICE/BACKEND") {
		t.Errorf("-h: %d %q", code, errOut)
	}

	// 3: nobody there.
	code, _, errOut = runCtl(t, "-s", filepath.Join(sockDir(t), "none.sock"), "show", "info")
	if code != ExitUnreachable || !strings.Contains(errOut, "cannot reach halb") {
		t.Errorf("no socket: %d %q", code, errOut)
	}
	// 3: something listens but hangs up without a reply.
	mute := filepath.Join(sockDir(t), "mute.sock")
	l, err := net.Listen("unix", mute)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	code, _, errOut = runCtl(t, "-s", mute, "show", "info")
	if code != ExitUnreachable {
		t.Errorf("mute daemon: %d %q", code, errOut)
	}
}

func TestCtlSocketFromEnv(t *testing.T) {
	e := start(t, false, nil)
	t.Setenv("HALB_SOCKET", e.sock)
	if code, _, errOut := runCtl(t, "show", "info"); code != ExitOK {
		t.Errorf("HALB_SOCKET: %d %q", code, errOut)
	}
	// -s wins over the environment.
	t.Setenv("HALB_SOCKET", "/nonexistent/halb.sock")
	if code, _, _ := runCtl(t, "-s", e.sock, "show", "info"); code != ExitOK {
		t.Errorf("-s did not override HALB_SOCKET: %d", code)
	}
	if code, _, _ := runCtl(t, "show", "info"); code != ExitUnreachable {
		t.Errorf("HALB_SOCKET ignored: %d", code)
	}
}

func TestCtlReloadRefused(t *testing.T) {
	e := start(t, false, nil)
	e.ctl.mu.Lock()
	e.ctl.err = errBoom
	e.ctl.mu.Unlock()
	code, _, errOut := runCtl(t, "-s", e.sock, "reload")
	if code != ExitRefused || !strings.Contains(errOut, "reload: boom") {
		t.Errorf("reload refused: %d %q", code, errOut)
	}
}
