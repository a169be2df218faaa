package ipvs

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRealServerSteps(t *testing.T) {
	steps := RealServerSteps([]netip.Addr{
		netip.MustParseAddr("198.18.0.100"), netip.MustParseAddr("2001:db8::100"),
		netip.MustParseAddr("198.18.0.100"), // repeated: once
	})
	var cmds []string
	for _, s := range steps {
		if s.Description == "" {
			t.Errorf("step %q without description", s.Command)
		}
		cmds = append(cmds, s.Command)
	}
	want := []string{
		"ip link set dev lo up",
		"ip addr add 198.18.0.100/32 dev lo",
		"ip -6 addr add 2001:db8::100/128 dev lo nodad",
		"sysctl -w net.ipv4.conf.all.arp_ignore=1",
		"sysctl -w net.ipv4.conf.all.arp_announce=2",
		"sysctl -w net.ipv4.conf.lo.arp_ignore=1",
		"sysctl -w net.ipv4.conf.lo.arp_announce=2",
	}
	if !slices.Equal(cmds, want) {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(cmds, "\n"), strings.Join(want, "\n"))
	}
	// IPv6 only: no ARP sysctls.
	for _, s := range RealServerSteps([]netip.Addr{netip.MustParseAddr("2001:db8::1")}) {
		if strings.Contains(s.Command, "arp_") {
			t.Errorf("IPv6-only real server got %q", s.Command)
		}
	}
}

func readSysctl(t *testing.T, key string) string {
	t.Helper()
	v, err := sysctlValue(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sysctlValue(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	return strings.TrimSpace(string(b)), err
}

// ApplyRealServer, run inside a namespace made by the test, leaves lo up with
// the VIPs and the ARP sysctls set there, and is idempotent.
func TestApplyRealServerInNamespace(t *testing.T) {
	ns := newNetns(t)
	hostIgnore := readSysctl(t, "net.ipv4.conf.all.arp_ignore")
	vips := []netip.Addr{netip.MustParseAddr("198.18.0.100"), netip.MustParseAddr("2001:db8::100")}

	type state struct {
		loUp    bool
		addrs   []string
		sysctls map[string]string
	}
	var got state
	err := inNetns(ns, func() error {
		for range 2 {
			if err := ApplyRealServer(vips); err != nil {
				return err
			}
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		got.loUp = lo.Attrs().Flags&net.FlagUp != 0
		as, err := netlink.AddrList(lo, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range as {
			got.addrs = append(got.addrs, a.IPNet.String())
		}
		got.sysctls = map[string]string{}
		for _, k := range []string{"all.arp_ignore", "all.arp_announce", "lo.arp_ignore", "lo.arp_announce"} {
			if got.sysctls[k], err = sysctlValue("net.ipv4.conf." + k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("in namespace: %v", err)
	}
	if !got.loUp {
		t.Error("lo not up")
	}
	slices.Sort(got.addrs)
	want := []string{"127.0.0.1/8", "198.18.0.100/32", "2001:db8::100/128", "::1/128"}
	if !slices.Equal(got.addrs, want) {
		t.Errorf("lo addresses %v, want %v", got.addrs, want)
	}
	wantSys := map[string]string{"all.arp_ignore": "1", "all.arp_announce": "2", "lo.arp_ignore": "1", "lo.arp_announce": "2"}
	for k, v := range wantSys {
		if got.sysctls[k] != v {
			t.Errorf("net.ipv4.conf.%s = %q, want %q", k, got.sysctls[k], v)
		}
	}
	if h := readSysctl(t, "net.ipv4.conf.all.arp_ignore"); h != hostIgnore {
		t.Errorf("host namespace arp_ignore changed from %s to %s", hostIgnore, h)
	}
}
