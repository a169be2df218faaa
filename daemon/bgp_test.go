package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"halb/bgp"
	"halb/config"
	"halb/internal/poll"
)

func TestBGPDefaultsAgree(t *testing.T) {
	if config.DefaultBGPDrainTime != bgp.DefaultDrain || config.DefaultBGPHoldTime != bgp.DefaultHoldTime ||
		config.DefaultBGPInterface != bgp.DefaultInterface {
		t.Fatalf("config and bgp defaults differ")
	}
}

const bgpConf = `
bgp {
 router_id 198.18.1.11
 local_as 65011
 community 65011:1
 neighbor 198.18.1.1 {
  remote_as 65000
  hold_time 3
 }
 bgp_vip 198.18.0.20
}
virtual_server 198.18.0.10 80 {
 lb_algo %[1]s
 bgp_announce med 5
 real_server 198.18.2.1 80 { }
 real_server 198.18.2.2 80 { }
 real_server 198.18.2.3 80 { }
}
virtual_server 198.18.0.10 443 {
 bgp_announce
 real_server 198.18.2.1 443 { }
}
virtual_server 2001:db8::10 80 {
 bgp_announce
 real_server 2001:db8:2::1 80 { }
}
`

func parseConf(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, diags, err := config.Parse("t.conf", []byte(src))
	if err != nil {
		t.Fatalf("%v %v", err, diags)
	}
	return cfg
}

func TestBGPRoutes(t *testing.T) {
	cfg := parseConf(t, fmt.Sprintf(bgpConf, "mh"))
	if c := bgpConfig(cfg.BGP); c.LocalAS != 65011 || c.Neighbors[0].HoldTime != 3*time.Second || c.Neighbors[0].Keepalive() != time.Second {
		t.Fatalf("bgpConfig: %+v", c)
	}
	names := func(rs []bgp.Route) string {
		var s []string
		for _, r := range rs {
			x := r.Prefix.String()
			if r.HasMED {
				x += fmt.Sprintf(" med %d", r.MED)
			}
			for _, c := range r.Communities {
				x += " " + bgp.Community(c)
			}
			s = append(s, x)
		}
		return strings.Join(s, ", ")
	}
	down := map[string]bool{}
	healthy := func(s string) bool { return !down[s] }
	want := "198.18.0.20/32 65011:1, 198.18.0.10/32 med 5 65011:1, 2001:db8::10/128 65011:1"
	if got := names(bgpRoutes(cfg, healthy, true)); got != want {
		t.Errorf("all up:\n got %s\nwant %s", got, want)
	}
	// One of the two services on 198.18.0.10 loses quorum: the VIP is withdrawn.
	down["198.18.0.10:443"] = true
	if got, want := names(bgpRoutes(cfg, healthy, true)), "198.18.0.20/32 65011:1, 2001:db8::10/128 65011:1"; got != want {
		t.Errorf("443 down:\n got %s\nwant %s", got, want)
	}
	// A failing tracked script withdraws everything.
	if got := bgpRoutes(cfg, healthy, false); len(got) != 0 {
		t.Errorf("script failing: %v", got)
	}
	cfg.BGP = nil
	if got := bgpRoutes(cfg, healthy, true); len(got) != 0 {
		t.Errorf("no bgp block: %v", got)
	}
}

// TestMaglevTablesIdenticalAcrossNodes: two halb nodes with the same config build the same
// source-hash (Maglev) tables, so a flow that the router's ECMP moves from one node to another
// keeps its real server.
func TestMaglevTablesIdenticalAcrossNodes(t *testing.T) {
	for _, algo := range []string{"sh", "mh", "dh"} {
		t.Run(algo, func(t *testing.T) {
			cfg1 := parseConf(t, fmt.Sprintf(bgpConf, algo))
			cfg2 := parseConf(t, fmt.Sprintf(bgpConf, algo)) // parsed and built anew: another node
			g1, err := buildPools(cfg1, nil)
			if err != nil {
				t.Fatal(err)
			}
			g2, err := buildPools(cfg2, nil)
			if err != nil {
				t.Fatal(err)
			}
			p1, p2 := g1.byName["198.18.0.10:80"].pools[0].pool, g2.byName["198.18.0.10:80"].pools[0].pool
			now := time.Now()
			seen := map[string]int{}
			for i := range 20000 {
				c := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
				b1, b2 := p1.Pick(c, now, nil), p2.Pick(c, now, nil)
				if b1 == nil || b2 == nil || b1.Name() != b2.Name() {
					t.Fatalf("client %s: node 1 picks %v, node 2 picks %v", c, b1, b2)
				}
				seen[b1.Name()]++
			}
			if len(seen) != 3 {
				t.Errorf("picks spread over %d servers, want 3: %v", len(seen), seen)
			}
			// The same holds after the same server fails on both nodes.
			for _, p := range []interface{ SetUp(string, bool) error }{p1, p2} {
				if err := p.SetUp("198.18.2.2:80", false); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 5000 {
				c := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
				if b1, b2 := p1.Pick(c, now, nil), p2.Pick(c, now, nil); b1.Name() != b2.Name() {
					t.Fatalf("after a failure, client %s: %s vs %s", c, b1.Name(), b2.Name())
				}
			}
		})
	}
}

// fakeVIPs records what the runner makes local.
type fakeVIPs struct {
	mu     sync.Mutex
	name   string
	addrs  []netip.Addr
	closed bool
}

func (f *fakeVIPs) Set(a []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs = slices.Clone(a)
	return nil
}
func (f *fakeVIPs) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs, f.closed = nil, true
	return nil
}
func (f *fakeVIPs) Name() string { return f.name }
func (f *fakeVIPs) get() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, a := range f.addrs {
		out = append(out, a.String())
	}
	return out
}

