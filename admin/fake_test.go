package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 11, 23, 19, 0, 0, 0, time.UTC)

type fakeSource struct {
	mu       sync.Mutex
	info     Info
	services []Service
	vrrp     []VRRPInstance
	ipvs     string
	ipvsErr  error
}

func (f *fakeSource) Info() Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info
}

func (f *fakeSource) Services() []Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Service(nil), f.services...)
}

func (f *fakeSource) VRRP() []VRRPInstance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]VRRPInstance(nil), f.vrrp...)
}

func (f *fakeSource) IPVS() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ipvs, f.ipvsErr
}

func newFakeSource() *fakeSource {
	return &fakeSource{
		info: Info{
			Version: "1.2.3", GoVersion: "go1.26.8", StartedAt: t0.Add(-3*time.Hour - 4*time.Minute),
			ConfigFile: "/etc/halb/halb.conf", ConfigHash: "9f2c41d07a",
			LastReload: Reload{At: t0.Add(-10 * time.Minute), OK: true, Hash: "9f2c41d07a"},
			LogLevel:   "info", PID: 4242,
		},
		services: []Service{
			{
				Name: "web", Listen: "198.18.0.10:80", Mode: "http", State: StateUp,
				Active: 12, Total: 123456, Queued: 1, Refused: 3, BytesIn: 5 << 20, BytesOut: 3 << 30,
				Requests: [5]uint64{0, 120000, 300, 2000, 7}, Errors: 4,
				Backends: []Backend{
					{Name: "web1", Addr: "198.18.0.11:80", State: StateUp, Weight: 100, ConfiguredWeight: 100, Active: 6, Total: 60000,
						BytesIn: 1 << 20, BytesOut: 1 << 30,
						LastCheck: Check{At: t0.Add(-2 * time.Second), OK: true, Reason: "HTTP 200", Duration: 3 * time.Millisecond},
						Since:     t0.Add(-2 * time.Hour)},
					{Name: "web2", Addr: "198.18.0.12:80", State: StateDrain, Weight: 100, ConfiguredWeight: 100, Active: 2, Total: 40000,
						LastCheck: Check{At: t0.Add(-1 * time.Second), OK: true, Reason: "HTTP 200", Duration: 4 * time.Millisecond},
						Since:     t0.Add(-5 * time.Minute)},
					{Name: "web3", Addr: "198.18.0.13:80", State: StateDown, Weight: 100, ConfiguredWeight: 100,
						LastCheck:     Check{At: t0.Add(-3 * time.Second), OK: false, Reason: "connection refused", Duration: time.Millisecond},
						Since:         t0.Add(-90 * time.Second),
						CheckFailures: map[string]uint64{"refused": 5, "timeout": 2}},
					{Name: "web4", Addr: "198.18.0.14:80", State: StateMaint, Weight: 0, ConfiguredWeight: 50, Since: t0.Add(-26 * time.Hour)},
					{Name: "sorry", Addr: "198.18.0.15:80", State: StateUp, Weight: 1, ConfiguredWeight: 1, Backup: true,
						LastCheck: Check{At: t0.Add(-4 * time.Second), OK: true}, Since: t0.Add(-3 * time.Hour)},
				},
			},
			{
				Name: "db", Listen: "198.18.0.10:5432", Mode: "tcp", State: StateDown,
				Backends: []Backend{
					{Name: "pg1", Addr: "198.18.0.21:5432", State: StateDown, Weight: 1, ConfiguredWeight: 1,
						LastCheck: Check{At: t0.Add(-time.Second), Reason: "timeout", Duration: 2 * time.Second}, Since: t0.Add(-time.Minute)},
				},
			},
		},
		vrrp: []VRRPInstance{{
			Name: "VI_WEB1", Interface: "eth0", VRID: 51, State: "master", Priority: 101, EffectivePriority: 81,
			Contributions:  []Contribution{{Name: "chk_haproxy", Weight: -20, Fault: true, Reason: "exit 1"}},
			MasterAddr:     "198.18.0.2",
			LastTransition: Transition{At: t0.Add(-time.Hour), From: "backup", To: "master", Cause: "master down timer"},
			AdvertsSent:    3600, AdvertsReceived: 12, Dropped: map[string]uint64{"auth_fail": 2, "ttl": 1}, Transitions: 3,
		}},
		ipvs: "TCP  198.18.0.10:80 wlc\n  -> 198.18.0.11:80  Route  100  6  0\n",
	}
}

type call struct {
	op, service, backend, arg string
}

type fakeController struct {
	mu    sync.Mutex
	calls []call
	err   error // returned by every call when set
}

func (f *fakeController) record(c call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.err
}

func (f *fakeController) SetBackendState(service, backend, s string) error {
	if service != "web" && service != "db" {
		_ = f.record(call{"state", service, backend, s})
		return fmt.Errorf("unknown service %q", service)
	}
	return f.record(call{"state", service, backend, s})
}

func (f *fakeController) SetWeight(service, backend string, w int) error {
	return f.record(call{"weight", service, backend, fmt.Sprint(w)})
}

func (f *fakeController) Reload() error { return f.record(call{op: "reload"}) }

func (f *fakeController) SetLogLevel(l string) error { return f.record(call{op: "loglevel", arg: l}) }

func (f *fakeController) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// sockDir returns a short temporary directory (unix socket paths are limited
// to 107 bytes, and t.TempDir embeds the test name).
func sockDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "halb-admin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

type env struct {
	src  *fakeSource
	ctl  *fakeController
	srv  *Server
	sock string
}

// start runs a server on a fresh socket (and stats on 127.0.0.1:0 when
// stats is true).
func start(t *testing.T, stats bool, mod func(*Options)) *env {
	t.Helper()
	e := &env{src: newFakeSource(), ctl: &fakeController{}}
	e.sock = filepath.Join(sockDir(t), "run", "halb.sock")
	o := Options{SocketPath: e.sock, Now: func() time.Time { return t0 }, Timeout: 5 * time.Second}
	if stats {
		o.StatsListen = "127.0.0.1:0"
	}
	if mod != nil {
		mod(&o)
	}
	e.srv = NewServer(zaptest.NewLogger(t), e.src, e.ctl, o)
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.srv.Start(ctx); err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := e.srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

var errBoom = errors.New("boom")

func contains(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
