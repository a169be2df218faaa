package daemon

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"halb/bgp"
	"halb/config"
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
