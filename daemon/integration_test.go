package daemon

import (
	"context"
	"fmt"
	"halb/internal/poll"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"halb/admin"
	"halb/internal/demo"
)

// TestHealthDrivesPool: a backend that dies leaves the pool by itself (its requests go to the
// other one, none fail once it is out) and comes back by itself when it returns.
func TestHealthDrivesPool(t *testing.T) {
	be1, err := demo.StartNamed([]string{"web1"}, []string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	be2, err := demo.StartNamed([]string{"web2"}, []string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer be2.Close()
	port := freePort(t)
	path := filepath.Join(t.TempDir(), "halb.conf")
	if err := os.WriteFile(path, []byte(configFor(port, []string{be1.Addrs[0], be2.Addrs[0]}, "rr", 1, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, path)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitHTTP(t, url)
	state := func(backend string) string {
		for _, s := range (source{d}).Services() {
			for _, b := range s.Backends {
				if b.Name == backend {
					return b.State + " " + b.LastCheck.Reason
				}
			}
		}
		return "missing"
	}
	be1.Close()
	if !poll.Until(10*time.Second, 10*time.Millisecond, func() bool { return strings.HasPrefix(state(be1.Addrs[0]), admin.StateDown) }) {
		t.Fatalf("dead backend never left the pool: %s", state(be1.Addrs[0]))
	}
	if s := state(be1.Addrs[0]); !strings.Contains(s, "refused") {
		t.Errorf("down reason %q does not say the connection was refused", s)
	}
	for i := 0; i < 20; i++ {
		body := get(t, url)
		if !strings.Contains(body, "web2") {
			t.Fatalf("request %d after web1 left: %q", i, body)
		}
	}
	// web1 returns on the same address.
	be1b, err := demo.StartNamed([]string{"web1"}, be1.Addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer be1b.Close()
	if !poll.Until(10*time.Second, 10*time.Millisecond, func() bool { return strings.HasPrefix(state(be1.Addrs[0]), admin.StateUp) }) {
		t.Fatalf("returning backend never rejoined: %s", state(be1.Addrs[0]))
	}
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		body := get(t, url)
		seen[body[:len("hello from web1")]] = true
	}
	if !seen["hello from web1"] || !seen["hello from web2"] {
		t.Fatalf("rr over both after the return: %v", seen)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return string(b)
}

// TestSystemdNotify: with NOTIFY_SOCKET set, halb says READY=1 when serving, RELOADING=1 then
// READY=1 around a reload, and STOPPING=1 on stop (Type=notify in dist/halb.service).
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	be, err := demo.Start([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	port := freePort(t)
	path := filepath.Join(t.TempDir(), "halb.conf")
	if err := os.WriteFile(path, []byte(configFor(port, be.Addrs, "rr", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{ConfigPath: path, Log: zap.NewNop(), AdminSocket: "-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	next := func() string {
		_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 256)
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	if m := next(); m != "READY=1" {
		t.Fatalf("first notification %q", m)
	}
	<-d.Ready() // the notification orders nothing for the race detector
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if m := next(); m != "RELOADING=1" {
		t.Fatalf("reload: %q", m)
	}
	if m := next(); m != "READY=1" {
		t.Fatalf("after reload: %q", m)
	}
	cancel()
	if m := next(); m != "STOPPING=1" {
		t.Fatalf("stop: %q", m)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestBackendBytesCounted: per-backend traffic reaches the admin views (stats page, metrics).
func TestBackendBytesCounted(t *testing.T) {
	be, err := demo.Start([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	port := freePort(t)
	path := filepath.Join(t.TempDir(), "halb.conf")
	if err := os.WriteFile(path, []byte(configFor(port, be.Addrs, "rr", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, path)
	url := fmt.Sprintf("http://127.0.0.1:%d/big", port)
	waitHTTP(t, url)
	for i := 0; i < 3; i++ {
		if n := len(get(t, url)); n != 64<<10 {
			t.Fatalf("body %d bytes", n)
		}
	}
	var in, out uint64
	ok := poll.Until(5*time.Second, 10*time.Millisecond, func() bool {
		b := (source{d}).Services()[0].Backends[0]
		in, out = b.BytesIn, b.BytesOut
		// waitHTTP closes its response unread, so only the three reads above are sure
		// to have been streamed whole.
		return out >= 3*64<<10
	})
	if !ok || in == 0 {
		t.Fatalf("backend bytes in %d, out %d", in, out)
	}
}
