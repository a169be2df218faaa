package ipvs

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Step is one change a direct-routing real server needs, with the shell
// command that makes it by hand.
type Step struct {
	Description string
	Command     string

	// What ApplyRealServer does for it: one of these is set.
	vip    netip.Addr // add the VIP to lo
	linkUp bool       // set lo up
	sysctl string     // key under /proc/sys, dotted
	value  string
}

// RealServerSteps lists what a real server behind an LVS-DR director needs so
// that it accepts packets for the VIPs without answering ARP for them: lo up,
// each VIP on lo as a host address, and the ARP sysctls (IPv4 only; IPv6 does
// not answer neighbour solicitations for addresses on lo): arp_ignore=1
// answers ARP only for addresses of the receiving interface, arp_announce=2
// never uses a VIP as ARP source, so only the director answers for a VIP.
func RealServerSteps(vips []netip.Addr) []Step {
	steps := []Step{{
		Description: "bring the loopback interface up",
		Command:     "ip link set dev lo up",
		linkUp:      true,
	}}
	any4 := false
	seen := make(map[netip.Addr]bool, len(vips))
	for _, v := range vips {
		v = v.Unmap()
		if !v.IsValid() || seen[v] {
			continue
		}
		seen[v] = true
		if v.Is4() {
			any4 = true
			steps = append(steps, Step{
				Description: fmt.Sprintf("accept packets for VIP %s: add it to lo as a host address", v),
				Command:     fmt.Sprintf("ip addr add %s/32 dev lo", v),
				vip:         v,
			})
		} else {
			steps = append(steps, Step{
				Description: fmt.Sprintf("accept packets for VIP %s: add it to lo as a host address", v),
				Command:     fmt.Sprintf("ip -6 addr add %s/128 dev lo nodad", v),
				vip:         v,
			})
		}
	}
	if any4 {
		for _, dev := range []string{"all", "lo"} {
			steps = append(steps,
				Step{
					Description: fmt.Sprintf("answer ARP only for addresses of the receiving interface (%s)", dev),
					Command:     fmt.Sprintf("sysctl -w net.ipv4.conf.%s.arp_ignore=1", dev),
					sysctl:      fmt.Sprintf("net.ipv4.conf.%s.arp_ignore", dev), value: "1",
				},
				Step{
					Description: fmt.Sprintf("never announce a VIP as ARP source address (%s)", dev),
					Command:     fmt.Sprintf("sysctl -w net.ipv4.conf.%s.arp_announce=2", dev),
					sysctl:      fmt.Sprintf("net.ipv4.conf.%s.arp_announce", dev), value: "2",
				})
		}
	}
	return steps
}

// ApplyRealServer makes RealServerSteps' changes in the network namespace of
// the calling thread, with netlink and /proc/sys. It is idempotent. Callers
// that switch namespaces must lock the OS thread.
func ApplyRealServer(vips []netip.Addr) error {
	return applyRealServer(RealServerSteps(vips), "/proc/sys")
}

func applyRealServer(steps []Step, procSys string) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("ipvs: real server: find lo: %w", err)
	}
	var errs []error
	for _, s := range steps {
		var err error
		switch {
		case s.linkUp:
			err = netlink.LinkSetUp(lo)
		case s.vip.IsValid():
			err = addHostAddr(lo, s.vip)
		case s.sysctl != "":
			p := filepath.Join(procSys, strings.ReplaceAll(s.sysctl, ".", "/"))
			err = os.WriteFile(p, []byte(s.value+"\n"), 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("ipvs: real server: %s (%s): %w", s.Description, s.Command, err))
		}
	}
	return errors.Join(errs...)
}

func addHostAddr(lo netlink.Link, vip netip.Addr) error {
	bits := 32
	if vip.Is6() {
		bits = 128
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(bits, bits)}}
	if vip.Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	// The address may already be there with another prefix (an operator's
	// lo:0 with /24, say): leave such an address alone.
	have, err := netlink.AddrList(lo, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(have, func(a netlink.Addr) bool { return a.IP.Equal(addr.IP) }) {
		return nil
	}
	return netlink.AddrAdd(lo, addr)
}
