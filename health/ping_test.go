package health

import (
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestPingLoopback(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "::1"} {
		t.Run(a, func(t *testing.T) {
			r := checkWithin(t, &PingChecker{Addr: netip.MustParseAddr(a)}, 2*time.Second)
			if !r.OK {
				if a == "::1" && strings.Contains(r.Reason, "address") {
					t.Skipf("no IPv6 loopback: %s", r.Reason)
				}
				t.Fatalf("ping %s: %s", a, r.Reason)
			}
		})
	}
}

func TestPingUnprivileged(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	if err != nil {
		t.Skipf("no ping_group_range: %v", err)
	}
	f := strings.Fields(string(b))
	lo, _ := strconv.Atoi(f[0])
	hi, _ := strconv.Atoi(f[1])
	if gid := os.Getegid(); gid < lo || gid > hi {
		t.Skipf("datagram ICMP sockets not allowed for gid %d (ping_group_range %s)", gid, strings.TrimSpace(string(b)))
	}
	r := checkWithin(t, &PingChecker{Addr: netip.MustParseAddr("127.0.0.1"), Unprivileged: true}, 2*time.Second)
	if !r.OK {
		t.Fatalf("unprivileged ping: %s", r.Reason)
	}
}

// TestPingNoAnswer pings an address that never answers: inside an
// anonymous network namespace that this test creates (it disappears with
// the test's thread and handle, even on a crash), lo holds 198.18.0.99 and
// the namespace's net.ipv4.icmp_echo_ignore_all is set, so echoes are
// silently dropped.
func TestPingNoAnswer(t *testing.T) {
	inLabNetns(t, func() {
		target := netip.MustParseAddr("198.18.0.99")
		if r := checkWithin(t, &PingChecker{Addr: target}, time.Second); !r.OK {
			t.Fatalf("ping lab address before muting: %s", r.Reason)
		}
		// /proc/sys/net follows the opening thread's namespace: ours.
		if err := os.WriteFile("/proc/sys/net/ipv4/icmp_echo_ignore_all", []byte("1"), 0o644); err != nil {
			t.Fatalf("mute echo in the lab namespace: %v", err)
		}
		fd := countFDs(t)
		r := checkWithin(t, &PingChecker{Addr: target}, 300*time.Millisecond)
		if r.OK || r.Reason != "timeout after 300ms (no echo reply)" {
			t.Fatalf("got %+v", r)
		}
		if after := countFDs(t); after > fd {
			t.Fatalf("descriptor leak: %d -> %d", fd, after)
		}
	})
}

// inLabNetns runs f on a thread inside a fresh anonymous network namespace
// with lo up holding 198.18.0.99/32.
func inLabNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) to create a network namespace")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Skipf("netns: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		t.Skipf("cannot create a network namespace: %v", err)
	}
	defer ns.Close()
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: Go discards it when the goroutine ends.
			t.Errorf("restore network namespace: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink: %v", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("198.18.0.99/32")
	if err := h.AddrAdd(lo, addr); err != nil {
		t.Fatal(err)
	}
	f()
}

// TestPingUnprivilegedInLab allows datagram ICMP sockets in a lab namespace
// (ping_group_range is per namespace) and pings through one.
func TestPingUnprivilegedInLab(t *testing.T) {
	inLabNetns(t, func() {
		if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647"), 0o644); err != nil {
			t.Skipf("cannot set ping_group_range in the lab namespace: %v", err)
		}
		r := checkWithin(t, &PingChecker{Addr: netip.MustParseAddr("198.18.0.99"), Unprivileged: true}, time.Second)
		if !r.OK {
			t.Fatalf("unprivileged ping: %s", r.Reason)
		}
	})
}
