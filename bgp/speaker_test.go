package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"halb/internal/poll"
)

// router is a plain GoBGP server playing the upstream router on 127.0.0.1, with halb's speaker
// as its passive neighbor 127.0.0.2.
type router struct {
	srv  *server.BgpServer
	port int
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startRouter(t *testing.T, expectAS uint32) *router {
	t.Helper()
	off := new(atomic.Bool) // GoBGP may log after Stop returns: not into the finished test
	r := &router{srv: server.NewBgpServer(server.LoggerOption(newLogger(zaptest.NewLogger(t).Named("router"), time.Now).slogOff(off))), port: freePort(t)}
	go r.srv.Serve()
	ctx := context.Background()
	if err := r.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: 65000, RouterId: "198.18.1.1", ListenPort: int32(r.port), ListenAddresses: []string{"127.0.0.1", "::1"},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.srv.Stop(); off.Store(true) })
	for _, p := range []struct {
		addr string
		fam  *api.Family
	}{{"127.0.0.2", familyV4}, {"::1", familyV6}} {
		if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: p.addr, PeerAsn: expectAS},
			Transport: &api.Transport{PassiveMode: true},
			Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 3, KeepaliveInterval: 1}},
			AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: p.fam, Enabled: true}}},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// routes lists the prefixes the router holds from halb, with their attributes as text: one
// "name:value" item per attribute, "; " between them (for example "med:50", "as_path:65011
// 65011", "next_hop:127.0.0.2", "mp_reach:ipv6-unicast next_hop:::1").
func (r *router) routes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, fam := range []gbgp.Family{gbgp.RF_IPv4_UC, gbgp.RF_IPv6_UC} {
		err := r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam}, func(prefix gbgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				var attrs []string
				for _, a := range p.Attrs {
					attrs = append(attrs, attrText(a))
				}
				out[prefix.String()] = strings.Join(attrs, "; ")
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func attrText(a gbgp.PathAttributeInterface) string {
	switch a := a.(type) {
	case *gbgp.PathAttributeOrigin:
		return fmt.Sprintf("origin:%d", a.Value)
	case *gbgp.PathAttributeNextHop:
		return "next_hop:" + a.Value.String()
	case *gbgp.PathAttributeMpReachNLRI:
		return fmt.Sprintf("mp_reach:%s next_hop:%s", gbgp.NewFamily(a.AFI, a.SAFI), a.Nexthop)
	case *gbgp.PathAttributeMultiExitDisc:
		return fmt.Sprintf("med:%d", a.Value)
	case *gbgp.PathAttributeCommunities:
		return fmt.Sprintf("communities:%v", a.Value)
	case *gbgp.PathAttributeAsPath:
		var nums []string
		for _, seg := range a.Value {
			for _, n := range seg.GetAS() {
				nums = append(nums, fmt.Sprint(n))
			}
		}
		return "as_path:" + strings.Join(nums, " ")
	}
	return a.String()
}

// waitFor polls cond until it holds or the deadline passes: the sessions run on real sockets.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	if !poll.Until(d, 20*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func newTestSpeaker(t *testing.T, r *router, localAS uint32, v6 bool) *Speaker {
	t.Helper()
	s := NewSpeaker(zaptest.NewLogger(t))
	cfg := Config{RouterID: netip.MustParseAddr("198.18.1.11"), LocalAS: localAS, Neighbors: []Neighbor{{
		Addr: netip.MustParseAddr("127.0.0.1"), RemoteAS: 65000, Port: uint16(r.port), HoldTime: 3 * time.Second,
		LocalAddr: netip.MustParseAddr("127.0.0.2"),
	}}}
	if v6 {
		cfg.Neighbors = append(cfg.Neighbors, Neighbor{Addr: netip.MustParseAddr("::1"), RemoteAS: 65000, Port: uint16(r.port),
			HoldTime: 3 * time.Second, LocalAddr: netip.MustParseAddr("::1")})
	}
	if err := s.Start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func TestSpeakerAnnounceWithdraw(t *testing.T) {
	r := startRouter(t, 65011)
	s := newTestSpeaker(t, r, 65011, true)
	ctx := context.Background()
	v4 := Route{Prefix: netip.MustParsePrefix("198.18.0.10/32"), Communities: []uint32{65011<<16 | 100}, MED: 50, HasMED: true, Prepend: 2}
	v6 := Route{Prefix: netip.MustParsePrefix("2001:db8::10/128")}
	if err := s.SetRoutes(ctx, []Route{v4, v6}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sessions up", 10*time.Second, func() bool {
		st := s.Status(ctx)
		return len(st.Sessions) == 2 && st.Sessions[0].Up && st.Sessions[1].Up
	})
	waitFor(t, "both routes at the router", 5*time.Second, func() bool { return len(r.routes(t)) == 2 })
	got := r.routes(t)
	// The router sees the AS path after eBGP export: halb's AS once, then the two prepends.
	for _, want := range []string{fmt.Sprintf("communities:[%d]", 65011<<16|100), "med:50", "as_path:65011 65011 65011"} {
		if !strings.Contains(got["198.18.0.10/32"], want) {
			t.Errorf("198.18.0.10/32 attributes %q lack %q", got["198.18.0.10/32"], want)
		}
	}
	if a := got["2001:db8::10/128"]; !strings.Contains(a, "mp_reach:ipv6-unicast next_hop:::1") {
		t.Errorf("2001:db8::10/128 not carried by MP_REACH with an IPv6 next hop: %q", a)
	}
	if a := got["198.18.0.10/32"]; !strings.Contains(a, "next_hop:127.0.0.2") {
		t.Errorf("198.18.0.10/32 has not the session's address as next hop: %q", a)
	}
	if err := s.SetRoutes(ctx, []Route{v6}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "v4 withdrawn", 5*time.Second, func() bool {
		_, ok := r.routes(t)["198.18.0.10/32"]
		return !ok
	})
	if a := s.Announced(); len(a) != 1 || a[0].Prefix != v6.Prefix {
		t.Errorf("Announced() = %v", a)
	}
	// Stop closes the session: the router drops the rest at once.
	s.Stop()
	waitFor(t, "routes dropped after stop", 5*time.Second, func() bool { return len(r.routes(t)) == 0 })
}

