package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VMAC is the VRRP virtual router MAC address of vrid: 00-00-5E-00-01-VRID for IPv4 (RFC 5798
// §7.3), 00-00-5E-00-02-VRID for IPv6.
func VMAC(vrid uint8, family int) net.HardwareAddr {
	if family == 6 {
		return net.HardwareAddr{0, 0, 0x5e, 0, 2, vrid}
	}
	return net.HardwareAddr{0, 0, 0x5e, 0, 1, vrid}
}

// vmacName is the instance's VMAC interface: use_vmac's NAME, else keepalived's vrrp.VRID
// (vrrp6.VRID for IPv6).
func vmacName(cfg InstanceConfig) string {
	if cfg.VMACName != "" {
		return cfg.VMACName
	}
	if cfg.family() == 6 {
		return fmt.Sprintf("vrrp6.%d", cfg.VRID)
	}
	return fmt.Sprintf("vrrp.%d", cfg.VRID)
}

// vmacXmitBase reports whether adverts go through the base interface: vmac_xmit_base, and
// always with unicast peers (keepalived forces it).
func vmacXmitBase(cfg InstanceConfig) bool { return cfg.VMACXmitBase || len(cfg.UnicastPeers) > 0 }

// sockIf is the interface the instance's socket uses.
func sockIf(cfg InstanceConfig) string {
	if cfg.UseVMAC && !vmacXmitBase(cfg) {
		return vmacName(cfg)
	}
	return cfg.Interface
}

// vmacOps creates and removes VMAC interfaces; tests replace it.
type vmacOps interface {
	create(cfg InstanceConfig) error
	remove(cfg InstanceConfig) error
}

// netVMAC makes VMAC interfaces as keepalived does: a private macvlan on the base interface
// with the virtual MAC, up while the instance runs (the VIPs go on it when master). The base
// interface gets arp_ignore 1 and arp_filter 1, so that only the VMAC interface answers ARP
// for the VIPs, and arp_announce 2, so that its own ARP requests (for the clients it answers
// from a VIP) name its own address, not the VIP with the base MAC; the old values come back
// when its last VMAC goes. An IPv4 VMAC interface has
// IPv6 off (no link-local address, no MLD from the shared MAC on the backup); an IPv6 one gets
// no generated link-local address but a copy of the base interface's, its advert source.
type netVMAC struct {
	mu   sync.Mutex
	refs map[string]int               // base → VMAC interfaces on it
	old  map[string]map[string]string // base → sysctl → value before
}

func newNetVMAC() *netVMAC {
	return &netVMAC{refs: map[string]int{}, old: map[string]map[string]string{}}
}

func confPath(family, ifname, key string) string {
	return filepath.Join("/proc/sys/net", family, "conf", ifname, key)
}

func setSysctl(path, v string) (string, error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("vrrp: vmac: %w", err)
	}
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		return "", fmt.Errorf("vrrp: vmac: %w", err)
	}
	return strings.TrimSpace(string(old)), nil
}

func (n *netVMAC) create(cfg InstanceConfig) (err error) {
	name := vmacName(cfg)
	base, err := netlink.LinkByName(cfg.Interface)
	if err != nil {
		return fmt.Errorf("vrrp: vmac %s: base interface: %w", name, err)
	}
	if old, err := netlink.LinkByName(name); err == nil {
		// Left by a crashed run (or someone else's): start from a clean link.
		if _, ok := old.(*netlink.Macvlan); !ok {
			return fmt.Errorf("vrrp: vmac %s: an interface of that name exists and is not a macvlan", name)
		}
		if err := netlink.LinkDel(old); err != nil {
			return fmt.Errorf("vrrp: vmac %s: remove stale link: %w", name, err)
		}
	}
	mv := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: base.Attrs().Index, HardwareAddr: VMAC(cfg.VRID, cfg.family())},
		Mode:      netlink.MACVLAN_MODE_PRIVATE,
	}
	if err := netlink.LinkAdd(mv); err != nil {
		return fmt.Errorf("vrrp: vmac %s on %s: %w", name, cfg.Interface, err)
	}
	defer func() {
		if err != nil {
			_ = netlink.LinkDel(mv)
		}
	}()
	if cfg.family() == 4 {
		if _, err := setSysctl(confPath("ipv6", name, "disable_ipv6"), "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	} else if err := netlink.LinkSetIP6AddrGenMode(mv, 1 /* IN6_ADDR_GEN_MODE_NONE */); err != nil {
		return fmt.Errorf("vrrp: vmac %s: addr_gen_mode: %w", name, err)
	}
	if err := netlink.LinkSetUp(mv); err != nil {
		return fmt.Errorf("vrrp: vmac %s: up: %w", name, err)
	}
	if cfg.family() == 6 {
		if err := copyLinkLocal(base, mv); err != nil {
			return fmt.Errorf("vrrp: vmac %s: %w", name, err)
		}
	}
	return n.baseARP(cfg.Interface)
}

// baseARP sets arp_ignore / arp_filter / arp_announce on the base interface for its first VMAC.
func (n *netVMAC) baseARP(base string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.refs[base]++
	if n.refs[base] > 1 {
		return nil
	}
	old := map[string]string{}
	for k, want := range map[string]string{"arp_ignore": "1", "arp_filter": "1", "arp_announce": "2"} {
		v, err := setSysctl(confPath("ipv4", base, k), want)
		if err != nil {
			return err
		}
		old[k] = v
	}
	n.old[base] = old
	return nil
}

func copyLinkLocal(base, to netlink.Link) error {
	addrs, err := netlink.AddrList(base, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", base.Attrs().Name, err)
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			ll := &netlink.Addr{IPNet: &net.IPNet{IP: a.IP, Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
			if err := netlink.AddrAdd(to, ll); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("link-local address: %w", err)
			}
			return nil
		}
	}
	return fmt.Errorf("%s has no IPv6 link-local address", base.Attrs().Name)
}

func (n *netVMAC) remove(cfg InstanceConfig) error {
	name := vmacName(cfg)
	var errs []error
	if l, err := netlink.LinkByName(name); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: vmac %s: remove: %w", name, err))
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.refs[cfg.Interface] > 0 {
		n.refs[cfg.Interface]--
		if n.refs[cfg.Interface] == 0 {
			for k, v := range n.old[cfg.Interface] {
				if _, err := setSysctl(confPath("ipv4", cfg.Interface, k), v); err != nil {
					errs = append(errs, err)
				}
			}
			delete(n.old, cfg.Interface)
		}
	}
	return errors.Join(errs...)
}

// vmacSource is the advert source of a VMAC instance whose socket is on the VMAC interface:
// the configured one, else the base interface's (the VMAC interface has no IPv4 address and
// a copy of the base's link-local one).
func vmacSource(cfg InstanceConfig, exclude map[netip.Addr]bool) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: open %s: %w", cfg.Interface, err)
	}
	return primaryAddr(ifi, cfg.family(), exclude)
}