// TestBGPRunner drives the daemon's BGP shell with a real (embedded) speaker whose only neighbor
// refuses connections on loopback, and a fake VIP keeper.
func TestBGPRunner(t *testing.T) {
	const conf = `
vrrp_script chk {
 script "%s"
 interval 1
}
bgp {
 router_id 198.18.1.11
 local_as 65011
 drain_time 0
 %s
 neighbor 127.0.0.1 {
  remote_as 65000
  port 1
 }
 bgp_vip 198.18.0.20
}
virtual_server 198.18.0.10 80 {
 bgp_announce community 65011:%d
 real_server 198.18.2.1 80 { }
}
`
	cfg := parseConf(t, fmt.Sprintf(conf, "/bin/true", "", 1))
	var mu sync.Mutex
	down := map[string]bool{}
	r := newBGPRunner(zaptest.NewLogger(t), func(s string) bool { mu.Lock(); defer mu.Unlock(); return !down[s] })
	fv := &fakeVIPs{}
	r.newLocal = func(iface string) vipKeeper { fv.name = iface; return fv }
	if err := r.start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	defer r.close()
	announced := func() string {
		var s []string
		for _, rt := range r.sp.Announced() {
			x := rt.Prefix.String()
			for _, c := range rt.Communities {
				x += " " + bgp.Community(c)
			}
			s = append(s, x)
		}
		return strings.Join(s, ", ")
	}
	check := func(what, wantRoutes, wantLocal string) {
		t.Helper()
		if got := announced(); got != wantRoutes {
			t.Errorf("%s: announced %q, want %q", what, got, wantRoutes)
		}
		if got := strings.Join(fv.get(), ", "); got != wantLocal {
			t.Errorf("%s: local %q, want %q", what, got, wantLocal)
		}
	}
	check("start", "198.18.0.10/32 65011:1, 198.18.0.20/32", "198.18.0.10, 198.18.0.20")
	if fv.name != "halb0" {
		t.Errorf("interface %q", fv.name)
	}

	mu.Lock()
	down["198.18.0.10:80"] = true
	mu.Unlock()
	r.sync() // what onQuorum does
	check("quorum lost", "198.18.0.20/32", "198.18.0.20")
	mu.Lock()
	down["198.18.0.10:80"] = false
	mu.Unlock()
	r.sync()
	check("quorum back", "198.18.0.10/32 65011:1, 198.18.0.20/32", "198.18.0.10, 198.18.0.20")

	if err := r.setDrained("198.18.0.10:80", true); err != nil {
		t.Fatal(err)
	}
	check("drain service", "198.18.0.20/32", "198.18.0.20")
	if err := r.setDrained("198.18.0.99:80", true); err == nil {
		t.Errorf("drain of an unknown service accepted")
	}
	if err := r.setDrained("198.18.0.10:80", false); err != nil {
		t.Fatal(err)
	}
	check("enable service", "198.18.0.10/32 65011:1, 198.18.0.20/32", "198.18.0.10, 198.18.0.20")

	// Reload: another community is re-announced; a failing tracked script withdraws everything.
	cfg2 := parseConf(t, fmt.Sprintf(conf, "/bin/false", "track_script chk", 2))
	if err := r.apply(context.Background(), cfg2); err != nil {
		t.Fatal(err)
	}
	if !poll.Until(10*time.Second, 10*time.Millisecond, func() bool { return announced() == "" }) {
		t.Fatalf("the failing script did not withdraw: %q", announced())
	}
	check("script failing", "", "")
	cfg3 := parseConf(t, fmt.Sprintf(conf, "/bin/true", "track_script chk", 2))
	if err := r.apply(context.Background(), cfg3); err != nil {
		t.Fatal(err)
	}
	if !poll.Until(10*time.Second, 10*time.Millisecond, func() bool { return announced() != "" }) {
		t.Fatal("the passing script did not re-announce")
	}
	check("reloaded", "198.18.0.10/32 65011:2, 198.18.0.20/32", "198.18.0.10, 198.18.0.20")

	// The session's state is readable.
	st, iface, _, _ := r.status(context.Background())
	if len(st.Sessions) != 1 || st.Sessions[0].Up || iface != "halb0" {
		t.Errorf("status: %+v on %q", st.Sessions, iface)
	}

	// SIGTERM: everything withdrawn; with drain_time 0 the VIPs go at once.
	if d := r.withdrawAll(); d != 0 {
		t.Errorf("drain time %v", d)
	}
	check("stopping", "", "")
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	if !fv.closed {
		t.Errorf("VIP keeper not closed")
	}
}

func TestQuorumUpUnknownIsDown(t *testing.T) {
	d := &Daemon{}
	if d.quorumUp("198.18.0.10:80") {
		t.Errorf("a service with no quorum report is announced")
	}
	if !d.serviceUp("198.18.0.10:80") {
		t.Errorf("VRRP tracking's rule changed: unknown is up there")
	}
	d.svcUp.Store("198.18.0.10:80", true)
	if !d.quorumUp("198.18.0.10:80") {
		t.Errorf("reported quorum not seen")
	}
}
