package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"halb/internal/poll"
	"halb/internal/testkit"
)

// udpBackend answers every datagram with "NAME:" and the datagram; stop closes it.
func udpBackend(t *testing.T, name string) (addr *net.UDPAddr, stop func()) {
	a, stop := testkit.UDPEcho(t, name)
	return net.UDPAddrFromAddrPort(a), stop
}

// TestUDPService: a keepalived `protocol UDP` NAT virtual server is served by the userspace UDP
// proxy, checked with UDP_CHECK, shown as userspace-udp, and a backend that dies is left.
func TestUDPService(t *testing.T) {
	a, stopA := udpBackend(t, "a")
	b, _ := udpBackend(t, "b")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "virtual_server 127.0.0.1 %d {\n    protocol UDP\n    lb_algo rr\n    delay_loop 1\n", port)
	for _, be := range []*net.UDPAddr{a, b} {
		fmt.Fprintf(&cfg, "    real_server 127.0.0.1 %d {\n        UDP_CHECK {\n            payload 00\n            require_reply\n            connect_timeout 1\n            retry 0\n        }\n    }\n", be.Port)
	}
	cfg.WriteString("}\n")
	path := filepath.Join(t.TempDir(), "halb.conf")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, path)
	name := fmt.Sprintf("127.0.0.1:%d", port)
	if !poll.Until(10*time.Second, 10*time.Millisecond, func() bool { return d.UDPAddr(name) != "" }) {
		t.Fatal("UDP service not started")
	}
	ask := func(c net.Conn, msg string) string {
		_, _ = c.Write([]byte(msg))
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}
	seen := map[string]bool{}
	for i := range 4 {
		c, err := net.Dial("udp", name)
		if err != nil {
			t.Fatal(err)
		}
		r := ask(c, fmt.Sprint(i))
		c.Close()
		if len(r) < 2 {
			t.Fatalf("datagram %d: no reply", i)
		}
		seen[r[:1]] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("replies from %v, want both backends", seen)
	}
	var mode string
	for _, s := range (source{d}).Services() {
		if s.Name == name {
			mode = s.Mode
			if s.Total < 4 {
				t.Errorf("flows not counted: %+v", s)
			}
		}
	}
	if mode != "userspace-udp" {
		t.Errorf("show services mode %q, want userspace-udp", mode)
	}
	// Backend a dies: UDP_CHECK sees port unreachable, a goes down, every client lands on b.
	stopA()
	c, err := net.Dial("udp", name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ok := poll.Until(15*time.Second, 50*time.Millisecond, func() bool {
		for i := range 4 {
			cc, err := net.Dial("udp", name)
			if err != nil {
				return false
			}
			r := ask(cc, fmt.Sprint(i))
			cc.Close()
			if !strings.HasPrefix(r, "b:") {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatal("clients still sent to the dead backend")
	}
}
