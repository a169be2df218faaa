package vrrp

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzDecode feeds arbitrary bytes to Decode: it must not panic, and whatever
// it accepts must re-encode to the same bytes.
func FuzzDecode(f *testing.F) {
	seeds := []struct {
		a   Advert
		src netip.Addr
		dst netip.Addr
	}{
		{Advert{Version: 2, VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{vip4}, AuthType: AuthPass, AuthData: PassData("pw")}, src4, GroupV4()},
		{Advert{Version: 2, VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{vip4, src4}}, src4, GroupV4()},
		{Advert{Version: 3, VRID: 51, Priority: 255, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip4}}, src4, GroupV4()},
		{Advert{Version: 3, VRID: 51, Priority: 0, Interval: time.Second, Addrs: []netip.Addr{vip6}}, src6, GroupV6()},
	}
	for _, s := range seeds {
		b, err := s.a.Marshal(s.src, s.dst)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, s.src.Is6(), uint8(s.a.Version), uint8(s.a.AuthType), uint8(255))
	}
	f.Add([]byte{0x31, 0x33, 0x64, 0xff, 0, 0x64, 0, 0}, false, uint8(3), uint8(0), uint8(255))
	// The version's high bit makes the filter a unicast one (TTL not checked): keepalived's
	// unicast IPv6 adverts come with hop limit 64.
	if b, err := seeds[3].a.Marshal(src6, GroupV6()); err == nil {
		f.Add(b, true, uint8(0x80|3), uint8(0), uint8(64))
	}
	f.Fuzz(func(t *testing.T, b []byte, v6 bool, version, auth, ttl uint8) {
		src, dst := src4, GroupV4()
		if v6 {
			src, dst = src6, GroupV6()
		}
		flt := Filter{Version: int(version & 0x7f), AuthType: AuthType(auth), AuthData: PassData("pw"), Unicast: version&0x80 != 0}
		a, why := Decode(Received{Payload: b, Src: src, Dst: dst, TTL: int(ttl)}, flt)
		if why != DropNone {
			if why.String() == "" {
				t.Fatal("empty reason")
			}
			return
		}
		out, err := a.Marshal(src, dst)
		if err != nil {
			t.Fatalf("accepted advert does not re-encode: %+v: %v", a, err)
		}
		// Reserved bits (v3 interval's upper nibble) and v2 auth data with
		// auth none are not preserved; compare the rest.
		if len(out) != len(b) {
			t.Fatalf("re-encoded length %d != %d", len(out), len(b))
		}
		if a.Version == 3 && b[4]&0xf0 != 0 {
			return
		}
		if a.Version == 2 && a.AuthType == AuthNone {
			copy(out[len(out)-8:], b[len(b)-8:])
			if checksum(out[:len(out)], 0) != 0 {
				return
			}
		}
		if string(out) != string(b) {
			t.Fatalf("re-encoded\n%x\n%x", out, b)
		}
	})
}
