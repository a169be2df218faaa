package vrrp

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var (
	src4 = netip.MustParseAddr("198.18.0.1")
	src6 = netip.MustParseAddr("fe80::1")
	vip4 = netip.MustParseAddr("198.18.0.10")
	vip6 = netip.MustParseAddr("2001:db8::10")
)

func TestMarshalV2KnownBytes(t *testing.T) {
	a := Advert{Version: 2, VRID: 51, Priority: 100, Interval: time.Second,
		Addrs: []netip.Addr{vip4}, AuthType: AuthPass, AuthData: PassData("secret")}
	b, err := a.Marshal(src4, GroupV4())
	if err != nil {
		t.Fatal(err)
	}
	// Hand-computed: 21 33 64 01 | 01 01 cksum | c6 12 00 0a | "secret\0\0"
	want := "213364010101" + "0000" + "c612000a" + hex.EncodeToString([]byte("secret\x00\x00"))
	got := hex.EncodeToString(b)
	if got[:12] != want[:12] || got[16:] != want[16:] {
		t.Fatalf("bytes\n got %s\nwant %s", got, want)
	}
	if checksum(b, 0) != 0 {
		t.Fatalf("checksum does not verify: %s", got)
	}
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name     string
		a        Advert
		src, dst netip.Addr
	}{
		{"v2 none", Advert{Version: 2, VRID: 1, Priority: 255, Interval: 3 * time.Second, Addrs: []netip.Addr{vip4, src4}}, src4, GroupV4()},
		{"v2 pass", Advert{Version: 2, VRID: 7, Priority: 1, Interval: time.Second, Addrs: []netip.Addr{vip4}, AuthType: AuthPass, AuthData: PassData("longerthan8")}, src4, GroupV4()},
		{"v3 v4", Advert{Version: 3, VRID: 200, Priority: 0, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip4}}, src4, GroupV4()},
		{"v3 v4 unicast", Advert{Version: 3, VRID: 200, Priority: 90, Interval: 40950 * time.Millisecond, Addrs: []netip.Addr{vip4}}, src4, netip.MustParseAddr("198.18.0.2")},
		{"v3 v6", Advert{Version: 3, VRID: 9, Priority: 150, Interval: 10 * time.Millisecond, Addrs: []netip.Addr{vip6, netip.MustParseAddr("2001:db8::20")}}, src6, GroupV6()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.a.Marshal(c.src, c.dst)
			if err != nil {
				t.Fatal(err)
			}
			f := Filter{Version: c.a.Version, VRID: c.a.VRID, AuthType: c.a.AuthType, AuthData: c.a.AuthData, Interval: c.a.Interval}
			got, why := Decode(Received{Payload: b, Src: c.src, Dst: c.dst, TTL: 255}, f)
			if why != DropNone {
				t.Fatalf("dropped: %v", why)
			}
			if got.VRID != c.a.VRID || got.Priority != c.a.Priority || got.Interval != c.a.Interval ||
				got.AuthType != c.a.AuthType || got.AuthData != c.a.AuthData || len(got.Addrs) != len(c.a.Addrs) {
				t.Fatalf("got %+v want %+v", got, c.a)
			}
			for i := range got.Addrs {
				if got.Addrs[i] != c.a.Addrs[i] {
					t.Fatalf("addr %d: %v != %v", i, got.Addrs[i], c.a.Addrs[i])
				}
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	bad := []Advert{
		{Version: 2, Interval: time.Second},
		{Version: 2, Interval: 1500 * time.Millisecond, Addrs: []netip.Addr{vip4}},
		{Version: 2, Interval: time.Second, Addrs: []netip.Addr{vip6}},
		{Version: 3, Interval: 5 * time.Millisecond, Addrs: []netip.Addr{vip4}},
		{Version: 3, Interval: time.Minute, Addrs: []netip.Addr{vip4}},
		{Version: 3, Interval: time.Second, Addrs: []netip.Addr{vip4, vip6}},
		{Version: 4, Interval: time.Second, Addrs: []netip.Addr{vip4}},
	}
	for i, a := range bad {
		if _, err := a.Marshal(src4, GroupV4()); err == nil {
			t.Errorf("%d: %+v: no error", i, a)
		}
	}
}

func TestDecodeDrops(t *testing.T) {
	base := Advert{Version: 2, VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{vip4}, AuthType: AuthPass, AuthData: PassData("pw")}
	f := Filter{Version: 2, VRID: 51, AuthType: AuthPass, AuthData: PassData("pw"), Interval: time.Second}
	enc := func(a Advert) []byte {
		b, err := a.Marshal(src4, GroupV4())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fix := func(b []byte) []byte { // recompute v2 checksum after tampering
		b[6], b[7] = 0, 0
		c := checksum(b, 0)
		b[6], b[7] = byte(c>>8), byte(c)
		return b
	}
	good := enc(base)
	mod := func(fn func(b []byte) []byte) []byte { return fn(bytes.Clone(good)) }
	v3 := base
	v3.Version = 3
	cases := []struct {
		name string
		r    Received
		f    Filter
		want DropReason
	}{
		{"ok", Received{Payload: good, Src: src4, Dst: GroupV4(), TTL: 255}, f, DropNone},
		{"ttl", Received{Payload: good, Src: src4, Dst: GroupV4(), TTL: 254}, f, DropTTL},
		{"short", Received{Payload: good[:7], Src: src4, Dst: GroupV4(), TTL: 255}, f, DropShort},
		{"version", Received{Payload: good, Src: src4, Dst: GroupV4(), TTL: 255}, Filter{Version: 3}, DropVersion},
		{"type", Received{Payload: mod(func(b []byte) []byte { b[0] = 0x22; return fix(b) }), Src: src4, Dst: GroupV4(), TTL: 255}, f, DropType},
		{"vrid", Received{Payload: good, Src: src4, Dst: GroupV4(), TTL: 255}, Filter{Version: 2, VRID: 52}, DropVRID},
		{"count", Received{Payload: mod(func(b []byte) []byte { b[3] = 2; return fix(b) }), Src: src4, Dst: GroupV4(), TTL: 255}, f, DropLength},
		{"count0", Received{Payload: mod(func(b []byte) []byte { b[3] = 0; return fix(b) }), Src: src4, Dst: GroupV4(), TTL: 255}, f, DropLength},
		{"trailing", Received{Payload: append(bytes.Clone(good), 0), Src: src4, Dst: GroupV4(), TTL: 255}, f, DropLength},
		{"checksum", Received{Payload: mod(func(b []byte) []byte { b[2] = 99; return b }), Src: src4, Dst: GroupV4(), TTL: 255}, f, DropChecksum},
		{"authtype", Received{Payload: good, Src: src4, Dst: GroupV4(), TTL: 255}, Filter{Version: 2, VRID: 51}, DropAuthType},
		{"authfail", Received{Payload: good, Src: src4, Dst: GroupV4(), TTL: 255}, Filter{Version: 2, VRID: 51, AuthType: AuthPass, AuthData: PassData("other")}, DropAuthFail},
		{"ah", Received{Payload: mod(func(b []byte) []byte { b[4] = 2; return fix(b) }), Src: src4, Dst: GroupV4(), TTL: 255}, f, DropAuthAH},
		{"interval", Received{Payload: good, Src: src4, Dst: GroupV4(), TTL: 255}, Filter{Version: 2, VRID: 51, AuthType: AuthPass, AuthData: PassData("pw"), Interval: 2 * time.Second}, DropInterval},
		{"zero interval", Received{Payload: mod(func(b []byte) []byte { b[5] = 0; return fix(b) }), Src: src4, Dst: GroupV4(), TTL: 255}, f, DropZeroInterval},
		{"v2 over v6", Received{Payload: good, Src: src6, Dst: GroupV6(), TTL: 255}, f, DropFamily},
		{"v3 pseudo header", Received{Payload: enc(v3), Src: src4, Dst: netip.MustParseAddr("198.18.0.99"), TTL: 255}, Filter{Version: 3, VRID: 51}, DropChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, why := Decode(c.r, c.f); why != c.want {
				t.Fatalf("got %v want %v", why, c.want)
			}
		})
	}
	if s := DropAuthFail.String(); s != "auth_fail" {
		t.Fatalf("String: %q", s)
	}
	if len(DropReasons()) != int(numDropReasons)-1 {
		t.Fatal("DropReasons length")
	}
	for _, d := range DropReasons() {
		if strings.HasPrefix(d.String(), "drop(") {
			t.Fatalf("reason %d has no name", d)
		}
	}
}

// TestGopacketCrossCheck decodes halb's VRRPv2 encoding with gopacket's
// independent VRRPv2 decoder.
func TestGopacketCrossCheck(t *testing.T) {
	a := Advert{Version: 2, VRID: 42, Priority: 254, Interval: 5 * time.Second,
		Addrs: []netip.Addr{vip4, netip.MustParseAddr("198.18.0.20")}, AuthType: AuthPass, AuthData: PassData("abc")}
	b, err := a.Marshal(src4, GroupV4())
	if err != nil {
		t.Fatal(err)
	}
	p := gopacket.NewPacket(b, layers.LayerTypeVRRP, gopacket.Default)
	l, ok := p.Layer(layers.LayerTypeVRRP).(*layers.VRRPv2)
	if !ok {
		t.Fatalf("gopacket did not decode: %v", p.ErrorLayer())
	}
	if l.Version != 2 || l.Type != layers.VRRPv2Advertisement || l.VirtualRtrID != 42 || l.Priority != 254 ||
		l.CountIPAddr != 2 || l.AuthType != layers.VRRPv2AuthType(AuthPass) || l.AdverInt != 5 ||
		!l.IPAddress[0].Equal(net.ParseIP("198.18.0.10")) || !l.IPAddress[1].Equal(net.ParseIP("198.18.0.20")) {
		t.Fatalf("gopacket sees %+v", l)
	}
	if l.Checksum != uint16(b[6])<<8|uint16(b[7]) {
		t.Fatal("checksum field")
	}
}

// TestTsharkCrossCheck writes a pcap of halb's adverts (v2, v3/IPv4,
// v3/IPv6) and has Wireshark's dissector decode them and verify checksums.
func TestTsharkCrossCheck(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed")
	}
	type pk struct {
		a        Advert
		src, dst netip.Addr
	}
	pks := []pk{
		{Advert{Version: 2, VRID: 51, Priority: 150, Interval: time.Second, Addrs: []netip.Addr{vip4}, AuthType: AuthPass, AuthData: PassData("halbpw")}, src4, GroupV4()},
		{Advert{Version: 3, VRID: 52, Priority: 100, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip4}}, src4, GroupV4()},
		{Advert{Version: 3, VRID: 53, Priority: 0, Interval: 250 * time.Millisecond, Addrs: []netip.Addr{vip6}}, src6, GroupV6()},
	}
	path := filepath.Join(t.TempDir(), "vrrp.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, p := range pks {
		payload, err := p.a.Marshal(p.src, p.dst)
		if err != nil {
			t.Fatal(err)
		}
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{0, 0, 0x5e, 0, 1, p.a.VRID}, DstMAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 0x12}}
		var nl gopacket.SerializableLayer
		if p.src.Is4() {
			eth.EthernetType = layers.EthernetTypeIPv4
			nl = &layers.IPv4{Version: 4, TTL: 255, Protocol: IPProto, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice()}
		} else {
			eth.EthernetType = layers.EthernetTypeIPv6
			nl = &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: IPProto, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice()}
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, nl, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(0, 0), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tshark, "-r", path, "-o", "vrrp.v3_checksum_as_in_v2:FALSE", "-T", "fields", "-E", "separator=|",
		"-e", "vrrp.version", "-e", "vrrp.virt_rtr_id", "-e", "vrrp.prio", "-e", "vrrp.addr_count",
		"-e", "vrrp.checksum.status", "-e", "vrrp.adver_int", "-e", "vrrp.short_adver_int", "-e", "vrrp.ip_addr", "-e", "vrrp.ipv6_addr", "-e", "vrrp.auth_string").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{
		"2|51|150|1|1|1||198.18.0.10||halbpw",
		"3|52|100|1|1||10|198.18.0.10||",
		"3|53|0|1|1||25||2001:db8::10|",
	}
	if len(lines) != len(want) {
		t.Fatalf("tshark output:\n%s", out)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("packet %d: tshark %q want %q", i, lines[i], want[i])
		}
	}
}

func BenchmarkMarshalV3(b *testing.B) {
	a := Advert{Version: 3, VRID: 51, Priority: 100, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip4}}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.AppendMarshal(buf[:0], src4, GroupV4()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeV3(b *testing.B) {
	a := Advert{Version: 3, VRID: 51, Priority: 100, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip4}}
	p, _ := a.Marshal(src4, GroupV4())
	r := Received{Payload: p, Src: src4, Dst: GroupV4(), TTL: 255}
	f := Filter{Version: 3, VRID: 51}
	b.ReportAllocs()
	for b.Loop() {
		if _, why := Decode(r, f); why != DropNone {
			b.Fatal(why)
		}
	}
}

func BenchmarkMachineStep(b *testing.B) {
	m := NewMachine(MachineConfig{Version: 3, Priority: 100, Interval: 100 * time.Millisecond, Primary: src4})
	now := time.Unix(0, 0)
	m.Step(now, Event{Kind: EvStartup})
	ev := Event{Kind: EvAdvert, Src: netip.MustParseAddr("198.18.0.3"), Priority: 150, Interval: 100 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(100 * time.Millisecond)
		m.Step(now, ev)
	}
}
