// Package netlab builds throwaway network-namespace labs for tests and
// demos: a "switch" namespace holding a bridge, and hosts (lb1, lb2, web1,
// web2, client) each with one veth into that bridge. Addresses come from
// 198.18.0.0/24 and 2001:db8::/64 only; nothing touches the host's own
// interfaces: every veth pair is created inside the switch namespace and its
// peer end is created directly in the host namespace.
//
// It drives iproute2's `ip` command (simple and robust; the same commands an
// operator would type).
package netlab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netns"
)

// Prefix starts the name of every lab namespace. A lab's namespaces are
// named Prefix + "<creator pid>-<random>-<host>".
const Prefix = "halblab-"

// Host is one lab host.
type Host struct {
	Name string       // lb1, web1, ...
	NS   string       // namespace name
	Dev  string       // its interface into the switch ("eth0")
	IPv4 netip.Prefix // 198.18.0.x/24
	IPv6 netip.Prefix // 2001:db8::x/64
	MAC  string       // fixed, for readable captures
}

// VIPs of the lab (not assigned by netlab; the VRRP speakers add them).
// Constants in spirit: never assigned.
var (
	VIP1   = netip.MustParseAddr("198.18.0.10")
	VIP2   = netip.MustParseAddr("198.18.0.20")
	VIP1v6 = netip.MustParseAddr("2001:db8::10")
)

// Lab is a set of namespaces.
type Lab struct {
	ID     string // the per-run prefix of its namespaces
	Switch string // namespace of the bridge
	Hosts  map[string]*Host
	closed bool
}

// TB is the part of testing.TB that New uses.
type TB interface {
	Helper()
	Skip(args ...any)
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Available reports why labs cannot be built here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab: needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("netlab: iproute2 `ip` command not found")
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Errorf("netlab: `ip netns` unavailable: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// NewT builds a lab for a test: it skips the test when labs are not
// available, fails it on error, and removes the lab in t.Cleanup.
func NewT(t TB) *Lab {
	t.Helper()
	return newT(t, New)
}

// newT is NewT for any topology's constructor.
func newT(t TB, build func() (*Lab, error)) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err.Error())
	}
	l, err := build()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// New removes leftovers of dead earlier runs and builds a fresh lab.
func New() (*Lab, error) { return newLab((*Lab).build) }

