package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"halb/internal/poll"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

type reply struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error"`
	Data  json.RawMessage `json:"data"`
}

// send writes raw bytes on a fresh connection and returns the whole reply
// stream (the server closes after one command).
func sendRaw(t *testing.T, sock string, raw string) string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func send(t *testing.T, sock, line string) reply {
	t.Helper()
	out := sendRaw(t, sock, line+"\n")
	var r reply
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("%q: want exactly one reply line, got %q", line, out)
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%q: reply %q: %v", line, out, err)
	}
	return r
}

func TestSocketShowCommands(t *testing.T) {
	e := start(t, false, nil)

	r := send(t, e.sock, "show info")
	var in Info
	if !r.OK || json.Unmarshal(r.Data, &in) != nil || !reflect.DeepEqual(in, e.src.info) {
		t.Errorf("show info: %+v / %+v", r, in)
	}

	r = send(t, e.sock, "show services")
	var ss []Service
	if !r.OK || json.Unmarshal(r.Data, &ss) != nil || !reflect.DeepEqual(ss, e.src.services) {
		t.Errorf("show services: ok=%v err=%q, got %+v", r.OK, r.Error, ss)
	}

	r = send(t, e.sock, "show backends")
	var rows []ServiceBackend
	if !r.OK || json.Unmarshal(r.Data, &rows) != nil || len(rows) != 6 || rows[0].Service != "web" || rows[0].Name != "web1" || rows[5].Service != "db" {
		t.Errorf("show backends: %+v %+v", r, rows)
	}
	r = send(t, e.sock, "show backends db")
	rows = nil
	if !r.OK || json.Unmarshal(r.Data, &rows) != nil || len(rows) != 1 || rows[0].Name != "pg1" || rows[0].LastCheck.Reason != "timeout" {
		t.Errorf("show backends db: %+v %+v", r, rows)
	}
	if r := send(t, e.sock, "show backends nope"); r.OK || r.Error != `unknown service "nope"` {
		t.Errorf("show backends nope: %+v", r)
	}

	r = send(t, e.sock, "show vrrp")
	var vs []VRRPInstance
	if !r.OK || json.Unmarshal(r.Data, &vs) != nil || !reflect.DeepEqual(vs, e.src.vrrp) {
		t.Errorf("show vrrp: %+v %+v", r, vs)
	}

	r = send(t, e.sock, "show ipvs")
	var text string
	if !r.OK || json.Unmarshal(r.Data, &text) != nil || text != e.src.ipvs {
		t.Errorf("show ipvs: %+v %q", r, text)
	}
	e.src.mu.Lock()
	e.src.ipvsErr = errors.New("ipvs: not in use (no lb_kind DR/TUN service)")
	e.src.mu.Unlock()
	if r := send(t, e.sock, "show ipvs"); r.OK || !strings.Contains(r.Error, "not in use") {
		t.Errorf("show ipvs with error: %+v", r)
	}

	r = send(t, e.sock, "help")
	var hs []HelpEntry
	if !r.OK || json.Unmarshal(r.Data, &hs) != nil || len(hs) != len(Help()) {
		t.Errorf("help: %+v", r)
	}
	if n := len(e.ctl.Calls()); n != 0 {
		t.Errorf("read-only commands made %d controller calls", n)
	}
}

func TestSocketEmptyListsAreArrays(t *testing.T) {
	e := start(t, false, nil)
	e.src.mu.Lock()
	e.src.services, e.src.vrrp = nil, nil
	e.src.mu.Unlock()
	for _, cmd := range []string{"show services", "show backends", "show vrrp"} {
		if r := send(t, e.sock, cmd); !r.OK || string(r.Data) != "[]" {
			t.Errorf("%s: %+v, want data []", cmd, r)
		}
	}
}

