package vrrp

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ifAddr is one address on one interface.
type ifAddr struct {
	If   string
	Addr netip.Addr
}

// trackAddrPrefix names the tracker that holds an instance in FAULT while its configured advert
// source (unicast_src_ip / mcast_src_ip) is not on its interface, as keepalived does: sending
// from an address the node does not have fails (EINVAL) and the instance would hold the VIP
// without ever being heard.
const trackAddrPrefix = "source "

// configuredSource is the advert source the instance was given (zero: the interface's own).
func configuredSource(cfg InstanceConfig) (netip.Addr, string) {
	if len(cfg.UnicastPeers) > 0 {
		return cfg.UnicastSrc, "unicast_src_ip"
	}
	return cfg.McastSrc, "mcast_src_ip"
}

// srcState is the tracker of the configured source: FAULT while it is not on the interface.
func srcState(kw string, a netip.Addr, dev string, present bool) TrackerState {
	if present {
		return TrackerState{Reason: fmt.Sprintf("%s %v on %s", kw, a, dev)}
	}
	return TrackerState{Fault: true, Reason: fmt.Sprintf("%s %v not on %s", kw, a, dev)}
}

// usable reports whether an address with these IFA_F_* flags can be a source (IPv6 duplicate
// address detection still running or failed: not yet).
func usable(flags int) bool {
	return flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0
}

// watchAddrs follows the node's addresses with netlink: it subscribes, then returns the
// addresses present now; later changes go to update from a goroutine until done closes.
func watchAddrs(done <-chan struct{}, update func(ifAddr, bool)) ([]ifAddr, error) {
	ch := make(chan netlink.AddrUpdate, 64)
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{ErrorCallback: func(error) {}}); err != nil {
		return nil, fmt.Errorf("vrrp: address subscribe: %w", err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("vrrp: list links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("vrrp: list addresses: %w", err)
	}
	var now []ifAddr
	for _, a := range addrs {
		ad, ok := netip.AddrFromSlice(a.IP)
		if ok && usable(a.Flags) && names[a.LinkIndex] != "" {
			now = append(now, ifAddr{names[a.LinkIndex], ad.Unmap()})
		}
	}
	go func() {
		for u := range ch {
			ad, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok {
				continue
			}
			name, ok := names[u.LinkIndex]
			if !ok {
				l, err := netlink.LinkByIndex(u.LinkIndex)
				if err != nil {
					continue
				}
				name = l.Attrs().Name
				names[u.LinkIndex] = name
			}
			update(ifAddr{name, ad.Unmap()}, u.NewAddr && usable(u.Flags))
		}
	}()
	return now, nil
}

// addrChanged records an address change and re-evaluates the source trackers.
func (r *Router) addrChanged(a ifAddr, present bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.addrs == nil || r.addrs[a] == present {
		return
	}
	if present {
		r.addrs[a] = true
	} else {
		delete(r.addrs, a)
	}
	for _, in := range r.instances {
		r.pushTrackers(in)
	}
}

// pushSrcTracker sets the configured-source tracker of in. r.mu held.
func (r *Router) pushSrcTracker(in *instance, cfg InstanceConfig, want map[string]bool) {
	src, kw := configuredSource(cfg)
	if !src.IsValid() || r.addrs == nil {
		return
	}
	name := trackAddrPrefix + src.String()
	want[name] = true
	in.setTracker(name, srcState(kw, src, cfg.Interface, r.addrs[ifAddr{cfg.Interface, src.WithZone("")}]))
}
