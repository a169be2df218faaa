package vrrp

import (
	"context"
	"halb/internal/poll"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestSplitCommand(t *testing.T) {
	cases := map[string][]string{
		"/bin/check":                    {"/bin/check"},
		"  /bin/check  a   b ":          {"/bin/check", "a", "b"},
		`/bin/check "two words" 'x y'z`: {"/bin/check", "two words", "x yz"},
		`/bin/check ""`:                 {"/bin/check", ""},
		"":                              nil,
	}
	for in, want := range cases {
		if got := splitCommand(in); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %q want %q", in, got, want)
		}
	}
}

func TestVerdictRiseFall(t *testing.T) {
	v := verdict{ok: true, rise: 2, fall: 3}
	seq := []struct {
		in      bool
		changed bool
		ok      bool
	}{
		{false, false, true}, {false, false, true}, {true, false, true}, // reset by a success
		{false, false, true}, {false, false, true}, {false, true, false},
		{true, false, false}, {false, false, false}, {true, false, false}, {true, true, true},
	}
	for i, s := range seq {
		if c := v.add(s.in); c != s.changed || v.ok != s.ok {
			t.Fatalf("step %d: changed %v ok %v, want %v %v", i, c, v.ok, s.changed, s.ok)
		}
	}
}

func TestScriptWeights(t *testing.T) {
	ok, bad := scriptResult{ok: true}, scriptResult{ok: false, reason: "exit 1"}
	cases := []struct {
		w     int
		res   scriptResult
		want  int
		fault bool
	}{
		{-20, bad, -20, false}, {-20, ok, 0, false},
		{10, ok, 10, false}, {10, bad, 0, false},
		{0, bad, 0, true}, {0, ok, 0, false},
	}
	for _, c := range cases {
		ts := scriptState("chk", c.w, false, c.res)
		if ts.Weight != c.want || ts.Fault != c.fault {
			t.Errorf("weight %d ok %v: %+v", c.w, c.res.ok, ts)
		}
	}
	// keepalived's table for "weight N reverse": +ve subtracts while up, -ve adds while down,
	// 0 is FAULT while up.
	rev := []struct {
		w     int
		res   scriptResult
		want  int
		fault bool
	}{
		{10, ok, -10, false}, {10, bad, 0, false},
		{-20, bad, 20, false}, {-20, ok, 0, false},
		{0, ok, 0, true}, {0, bad, 0, false},
	}
	for _, c := range rev {
		ts := scriptState("chk", c.w, true, c.res)
		if ts.Weight != c.want || ts.Fault != c.fault {
			t.Errorf("weight %d reverse ok %v: %+v", c.w, c.res.ok, ts)
		}
	}
	if r := scriptState("chk_haproxy", -20, false, bad).Reason; r != "script chk_haproxy failed (weight -20)" {
		t.Errorf("reason %q", r)
	}
	if ts := ifState("eth1", 0, false); !ts.Fault || ts.Reason != "interface eth1 down" {
		t.Errorf("%+v", ts)
	}
	if ts := ifState("eth1", -30, false); ts.Fault || ts.Weight != -30 {
		t.Errorf("%+v", ts)
	}
}

// TestRunCommandKillsGroup: a script that outlives its timeout is killed
// with its children (the whole process group).
func TestRunCommandKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidf := filepath.Join(dir, "child")
	script := filepath.Join(dir, "s.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nsleep 30 &\necho $! > "+pidf+"\nwait\n"), 0o755)
	start := time.Now()
	err := runCommand(context.Background(), []string{script}, 300*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	b, err := os.ReadFile(pidf)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	gone := poll.Until(5*time.Second, 10*time.Millisecond, func() bool {
		// The child is gone (or a zombie reparented to init: check its state).
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err != nil || strings.Contains(string(st), ") Z ")
	})
	if !gone {
		t.Fatalf("grandchild %d survived the timeout", pid)
	}
	if err := runCommand(context.Background(), []string{"/bin/false"}, time.Second, nil); err == nil {
		t.Fatal("false succeeded")
	}
	if err := runCommand(context.Background(), []string{"/nonexistent/x"}, time.Second, nil); err == nil {
		t.Fatal("missing script succeeded")
	}
}

func TestAnnounceFrames(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x48, 0x4c, 0, 0, 1}
	b, err := garpFrame(mac, netip.MustParseAddr("198.18.0.10"))
	if err != nil {
		t.Fatal(err)
	}
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !ok || arp.Operation != layers.ARPRequest || !net.IP(arp.SourceProtAddress).Equal(net.ParseIP("198.18.0.10")) ||
		!net.IP(arp.DstProtAddress).Equal(net.ParseIP("198.18.0.10")) || net.HardwareAddr(arp.SourceHwAddress).String() != mac.String() {
		t.Fatalf("ARP %+v", p)
	}
	if eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); eth.DstMAC.String() != "ff:ff:ff:ff:ff:ff" {
		t.Fatal("not broadcast")
	}
	b, err = unsolicitedNA(mac, netip.MustParseAddr("2001:db8::10"))
	if err != nil {
		t.Fatal(err)
	}
	p = gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if !ok || ip6.HopLimit != 255 || !ip6.DstIP.Equal(net.ParseIP("ff02::1")) || !na.Override() || na.Solicited() ||
		!na.TargetAddress.Equal(net.ParseIP("2001:db8::10")) || len(na.Options) != 1 || net.HardwareAddr(na.Options[0].Data).String() != mac.String() {
		t.Fatalf("NA %v", p)
	}
	icmp := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		t.Fatal(err)
	}
	// Verify the checksum by re-serialising with checksums computed.
	buf := gopacket.NewSerializeBuffer()
	sum := icmp.Checksum
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, icmp, na)
	if icmp.Checksum != sum {
		t.Fatalf("checksum %x != %x", sum, icmp.Checksum)
	}
}