func TestSocketChanges(t *testing.T) {
	e := start(t, false, nil)
	for _, tc := range []struct {
		line string
		want call
		msg  string
	}{
		{"enable backend web/web4", call{"state", "web", "web4", AdminReady}, "web/web4: enabled"},
		{"disable backend web/198.18.0.11:80", call{"state", "web", "198.18.0.11:80", AdminMaint}, "in maintenance"},
		{"drain backend web/web2", call{"state", "web", "web2", AdminDrain}, "draining"},
		{"set weight web/web1 0", call{"weight", "web", "web1", "0"}, "weight 0"},
		{"set weight web/web1 256", call{"weight", "web", "web1", "256"}, "weight 256"},
		{"reload", call{op: "reload"}, "reloaded (config 9f2c41d07a)"},
		{"set loglevel debug", call{op: "loglevel", arg: "debug"}, "log level debug"},
	} {
		before := len(e.ctl.Calls())
		r := send(t, e.sock, tc.line)
		calls := e.ctl.Calls()
		if !r.OK || !strings.Contains(string(r.Data), tc.msg) {
			t.Errorf("%s: %+v, want ok with %q", tc.line, r, tc.msg)
		}
		if len(calls) != before+1 || calls[len(calls)-1] != tc.want {
			t.Errorf("%s: calls %+v, want one more: %+v", tc.line, calls[before:], tc.want)
		}
	}
}

func TestSocketControllerErrors(t *testing.T) {
	e := start(t, false, nil)
	if r := send(t, e.sock, "drain backend nope/x"); r.OK || r.Error != `unknown service "nope"` {
		t.Errorf("unknown service: %+v", r)
	}
	e.ctl.mu.Lock()
	e.ctl.err = errors.New("config: /etc/halb/halb.conf:12: virtual_server: unknown keyword \"lb_algoo\"\nconfig: /etc/halb/halb.conf:30: real_server: weight 300 out of range")
	e.ctl.mu.Unlock()
	r := send(t, e.sock, "reload")
	if r.OK || !strings.Contains(r.Error, "halb.conf:12") || !strings.Contains(r.Error, "\nconfig: /etc/halb/halb.conf:30") {
		t.Errorf("refused reload must carry every validation error: %+v", r)
	}
}

func TestSocketBadInputMakesNoCall(t *testing.T) {
	e := start(t, false, nil)
	for _, tc := range []struct{ raw, wantErr string }{
		{"frobnicate\n", "unknown command"},
		{"drain backend web\n", "want SERVICE/BACKEND"},
		{"set weight web/web1 300\n", "not an integer in 0..256"},
		{"set weight web/web1 -3\n", "not an integer in 0..256"},
		{"set weight web/web1 ten\n", "not an integer"},
		{"set weight web/web1 5 6\n", "unexpected argument"},
		{"reload please\n", "unexpected argument"},
		{"set loglevel loud\n", "unknown level"},
		{"drain backend web/web1\x00\n", "NUL byte"},
		{"drain backend web/\x00web1\n", "NUL byte"},
		{"enable backend web/web1 \x07\n", "control character"},
		{"\n", "empty command"},
		{"drain backend web/" + strings.Repeat("x", 5000) + "\n", "longer than 4095 bytes"},
		{"reload" + strings.Repeat(" ", MaxLine) + "\n", "longer than 4095 bytes"},
		{"drain backend web/" + strings.Repeat("y", 200000), "longer than 4095 bytes"},
	} {
		out := sendRaw(t, e.sock, tc.raw)
		var r reply
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Errorf("%.30q: reply %q: %v", tc.raw, out, err)
			continue
		}
		if r.OK || !strings.Contains(r.Error, tc.wantErr) {
			t.Errorf("%.30q: %+v, want error %q", tc.raw, r, tc.wantErr)
		}
	}
	if c := e.ctl.Calls(); len(c) != 0 {
		t.Errorf("bad input reached the controller: %+v", c)
	}
}

func TestSocketNoNewlineAtEOF(t *testing.T) {
	e := start(t, false, nil)
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "drain backend web/web2")
	_ = c.(*net.UnixConn).CloseWrite()
	b, _ := io.ReadAll(c)
	if !strings.Contains(string(b), `"ok":true`) || len(e.ctl.Calls()) != 1 {
		t.Errorf("command without newline then EOF: %q, calls %v", b, e.ctl.Calls())
	}
}

func TestSocketInteractive(t *testing.T) {
	e := start(t, false, nil)
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	ask := func(line string) reply {
		t.Helper()
		if _, err := io.WriteString(c, line+"\n"); err != nil {
			t.Fatal(err)
		}
		b, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		var r reply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %q: %v", line, b, err)
		}
		return r
	}
	if r := ask("prompt"); !r.OK {
		t.Fatalf("prompt: %+v", r)
	}
	if r := ask("show info"); !r.OK {
		t.Errorf("show info: %+v", r)
	}
	if r := ask("bogus"); r.OK {
		t.Errorf("bogus accepted: %+v", r)
	}
	if r := ask("drain backend web/web1"); !r.OK {
		t.Errorf("drain after an error in interactive mode: %+v", r)
	}
	_, _ = io.WriteString(c, "\nquit\n")
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Errorf("after quit: %q, %v; want clean EOF", b, err)
	}
	if n := len(e.ctl.Calls()); n != 1 {
		t.Errorf("calls %d, want 1", n)
	}
}

