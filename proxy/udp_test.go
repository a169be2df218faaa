package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"halb/internal/poll"
	"halb/internal/testkit"
	"halb/proxy/balance"
)

// udpEcho answers every datagram with "NAME:" and the datagram, from 127.0.0.1.
func udpEcho(t testing.TB, name string) netip.AddrPort {
	a, _ := testkit.UDPEcho(t, name)
	return a
}

func udpPool(algo balance.Algo, addrs map[string]netip.AddrPort) *balance.Pool {
	var ms []balance.Member
	for name, a := range addrs {
		ms = append(ms, balance.Member{Name: name, Addr: a, Weight: 1})
	}
	return balance.NewPool(algo, ms, balance.Options{})
}

// udpClient is one client socket (one flow) talking to the service.
type udpClient struct {
	t *testing.T
	c *net.UDPConn
}

func newUDPClient(t *testing.T, to net.Addr) *udpClient {
	t.Helper()
	c, err := net.DialUDP("udp", nil, to.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpClient{t: t, c: c}
}

// ask sends msg and returns the reply, or "" when none comes within a second.
func (u *udpClient) ask(msg string) string {
	u.t.Helper()
	if _, err := u.c.Write([]byte(msg)); err != nil {
		u.t.Fatal(err)
	}
	_ = u.c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 65535)
	n, err := u.c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func startUDP(t *testing.T, specs ...UDPService) *UDPServer {
	t.Helper()
	s := NewUDPServer(zaptest.NewLogger(t))
	if err := s.Apply(specs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func udpStat(s *UDPServer, name string) UDPStats {
	for _, st := range s.Stats() {
		if st.Name == name {
			return st
		}
	}
	return UDPStats{}
}

func TestUDPFlows(t *testing.T) {
	pool := udpPool(balance.RR, map[string]netip.AddrPort{"a": udpEcho(t, "a"), "b": udpEcho(t, "b")})
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	s := startUDP(t, UDPService{Name: "dns", Listen: lo, Pool: pool})
	addr := s.Addr("dns")

	// One client keeps its backend; clients are spread by the scheduler.
	seen := map[string]int{}
	for i := range 6 {
		c := newUDPClient(t, addr)
		first := c.ask(fmt.Sprintf("q%d", i))
		if len(first) < 2 {
			t.Fatalf("client %d: no reply", i)
		}
		be := first[:1]
		seen[be]++
		for j := range 3 {
			if r := c.ask(fmt.Sprintf("q%d.%d", i, j)); r != fmt.Sprintf("%s:q%d.%d", be, i, j) {
				t.Fatalf("client %d moved or lost: %q (first %q)", i, r, first)
			}
		}
	}
	if seen["a"] != 3 || seen["b"] != 3 {
		t.Errorf("rr over 6 clients: %v", seen)
	}
	// The counters of a datagram (and of a reply) are added after its write
	// returns, maybe after the client already has the reply.
	var st UDPStats
	poll.Until(5*time.Second, time.Millisecond, func() bool {
		st = udpStat(s, "dns")
		return st.Datagrams == 24 && st.Replies == 24
	})
	if st.Flows != 6 || st.Total != 6 || st.Datagrams != 24 || st.Replies != 24 || st.Dropped != 0 {
		t.Errorf("stats: %+v", st)
	}
	views := pool.Views()
	if views[0].Active+views[1].Active != 6 {
		t.Errorf("flows counted as backend connections: %+v", views)
	}
}

func TestUDPIdleAndHealth(t *testing.T) {
	pool := udpPool(balance.RR, map[string]netip.AddrPort{"a": udpEcho(t, "a"), "b": udpEcho(t, "b")})
	s := startUDP(t, UDPService{Name: "u", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Pool: pool, IdleTimeout: 100 * time.Millisecond})
	c := newUDPClient(t, s.Addr("u"))
	r := c.ask("x")
	if r == "" {
		t.Fatal("no reply")
	}
	if !poll.Until(5*time.Second, 10*time.Millisecond, func() bool { return udpStat(s, "u").Flows == 0 }) {
		t.Fatalf("idle flow kept: %+v", udpStat(s, "u"))
	}
	for _, v := range pool.Views() {
		if v.Active != 0 || v.Name == r[:1] && (v.BytesIn != 1 || v.BytesOut != 3 || v.Total != 1) {
			t.Errorf("backend after the flow ended: %+v", v)
		}
	}

	// A backend that goes down loses its flows; the client's next datagram picks a live one.
	s2 := startUDP(t, UDPService{Name: "h", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Pool: pool})
	c2 := newUDPClient(t, s2.Addr("h"))
	be := c2.ask("1")[:1]
	other := map[string]string{"a": "b", "b": "a"}[be]
	if err := pool.SetUp(be, false); err != nil {
		t.Fatal(err)
	}
	if !poll.Until(5*time.Second, 10*time.Millisecond, func() bool { return udpStat(s2, "h").Flows == 0 }) {
		t.Fatal("flow to a down backend kept")
	}
	if r := c2.ask("2"); r != other+":2" {
		t.Fatalf("after %s went down: %q", be, r)
	}
}

func TestUDPNoBackendAndLimits(t *testing.T) {
	closed := func() netip.AddrPort {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).AddrPort()
	}()
	empty := balance.NewPool(balance.RR, nil, balance.Options{})
	gone := udpPool(balance.RR, map[string]netip.AddrPort{"x": closed})
	one := udpPool(balance.RR, map[string]netip.AddrPort{"a": udpEcho(t, "a")})
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	s := startUDP(t,
		UDPService{Name: "empty", Listen: lo, Pool: empty},
		UDPService{Name: "gone", Listen: lo, Pool: gone},
		UDPService{Name: "one", Listen: lo, Pool: one, MaxFlows: 1})
	if r := newUDPClient(t, s.Addr("empty")).ask("x"); r != "" {
		t.Errorf("empty pool answered %q", r)
	}
	if !poll.Until(5*time.Second, 10*time.Millisecond, func() bool { return udpStat(s, "empty").Dropped == 1 }) {
		t.Errorf("drop not counted: %+v", udpStat(s, "empty"))
	}
	// ICMP port unreachable from the backend ends the flow.
	g := newUDPClient(t, s.Addr("gone"))
	_ = g.ask("x")
	if !poll.Until(5*time.Second, 10*time.Millisecond, func() bool { st := udpStat(s, "gone"); return st.Total == 1 && st.Flows == 0 }) {
		t.Errorf("flow to a closed port kept: %+v", udpStat(s, "gone"))
	}
	if r := newUDPClient(t, s.Addr("one")).ask("1"); r != "a:1" {
		t.Fatalf("first flow: %q", r)
	}
	if r := newUDPClient(t, s.Addr("one")).ask("2"); r != "" {
		t.Errorf("flow beyond MaxFlows answered %q", r)
	}
	if st := udpStat(s, "one"); st.Flows != 1 || st.Dropped != 1 {
		t.Errorf("MaxFlows: %+v", st)
	}
}

func TestUDPApply(t *testing.T) {
	p1 := udpPool(balance.RR, map[string]netip.AddrPort{"a": udpEcho(t, "a")})
	p2 := udpPool(balance.RR, map[string]netip.AddrPort{"b": udpEcho(t, "b")})
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	s := startUDP(t, UDPService{Name: "u", Listen: lo, Pool: p1})
	addr := s.Addr("u")
	c := newUDPClient(t, addr)
	if r := c.ask("1"); r != "a:1" {
		t.Fatal(r)
	}
	// Same name and address, new pool: the socket stays, the flows move to the new pool.
	if err := s.Apply([]UDPService{{Name: "u", Listen: lo, Pool: p2}}); err != nil {
		t.Fatal(err)
	}
	if s.Addr("u").String() != addr.String() {
		t.Fatalf("socket replaced: %s → %s", addr, s.Addr("u"))
	}
	if r := c.ask("2"); r != "b:2" {
		t.Fatalf("after reload: %q", r)
	}
	// A bad spec changes nothing.
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := []UDPService{{Name: "u", Listen: lo, Pool: p2}, {Name: "v", Listen: busy.LocalAddr().(*net.UDPAddr).AddrPort(), Pool: p1}}
	if err := s.Apply(bad); err == nil {
		t.Fatal("bound a busy port")
	}
	if s.Addr("v") != nil || c.ask("3") != "b:3" {
		t.Fatal("a refused Apply changed the served set")
	}
	for _, sp := range [][]UDPService{{{Name: "", Listen: lo, Pool: p1}}, {{Name: "x", Pool: p1}}, {{Name: "x", Listen: lo}},
		{{Name: "x", Listen: lo, Pool: p1}, {Name: "x", Listen: lo, Pool: p1}}} {
		if err := s.Apply(sp); err == nil {
			t.Errorf("accepted %+v", sp)
		}
	}
	// Removing the service closes it.
	if err := s.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if s.Addr("u") != nil || c.ask("4") != "" {
		t.Fatal("removed service still serves")
	}
}

// TestUDPOnePacket: with OnePacket (ops) a flow ends with its first reply, so a client's next
// query is scheduled anew (rr alternates) and no flow waits for the idle timeout.
func TestUDPOnePacket(t *testing.T) {
	pool := udpPool(balance.RR, map[string]netip.AddrPort{"a": udpEcho(t, "a"), "b": udpEcho(t, "b")})
	s := startUDP(t, UDPService{Name: "dns", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Pool: pool, OnePacket: true})
	c := newUDPClient(t, s.Addr("dns"))
	var got []string
	for i := range 4 {
		r := c.ask(fmt.Sprint(i))
		if len(r) < 2 {
			t.Fatalf("query %d: no reply", i)
		}
		got = append(got, r[:1])
		if !poll.Until(5*time.Second, time.Millisecond, func() bool { return udpStat(s, "dns").Flows == 0 }) {
			t.Fatalf("flow kept after its reply: %+v", udpStat(s, "dns"))
		}
	}
	if got[0] == got[1] || got[1] == got[2] || got[2] == got[3] {
		t.Errorf("one-packet flows not rescheduled: %v", got)
	}
	if st := udpStat(s, "dns"); st.Total != 4 || st.Replies != 4 {
		t.Errorf("stats: %+v", st)
	}
}