func TestSpeakerWrongASIsReported(t *testing.T) {
	r := startRouter(t, 65099) // the router expects another AS: it refuses halb's OPEN
	s := newTestSpeaker(t, r, 65011, false)
	ctx := context.Background()
	waitFor(t, "the refusal as last error", 10*time.Second, func() bool {
		st := s.Status(ctx)
		return len(st.Sessions) == 1 && st.Sessions[0].LastError != ""
	})
	st := s.Status(ctx)
	if st.Sessions[0].Up {
		t.Fatalf("session up with a wrong AS: %+v", st.Sessions[0])
	}
	if !strings.Contains(st.Sessions[0].LastError, "session reset") {
		t.Errorf("last error %q does not say the session was reset", st.Sessions[0].LastError)
	}
	// A session that never came up still says since when it is in its state.
	if since := st.Sessions[0].Since; since.IsZero() || time.Since(since) > 10*time.Second {
		t.Errorf("since = %v for a session in %s", since, st.Sessions[0].State)
	}
	// The speaker keeps working: routes are accepted locally while the neighbor is retried.
	if err := s.SetRoutes(ctx, []Route{{Prefix: netip.MustParsePrefix("198.18.0.10/32")}}); err != nil {
		t.Fatal(err)
	}
	// Fixing the config (here: the router's) brings the session up on a later retry.
	if err := r.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: "127.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: "127.0.0.2", PeerAsn: 65011}, Transport: &api.Transport{PassiveMode: true},
	}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session up after the fix", 20*time.Second, func() bool { return s.Status(ctx).Sessions[0].Up })
}

func TestSpeakerApplyNeighbors(t *testing.T) {
	r := startRouter(t, 65011)
	s := newTestSpeaker(t, r, 65011, false)
	ctx := context.Background()
	cfg := Config{RouterID: netip.MustParseAddr("198.18.1.11"), LocalAS: 65011, Neighbors: []Neighbor{
		{Addr: netip.MustParseAddr("198.18.1.99"), RemoteAS: 65000, Port: 1}, // never answers
	}}
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	st := s.Status(ctx)
	if len(st.Sessions) != 1 || st.Sessions[0].Neighbor != cfg.Neighbors[0].Addr || st.Sessions[0].Up {
		t.Fatalf("sessions after apply: %+v", st.Sessions)
	}
	cfg.LocalAS = 65012 // restarts the speaker
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(ctx); st.LocalAS != 65012 || len(st.Sessions) != 1 {
		t.Fatalf("status after restart: %+v", st)
	}
}

// TestSpeakerRefusedOpenIsReported: the speaker refuses the router's OPEN (the router's AS is not
// the configured remote AS). GoBGP v4 does that on the connection it opened, outside the
// session's state machine: the last error must still say why.
func TestSpeakerRefusedOpenIsReported(t *testing.T) {
	r := startRouter(t, 65011)
	ctx := context.Background()
	s := startSpeakerWith(t, zaptest.NewLogger(t), Neighbor{
		Addr: netip.MustParseAddr("127.0.0.1"), RemoteAS: 65099, Port: uint16(r.port), HoldTime: 3 * time.Second,
		LocalAddr: netip.MustParseAddr("127.0.0.2"),
	})
	const want = "session reset in BGP_FSM_OPENSENT: notification-sent code 2(open) subcode 2(bad peer as)"
	waitFor(t, "the refused OPEN as last error", 15*time.Second, func() bool {
		st := s.Status(ctx)
		return len(st.Sessions) == 1 && st.Sessions[0].LastError == want
	})
}

// startSpeakerWith starts a speaker (router id 198.18.1.11, AS 65011) with one neighbor, stopped
// at the end of the test.
func startSpeakerWith(t *testing.T, log *zap.Logger, n Neighbor) *Speaker {
	t.Helper()
	s := NewSpeaker(log)
	if err := s.Start(context.Background(), Config{RouterID: netip.MustParseAddr("198.18.1.11"), LocalAS: 65011, Neighbors: []Neighbor{n}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