// newLab removes leftovers of dead earlier runs and builds a fresh lab of
// the topology that build lays out.
func newLab(build func(*Lab) error) (*Lab, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	Cleanup(Prefix)
	var rb [3]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, fmt.Errorf("netlab: random id: %w", err)
	}
	id := fmt.Sprintf("%s%d-%s-", Prefix, os.Getpid(), hex.EncodeToString(rb[:]))
	l := &Lab{ID: id, Switch: id + "sw", Hosts: map[string]*Host{}}
	if err := build(l); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (l *Lab) build() error {
	if err := ip("netns", "add", l.Switch); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", l.Switch, "link", "set", "lo", "up"},
		{"-n", l.Switch, "link", "add", "br0", "type", "bridge"},
		// No STP, no forwarding delay: ports forward at once.
		{"-n", l.Switch, "link", "set", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"-n", l.Switch, "link", "set", "br0", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	hosts := []struct {
		name string
		n    byte
	}{{"lb1", 1}, {"lb2", 2}, {"web1", 11}, {"web2", 12}, {"client", 100}}
	for _, h := range hosts {
		if err := l.addHost(h.name, h.n); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) addHost(name string, n byte) error {
	h := &Host{
		Name: name, NS: l.ID + name, Dev: "eth0",
		IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, n}), 24),
		IPv6: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: n}), 64),
		MAC:  fmt.Sprintf("02:48:4c:00:00:%02x", n),
	}
	if err := ip("netns", "add", h.NS); err != nil {
		return err
	}
	l.Hosts[name] = h
	// No duplicate address detection in the lab: link-local addresses are
	// usable at once (VRRPv3 over IPv6 sends from the link-local address).
	for _, k := range []string{"net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"} {
		if out, err := exec.Command("ip", "netns", "exec", h.NS, "sysctl", "-qw", k).CombinedOutput(); err != nil {
			return fmt.Errorf("netlab: sysctl %s in %s: %v: %s", k, h.NS, err, bytes.TrimSpace(out))
		}
	}
	port := "p-" + name
	steps := [][]string{
		{"-n", h.NS, "link", "set", "lo", "up"},
		// Created inside the switch namespace, peer created in the host's.
		{"-n", l.Switch, "link", "add", port, "type", "veth", "peer", "name", h.Dev, "netns", h.NS},
		{"-n", l.Switch, "link", "set", port, "master", "br0"},
		{"-n", l.Switch, "link", "set", port, "up"},
		{"-n", h.NS, "link", "set", h.Dev, "address", h.MAC},
		{"-n", h.NS, "addr", "add", h.IPv4.String(), "dev", h.Dev},
		{"-n", h.NS, "addr", "add", h.IPv6.String(), "dev", h.Dev, "nodad"},
		{"-n", h.NS, "link", "set", h.Dev, "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// Host returns a host by name (nil if none).
func (l *Lab) Host(name string) *Host { return l.Hosts[name] }

// NS returns the namespace of a host.
func (l *Lab) NS(host string) string {
	if h := l.Hosts[host]; h != nil {
		return h.NS
	}
	return l.ID + host
}

// Exec returns a command that runs argv inside host's namespace via
// `ip netns exec`.
func (l *Lab) Exec(host string, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.NS(host)}, argv...)...)
}

// Do runs fn on a locked OS thread that has entered host's namespace.
// Sockets fn creates belong to that namespace and stay usable after Do
// returns (their namespace is fixed at creation).
func (l *Lab) Do(host string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(l.NS(host))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: netns %s: %w", l.NS(host), err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: enter %s: %w", l.NS(host), err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime discards it when this
		// goroutine exits instead of reusing a thread in the wrong netns.
		return errors.Join(ferr, fmt.Errorf("netlab: restore netns: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// IP runs `ip -n NS args...` for a host and returns its output.
func (l *Lab) IP(host string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"-n", l.NS(host)}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netlab: ip -n %s %s: %v: %s", l.NS(host), strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// HasAddr reports whether host has addr on any interface.
func (l *Lab) HasAddr(host string, addr netip.Addr) (bool, error) {
	out, err := l.IP(host, "-o", "addr", "show")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil && p.Addr() == addr {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// SetLink sets host's lab interface up or down (from inside the host).
func (l *Lab) SetLink(host string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	_, err := l.IP(host, "link", "set", "eth0", state)
	return err
}

// Close deletes every namespace of the lab. Processes still running inside
// keep their namespace alive until they exit; the name is gone at once.
func (l *Lab) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for _, ns := range l.namespaces() {
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (l *Lab) namespaces() []string {
	names, _ := listNS()
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, l.ID) {
			out = append(out, n)
		}
	}
	return out
}

func listNS() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("netlab: ip netns list: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// Cleanup removes namespaces whose names start with prefix and that belong
// to a run whose creating process is gone (so parallel test binaries do not
// delete each other's labs). It returns the names removed.
func Cleanup(prefix string) []string {
	names, err := listNS()
	if err != nil {
		return nil
	}
	var removed []string
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) || !strings.HasPrefix(n, Prefix) {
			continue
		}
		rest := strings.TrimPrefix(n, Prefix)
		pidStr, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidStr); err == nil && pid != os.Getpid() && alive(pid) {
			continue
		}
		if pid, err := strconv.Atoi(pidStr); err == nil && pid == os.Getpid() && prefix == Prefix {
			continue // our own live labs
		}
		if ip("netns", "del", n) == nil {
			removed = append(removed, n)
		}
	}
	return removed
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
