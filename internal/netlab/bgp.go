package netlab

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
)

// The BGP lab: three balancers (lb1..lb3, 198.18.0.1-3), two web servers (web1, web2: .11,
// .12) and a router (.254) on the bridge 198.18.0.0/24; a client (198.19.0.100/24) behind the
// router on its own link (router side 198.19.0.1). The router forwards, hashes multipath routes
// on L4 (fib_multipath_hash_policy=1) and every host but the client routes via it. The VIPs the
// balancers announce lie outside both links, so the router reaches them only by its BGP routes.
var (
	BGPRouter   = netip.MustParseAddr("198.18.0.254")
	BGPClient   = netip.MustParseAddr("198.19.0.100")
	BGPVIP      = netip.MustParseAddr("198.18.10.10")
	BGPVIPv6    = netip.MustParseAddr("2001:db8:10::10")
	BGPRouterV6 = netip.MustParseAddr("2001:db8::fe")
)

// BGPNodes are the balancers of the BGP lab.
var BGPNodes = []string{"lb1", "lb2", "lb3"}

// NewBGPT builds the BGP lab for a test, like NewT.
func NewBGPT(t TB) *Lab {
	t.Helper()
	return newT(t, NewBGP)
}

// NewBGP removes leftovers of dead earlier runs and builds a fresh BGP lab.
func NewBGP() (*Lab, error) { return newLab((*Lab).buildBGP) }

func (l *Lab) sysctl(host string, kv ...string) error {
	for _, k := range kv {
		if out, err := exec.Command("ip", "netns", "exec", l.NS(host), "sysctl", "-qw", k).CombinedOutput(); err != nil {
			return fmt.Errorf("netlab: sysctl %s in %s: %v: %s", k, l.NS(host), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

func (l *Lab) buildBGP() error {
	if err := ip("netns", "add", l.Switch); err != nil {
		return err
	}
	for _, s := range [][]string{
		{"-n", l.Switch, "link", "set", "lo", "up"},
		{"-n", l.Switch, "link", "add", "br0", "type", "bridge"},
		{"-n", l.Switch, "link", "set", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"-n", l.Switch, "link", "set", "br0", "up"},
	} {
		if err := ip(s...); err != nil {
			return err
		}
	}
	for _, h := range []struct {
		name string
		n    byte
	}{{"lb1", 1}, {"lb2", 2}, {"lb3", 3}, {"web1", 11}, {"web2", 12}, {"router", 254}} {
		if err := l.addHost(h.name, h.n); err != nil {
			return err
		}
		// A node's link may go down in a test (a dead machine): its IPv6 address stays.
		if err := l.sysctl(h.name, "net.ipv6.conf.eth0.keep_addr_on_down=1"); err != nil {
			return err
		}
	}
	// The router forwards, with L4 hashing of multipath routes (inside its namespace only).
	if err := l.sysctl("router", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1"); err != nil {
		return err
	}
	// The client, on its own link behind the router.
	c := &Host{Name: "client", NS: l.ID + "client", Dev: "eth0",
		IPv4: netip.MustParsePrefix("198.19.0.100/24"), IPv6: netip.MustParsePrefix("2001:db8:19::64/64"), MAC: "02:48:4c:00:01:64"}
	if err := ip("netns", "add", c.NS); err != nil {
		return err
	}
	l.Hosts["client"] = c
	if err := l.sysctl("client", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"); err != nil {
		return err
	}
	r := l.NS("router")
	for _, s := range [][]string{
		{"-n", c.NS, "link", "set", "lo", "up"},
		{"-n", r, "link", "add", "eth1", "type", "veth", "peer", "name", c.Dev, "netns", c.NS},
		{"-n", r, "addr", "add", "198.19.0.1/24", "dev", "eth1"},
		{"-n", r, "addr", "add", "2001:db8:19::1/64", "dev", "eth1", "nodad"},
		{"-n", r, "link", "set", "eth1", "up"},
		{"-n", c.NS, "link", "set", c.Dev, "address", c.MAC},
		{"-n", c.NS, "addr", "add", c.IPv4.String(), "dev", c.Dev},
		{"-n", c.NS, "addr", "add", c.IPv6.String(), "dev", c.Dev, "nodad"},
		{"-n", c.NS, "link", "set", c.Dev, "up"},
		{"-n", c.NS, "route", "add", "default", "via", "198.19.0.1"},
		{"-n", c.NS, "-6", "route", "add", "default", "via", "2001:db8:19::1"},
	} {
		if err := ip(s...); err != nil {
			return err
		}
	}
	// Everyone on the bridge reaches the client through the router.
	for _, h := range []string{"lb1", "lb2", "lb3", "web1", "web2"} {
		if err := l.BGPClientRoutes(h); err != nil {
			return err
		}
	}
	return nil
}

// BGPClientRoutes routes host's traffic to the client's link through the router. A link going
// down removes these routes with it: call it again after SetLink(host, true).
func (l *Lab) BGPClientRoutes(host string) error {
	if err := ip("-n", l.NS(host), "route", "replace", "198.19.0.0/24", "via", BGPRouter.String()); err != nil {
		return err
	}
	return ip("-n", l.NS(host), "-6", "route", "replace", "2001:db8:19::/64", "via", BGPRouterV6.String())
}