func TestSocketIdleClientDropped(t *testing.T) {
	e := start(t, false, func(o *Options) { o.Timeout = 50 * time.Millisecond })
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Send nothing; the server must hang up on its own, long before ours.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("server did not drop the idle client: %v", err)
	}
	if len(b) != 0 {
		t.Errorf("idle client got %q", b)
	}
	// A partial line without newline is dropped the same way.
	c2, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, _ = io.WriteString(c2, "drain backend web/web1")
	_ = c2.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(c2); err != nil {
		t.Fatalf("slow client not dropped: %v", err)
	}
	if n := len(e.ctl.Calls()); n != 0 {
		t.Errorf("incomplete line ran: %d calls", n)
	}
}

func TestSocketMaxConns(t *testing.T) {
	e := start(t, false, func(o *Options) { o.MaxConns = 1 })
	hold, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	// Make sure the held connection was accepted and is being served.
	_, _ = io.WriteString(hold, "prompt\n")
	_ = hold.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(hold).ReadBytes('\n'); err != nil {
		t.Fatal(err)
	}
	r := send(t, e.sock, "show info")
	if r.OK || !strings.Contains(r.Error, "too many") {
		t.Errorf("second connection: %+v", r)
	}
}

func TestSocketModeAndStale(t *testing.T) {
	e := start(t, false, nil)
	fi, err := os.Lstat(e.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	if fi, err := os.Stat(filepath.Dir(e.sock)); err != nil || !fi.IsDir() {
		t.Errorf("socket dir not created: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(e.sock), ".halb-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary socket names left: %v", leftovers)
	}

	// A second server on the same live socket must refuse, not steal it.
	s2 := NewServer(zap.NewNop(), e.src, e.ctl, Options{SocketPath: e.sock})
	if err := s2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Errorf("second server on a live socket: %v", err)
	}
	_ = s2.Close()
	if r := send(t, e.sock, "show info"); !r.OK {
		t.Errorf("first server broken by the second: %+v", r)
	}

	// Close removes the socket.
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(e.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
}

func TestSocketCustomModeAndOwner(t *testing.T) {
	e := start(t, false, func(o *Options) { o.Mode = 0o660; o.Owner = "0:0" })
	fi, err := os.Lstat(e.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v, want 0660", fi.Mode().Perm())
	}
	s := NewServer(zap.NewNop(), e.src, e.ctl, Options{SocketPath: filepath.Join(sockDir(t), "x.sock"), Owner: "no-such-user-halb"})
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "socket owner") {
		t.Errorf("unknown owner: %v", err)
	}
	_ = s.Close()
}

func TestSocketStaleRemoved(t *testing.T) {
	dir := sockDir(t)
	sock := filepath.Join(dir, "halb.sock")
	// A socket file nobody listens on, as a killed daemon leaves it.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	_ = l.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("stale socket not there: %v", err)
	}
	src, ctl := newFakeSource(), &fakeController{}
	s := NewServer(zap.NewNop(), src, ctl, Options{SocketPath: sock})
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("start over a stale socket: %v", err)
	}
	defer s.Close()
	if r := send(t, sock, "show info"); !r.OK {
		t.Errorf("after stale removal: %+v", r)
	}

	// A regular file in the way is never removed.
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := NewServer(zap.NewNop(), src, ctl, Options{SocketPath: file})
	if err := s2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file in the way: %v", err)
	}
	_ = s2.Close()
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Errorf("regular file clobbered: %q", b)
	}
}

func TestContextCancelStops(t *testing.T) {
	dir := sockDir(t)
	sock := filepath.Join(dir, "halb.sock")
	s := NewServer(zap.NewNop(), newFakeSource(), nil, Options{SocketPath: sock})
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	gone := poll.Until(time.Until(deadline), 5*time.Millisecond, func() bool {
		_, err := os.Lstat(sock)
		return errors.Is(err, os.ErrNotExist)
	})
	if !gone {
		t.Fatal("socket still there 10s after ctx cancel")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after cancel: %v", err)
	}
}

