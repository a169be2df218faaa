package vrrp

import (
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"halb/internal/netlab"
)

// TestLabVMAC: use_vmac as keepalived. Each node gets a private macvlan vrrp.51 with the virtual
// MAC 00:00:5e:00:01:33 on eth0; the master holds the VIP there and the client's neighbour entry
// for the VIP is the virtual MAC, which stays the same when the backup takes over: the client
// reaches the new master without any ARP change. A node that stops removes its VMAC interface
// and gives eth0 its ARP settings back. With vmac_xmit_base the adverts go through eth0.
func TestLabVMAC(t *testing.T) {
	labAvailable(t)
	const vmac = "00:00:5e:00:01:33"
	for _, xmitBase := range []bool{false, true} {
		t.Run(map[bool]string{false: "xmit vmac", true: "vmac_xmit_base"}[xmitBase], func(t *testing.T) {
			l := netlab.NewT(t)
			p := newProbe(t, l)
			cfg := func(prio uint8) Config {
				c := halbCfg("", prio, 3, 100*time.Millisecond, "")
				c.Instances[0].UseVMAC = true
				c.Instances[0].VMACXmitBase = xmitBase
				return c
			}
			lb1 := startHalb(t, l, "lb1", cfg(150))
			startHalb(t, l, "lb2", cfg(100))
			waitVIP(t, l, "lb1", true, 5*time.Second)
			holdsNot(t, l, "lb2", 500*time.Millisecond)
			for _, h := range []string{"lb1", "lb2"} {
				out, err := l.IP(h, "-d", "link", "show", "vrrp.51")
				if err != nil || !strings.Contains(out, "link/ether "+vmac) || !strings.Contains(out, "macvlan mode private") ||
					!strings.Contains(out, "@eth0") {
					t.Fatalf("%s: vrrp.51: %v\n%s", h, err, out)
				}
			}
			out, _ := l.IP("lb1", "-o", "addr", "show", "dev", "vrrp.51")
			if !strings.Contains(out, netlab.VIP1.String()+"/32") {
				t.Fatalf("VIP not on lb1's vrrp.51:\n%s", out)
			}
			wantSrc := vmac
			if xmitBase {
				wantSrc = l.Host("lb1").MAC
			}
			if got := advertSrcMAC(t, l); got != wantSrc {
				t.Fatalf("adverts come from %s, want %s", got, wantSrc)
			}
			p.until(t, time.Now(), "lb1", 5*time.Second)
			if got := neighMAC(t, l); got != vmac {
				t.Fatalf("client's entry for the VIP: %q, want the virtual MAC", got)
			}
			start := time.Now()
			lb1.kill(syscall.SIGTERM)
			if !lb1.wait(5 * time.Second) {
				t.Fatal("lb1 did not stop")
			}
			waitVIP(t, l, "lb2", true, 5*time.Second)
			d := p.until(t, start, "lb2", 5*time.Second)
			t.Logf("lb2 answers on the VIP %v after lb1's SIGTERM", d)
			if got := neighMAC(t, l); got != vmac {
				t.Fatalf("client's entry for the VIP after the handover: %q, want the virtual MAC", got)
			}
			if out, err := l.IP("lb1", "link", "show", "vrrp.51"); err == nil {
				t.Fatalf("lb1 left its VMAC interface:\n%s", out)
			}
			b, err := l.Exec("lb1", "cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore").Output()
			if err != nil || strings.TrimSpace(string(b)) != "0" {
				t.Fatalf("lb1's eth0 arp_ignore after stop: %q %v", b, err)
			}
		})
	}
}

// advertSrcMAC captures one VRRP advert in the client namespace and returns its source MAC.
func advertSrcMAC(t *testing.T, l *netlab.Lab) string {
	t.Helper()
	var c *packet.Conn
	if err := l.Do("client", func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1600)
	deadline := time.Now().Add(3 * time.Second)
	if err := c.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no advert captured: %v", err)
		}
		if n >= 14+20 && buf[14+9] == 112 {
			return net.HardwareAddr(buf[6:12]).String()
		}
	}
}

// TestLabVMACIPv6: an IPv6 instance's VMAC interface vrrp6.51 has 00:00:5e:00:02:33 and a copy of
// eth0's link-local address (its advert source); the VIP follows the master and is answered.
func TestLabVMACIPv6(t *testing.T) {
	labAvailable(t)
	l := netlab.NewT(t)
	p := newProbe(t, l)
	cfg := func(prio uint8) Config {
		c := halbCfg("", prio, 3, 100*time.Millisecond, "")
		c.Instances[0].Family = 6
		c.Instances[0].VIPs = []VIP{{Prefix: netip.PrefixFrom(netlab.VIP1v6, 128)}}
		c.Instances[0].UseVMAC = true
		return c
	}
	lb1 := startHalb(t, l, "lb1", cfg(150))
	startHalb(t, l, "lb2", cfg(100))
	waitAddr(t, l, netlab.VIP1v6, "lb1", true, 5*time.Second)
	out, err := l.IP("lb1", "-d", "addr", "show", "dev", "vrrp6.51")
	if err != nil || !strings.Contains(out, "link/ether 00:00:5e:00:02:33") || !strings.Contains(out, "inet6 fe80::") ||
		!strings.Contains(out, netlab.VIP1v6.String()+"/128") {
		t.Fatalf("lb1 vrrp6.51: %v\n%s", err, out)
	}
	p.untilAddr(t, netlab.VIP1v6, time.Now(), "lb1", 5*time.Second)
	start := time.Now()
	lb1.kill(syscall.SIGTERM)
	waitAddr(t, l, netlab.VIP1v6, "lb2", true, 5*time.Second)
	p.untilAddr(t, netlab.VIP1v6, start, "lb2", 5*time.Second)
}
