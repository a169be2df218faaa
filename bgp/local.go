package bgp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
)

// DefaultInterface is the dummy interface halb creates to hold announced VIPs.
const DefaultInterface = "halb0"

// LoopbackLabel marks the IPv4 VIPs halb puts on lo, so that a restart after a crash finds them.
const LoopbackLabel = "lo:halb"

// LocalVIPs keeps a set of VIPs local. On a dummy interface that halb owns (the default) the
// interface is created on the first Set with addresses and Close deletes it; addresses on it that
// halb did not ask for are removed, as the interface is halb's alone. On "lo" (asked for, or the
// fallback where the kernel has no dummy driver) halb removes only the addresses it added: IPv4
// ones carry the label lo:halb, IPv6 ones are remembered.
type LocalVIPs struct {
	log  *zap.Logger
	name string

	mu    sync.Mutex
	lo    bool
	owned map[netip.Addr]bool // on lo: the addresses halb added
}

// NewLocalVIPs returns a keeper for the interface name ("" = DefaultInterface).
func NewLocalVIPs(log *zap.Logger, name string) *LocalVIPs {
	if name == "" {
		name = DefaultInterface
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &LocalVIPs{log: log.Named("bgp"), name: name, lo: name == "lo", owned: map[netip.Addr]bool{}}
}

// Name is the interface's name.
func (l *LocalVIPs) Name() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lo {
		return "lo"
	}
	return l.name
}

func (l *LocalVIPs) link(create bool) (netlink.Link, error) {
	if l.lo {
		ln, err := netlink.LinkByName("lo")
		if err != nil {
			return nil, fmt.Errorf("bgp: find lo: %w", err)
		}
		return ln, nil
	}
	ln, err := netlink.LinkByName(l.name)
	if err == nil {
		if ln.Type() != "dummy" {
			return nil, fmt.Errorf("bgp: interface %s exists and is a %s, not halb's dummy", l.name, ln.Type())
		}
		return ln, nil
	}
	var nf netlink.LinkNotFoundError
	if !errors.As(err, &nf) {
		return nil, fmt.Errorf("bgp: find %s: %w", l.name, err)
	}
	if !create {
		return nil, nil
	}
	d := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: l.name}}
	if err := netlink.LinkAdd(d); err != nil {
		if errors.Is(err, syscall.EOPNOTSUPP) {
			l.log.Warn("the kernel has no dummy interfaces: VIPs go on lo", zap.String("interface", l.name), zap.Error(err))
			l.lo = true
			return l.link(create)
		}
		return nil, fmt.Errorf("bgp: create %s: %w", l.name, err)
	}
	ln, err = netlink.LinkByName(l.name)
	if err != nil {
		return nil, fmt.Errorf("bgp: find %s: %w", l.name, err)
	}
	if err := netlink.LinkSetUp(ln); err != nil {
		return nil, fmt.Errorf("bgp: set %s up: %w", l.name, err)
	}
	l.log.Info("created the VIP interface", zap.String("interface", l.name))
	return ln, nil
}

// Set makes exactly addrs local on the interface, each as a /32 or /128.
func (l *LocalVIPs) Set(addrs []netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln, err := l.link(len(addrs) > 0)
	if err != nil || ln == nil {
		return err
	}
	have, err := netlink.AddrList(ln, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("bgp: list addresses of %s: %w", l.name, err)
	}
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		want[a.Unmap()] = true
	}
	var errs []error
	for _, h := range have {
		a, ok := netip.AddrFromSlice(h.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.IsLinkLocalUnicast() {
			continue
		}
		if want[a] {
			delete(want, a)
			continue
		}
		if l.lo && !l.owned[a] && h.Label != LoopbackLabel {
			continue // not halb's
		}
		delete(l.owned, a)
		if err := netlink.AddrDel(ln, &h); err != nil {
			errs = append(errs, fmt.Errorf("bgp: remove %s from %s: %w", a, l.name, err))
			continue
		}
		l.log.Info("VIP no longer local", zap.Stringer("vip", a), zap.String("interface", l.name))
	}
	for a := range want {
		p := HostRoute(a)
		nl := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}}
		if l.lo && a.Is4() {
			nl.Label = LoopbackLabel
		}
		if a.Is6() {
			nl.Flags = 0x80 // IFA_F_NODAD: the VIP is usable at once
		}
		if err := netlink.AddrAdd(ln, nl); err != nil {
			errs = append(errs, fmt.Errorf("bgp: add %s to %s: %w", a, l.name, err))
			continue
		}
		if l.lo {
			l.owned[a] = true
		}
		l.log.Info("VIP local", zap.Stringer("vip", a), zap.String("interface", ln.Attrs().Name))
	}
	return errors.Join(errs...)
}

// Close deletes the interface and its addresses (on lo: the addresses halb added).
func (l *LocalVIPs) Close() error {
	l.mu.Lock()
	if l.lo {
		l.mu.Unlock()
		return l.Set(nil)
	}
	defer l.mu.Unlock()
	ln, err := l.link(false)
	if err != nil || ln == nil {
		return err
	}
	if err := netlink.LinkDel(ln); err != nil {
		return fmt.Errorf("bgp: delete %s: %w", l.name, err)
	}
	return nil
}
