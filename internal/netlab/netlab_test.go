package netlab

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLab(t *testing.T) {
	l := NewT(t)
	for _, h := range []string{"lb1", "lb2", "web1", "web2", "client"} {
		if l.Host(h) == nil {
			t.Fatalf("no host %s", h)
		}
		ok, err := l.HasAddr(h, l.Host(h).IPv4.Addr())
		if err != nil || !ok {
			t.Fatalf("%s lacks its address: %v", h, err)
		}
	}
	// The hosts reach each other through the switch (IPv4 and IPv6): a
	// listener in lb1, dialled from client.
	var ln net.Listener
	if err := l.Do("lb1", func() (err error) { ln, err = net.Listen("tcp", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, dst := range []string{"198.18.0.1", "2001:db8::1"} {
		err := l.Do("client", func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(dst, strconv.Itoa(port)), 2*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err != nil {
			t.Fatalf("client → lb1 %s: %v", dst, err)
		}
	}
	// The host's own namespace does not see the lab's interfaces.
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	if strings.Contains(string(out), "p-lb1") {
		t.Fatal("lab veth visible in the host namespace")
	}
	if err := l.SetLink("lb1", false); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := listNS()
	for _, n := range names {
		if strings.HasPrefix(n, l.ID) {
			t.Fatalf("namespace %s left after Close", n)
		}
	}
}

func TestCleanupLeftovers(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err.Error())
	}
	// A leftover of a run whose process (pid 2^22+1 is above pid_max's
	// default and never alive) is gone.
	stale := Prefix + "4194305-abcdef-sw"
	if err := ip("netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", stale).Run() })
	// A live lab of this process survives a cleanup.
	l := NewT(t)
	removed := Cleanup(Prefix)
	_ = removed
	names, _ := listNS()
	var sawLive bool
	for _, n := range names {
		if n == stale {
			t.Fatalf("stale namespace %s not removed", stale)
		}
		if strings.HasPrefix(n, l.ID) {
			sawLive = true
		}
	}
	if !sawLive {
		t.Fatal("cleanup removed a live lab")
	}
}