func TestReadOnlyServer(t *testing.T) {
	sock := filepath.Join(sockDir(t), "halb.sock")
	s := NewServer(zap.NewNop(), newFakeSource(), nil, Options{SocketPath: sock})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := send(t, sock, "reload"); r.OK || !strings.Contains(r.Error, "read-only") {
		t.Errorf("reload on read-only server: %+v", r)
	}
	if r := send(t, sock, "show info"); !r.OK {
		t.Errorf("show info on read-only server: %+v", r)
	}
}

type panicSource struct{ *fakeSource }

func (panicSource) VRRP() []VRRPInstance { panic("vrrp view exploded") }

func TestPanicInSourceIsAnError(t *testing.T) {
	sock := filepath.Join(sockDir(t), "halb.sock")
	s := NewServer(zap.NewNop(), panicSource{newFakeSource()}, nil, Options{SocketPath: sock})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := send(t, sock, "show vrrp"); r.OK || !strings.Contains(r.Error, "internal error") {
		t.Errorf("panic: %+v", r)
	}
	if r := send(t, sock, "show info"); !r.OK {
		t.Errorf("server dead after a panic: %+v", r)
	}
}

func TestConcurrentClients(t *testing.T) {
	e := start(t, false, nil)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				c, err := net.Dial("unix", e.sock)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.WriteString(c, "set weight web/web1 5\n")
				b, _ := io.ReadAll(c)
				c.Close()
				if !strings.Contains(string(b), `"ok":true`) {
					t.Errorf("reply %q", b)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(e.ctl.Calls()); n != 80 {
		t.Errorf("calls %d, want 80", n)
	}
}

// slowController's Reload takes longer than the server's Timeout (it
// simulates a slow operation; the test does not wait on it for a condition).
type slowController struct {
	fakeController
	d time.Duration
}

func (s *slowController) Reload() error {
	<-time.After(s.d)
	return s.fakeController.Reload()
}

func TestSlowReloadStillAnswered(t *testing.T) {
	sock := filepath.Join(sockDir(t), "halb.sock")
	ctl := &slowController{d: 300 * time.Millisecond}
	s := NewServer(zap.NewNop(), newFakeSource(), ctl, Options{SocketPath: sock, Timeout: 100 * time.Millisecond})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := send(t, sock, "reload"); !r.OK {
		t.Errorf("slow reload: %+v", r)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Errorf("Start after Close succeeded")
	}
}

func TestSocketPathLengths(t *testing.T) {
	dir := sockDir(t)
	long := dir + "/" + strings.Repeat("d", 107-len(dir)-1-len("/h.sock")) + "/h.sock"
	if len(long) != 107 {
		t.Fatalf("test path is %d bytes", len(long))
	}
	// 107 bytes: too long for the temporary name, fine for the socket.
	s := NewServer(zap.NewNop(), newFakeSource(), nil, Options{SocketPath: long})
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("107-byte path: %v", err)
	}
	if r := send(t, long, "show info"); !r.OK {
		t.Errorf("107-byte path: %+v", r)
	}
	if fi, err := os.Lstat(long); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("107-byte path mode: %v %v", fi, err)
	}
	_ = s.Close()
	s2 := NewServer(zap.NewNop(), newFakeSource(), nil, Options{SocketPath: long + "x"})
	if err := s2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "the limit is 107") {
		t.Errorf("108-byte path: %v", err)
	}
	_ = s2.Close()
}

func TestLookupOwner(t *testing.T) {
	for _, tc := range []struct {
		in       string
		uid, gid int
		err      bool
	}{
		{"", -1, -1, false},
		{"root", 0, 0, false},
		{"0", 0, 0, false},
		{"root:root", 0, 0, false},
		{"0:0", 0, 0, false},
		{":root", -1, 0, false},
		{":0", -1, 0, false},
		{"4000000:5", 4000000, 5, false},
		{"root:", 0, 0, true},
		{":", 0, 0, true},
		{"no-such-user-halb", 0, 0, true},
		{"root:no-such-group-halb", 0, 0, true},
	} {
		uid, gid, err := lookupOwner(tc.in)
		if (err != nil) != tc.err || (!tc.err && (uid != tc.uid || gid != tc.gid)) {
			t.Errorf("lookupOwner(%q) = %d, %d, %v", tc.in, uid, gid, err)
		}
	}
}
