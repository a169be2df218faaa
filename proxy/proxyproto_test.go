package proxy

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestProxyHeaderRoundTrip(t *testing.T) {
	cases := []struct{ src, dst string }{
		{"198.18.0.1:40000", "198.18.0.10:80"},
		{"[2001:db8::1]:1", "[2001:db8::2]:443"},
		{"198.18.0.1:0", "[2001:db8::2]:65535"}, // mixed: sent as IPv6
	}
	for _, c := range cases {
		src, dst := netip.MustParseAddrPort(c.src), netip.MustParseAddrPort(c.dst)
		for _, v := range []ProxyProto{ProxyV1, ProxyV2} {
			b := AppendProxyHeader(nil, v, src, dst)
			b = append(b, "tail"...)
			h, n, err := ParseProxyHeader(b)
			if err != nil {
				t.Fatalf("%v %s: %v (%q)", v, c.src, err, b)
			}
			if string(b[n:]) != "tail" || h.Local || h.Version != int(v) {
				t.Fatalf("%v %s: n=%d h=%+v", v, c.src, n, h)
			}
			if h.Src.Addr().Unmap() != src.Addr().Unmap() || h.Src.Port() != src.Port() ||
				h.Dst.Addr().Unmap() != dst.Addr().Unmap() || h.Dst.Port() != dst.Port() {
				t.Fatalf("%v: got %v -> %v, want %v -> %v", v, h.Src, h.Dst, src, dst)
			}
			// Every strict prefix is incomplete, never an error.
			for i := range n {
				if _, _, err := ParseProxyHeader(b[:i]); !errors.Is(err, ErrProxyIncomplete) {
					t.Fatalf("%v prefix %d: %v", v, i, err)
				}
			}
		}
	}
}

func TestProxyHeaderV1Exact(t *testing.T) {
	b := AppendProxyHeader(nil, ProxyV1, netip.MustParseAddrPort("198.18.0.1:5000"), netip.MustParseAddrPort("198.18.0.2:80"))
	if want := "PROXY TCP4 198.18.0.1 198.18.0.2 5000 80\r\n"; string(b) != want {
		t.Fatalf("got %q want %q", b, want)
	}
}

func TestProxyHeaderRejects(t *testing.T) {
	bad := []string{
		"GET / HTTP/1.1\r\n",
		"PROXY TCP4 198.18.0.1 198.18.0.2 5000 80\n",      // LF only
		"PROXY TCP4 198.18.0.1 198.18.0.2 5000\r\n",       // missing port
		"PROXY TCP4 198.18.0.1 198.18.0.2 5000 80 1\r\n",  // extra field
		"PROXY TCP4 198.18.0.01 198.18.0.2 5000 80\r\n",   // leading zero
		"PROXY TCP4 2001:db8::1 198.18.0.2 5000 80\r\n",   // family mismatch
		"PROXY TCP6 198.18.0.1 2001:db8::2 5000 80\r\n",   // family mismatch
		"PROXY TCP4 198.18.0.1 198.18.0.2 65536 80\r\n",   // port range
		"PROXY TCP4 198.18.0.1 198.18.0.2 0080 80\r\n",    // leading zero port
		"PROXY TCP4  198.18.0.1 198.18.0.2 5000 80\r\n",   // double space
		"PROXY UDP4 198.18.0.1 198.18.0.2 5000 80\r\n",    // protocol
		"PROXY TCP4 198.18.0.1 198.18.0.2 5000 80\rX\r\n", // bare CR
		"PROXY " + string(bytes.Repeat([]byte("1"), 120)) + "\r\n",
		"\r\n\r\n\x00\r\nQUIT\n\x11\x11\x00\x0c" + "012345678901",                 // version 1
		"\r\n\r\n\x00\r\nQUIT\n\x22\x11\x00\x0c" + "012345678901",                 // command 2
		"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x08" + "01234567",                     // short address block
		"\r\n\r\n\x00\r\nQUIT\n\x21\x12\x00\x0c" + "012345678901",                 // UDP
		"\r\n\r\n\x00\r\nQUIT\n\x21\x41\x00\x0c" + "012345678901",                 // family
		"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0e" + "012345678901\x01\x00",         // truncated TLV
		"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x10" + "012345678901\x01\x00\x05\x00", // TLV overrun
		"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff",                                  // too long
		"\r\n\r\nX",
	}
	for _, s := range bad {
		if _, _, err := ParseProxyHeader([]byte(s)); err == nil || errors.Is(err, ErrProxyIncomplete) {
			t.Errorf("%q: got %v, want a rejection", s, err)
		}
	}
}

func TestProxyHeaderLocal(t *testing.T) {
	for _, s := range []string{
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
		"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00",
		"\r\n\r\n\x00\r\nQUIT\n\x20\x11\x00\x0c012345678901",
		"\r\n\r\n\x00\r\nQUIT\n\x21\x00\x00\x03\x04\x00\x00", // PROXY+UNSPEC with a TLV
	} {
		h, n, err := ParseProxyHeader([]byte(s))
		if err != nil || !h.Local || n != len(s) {
			t.Errorf("%q: h=%+v n=%d err=%v", s, h, n, err)
		}
	}
}

func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 198.18.0.1 198.18.0.2 5000 80\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 5000 80\r\nGET"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(AppendProxyHeader(nil, ProxyV2, netip.MustParseAddrPort("198.18.0.1:1"), netip.MustParseAddrPort("198.18.0.2:2")))
	f.Add(AppendProxyHeader(nil, ProxyV2, netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:2")))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0f012345678901\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseProxyHeader(b)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("n=%d len=%d", n, len(b))
		}
		if h.Local {
			return
		}
		// A parsed address header re-encodes to one that parses to the same addresses.
		v := ProxyProto(h.Version)
		b2 := AppendProxyHeader(nil, v, h.Src, h.Dst)
		h2, n2, err := ParseProxyHeader(b2)
		if err != nil || n2 != len(b2) || h2.Src.Addr().Unmap() != h.Src.Addr().Unmap() || h2.Dst.Port() != h.Dst.Port() {
			t.Fatalf("re-encode of %+v: %q %+v %v", h, b2, h2, err)
		}
	})
}

func TestParseModeAndProxyProto(t *testing.T) {
	for _, m := range []Mode{ModeTCP, ModeHTTP, ModeTLS} {
		if got, err := ParseMode(m.String()); err != nil || got != m {
			t.Errorf("%v: %v %v", m, got, err)
		}
	}
	for _, p := range []ProxyProto{ProxyNone, ProxyV1, ProxyV2} {
		if got, err := ParseProxyProto(p.String()); err != nil || got != p {
			t.Errorf("%v: %v %v", p, got, err)
		}
	}
	if _, err := ParseMode("udp"); err == nil {
		t.Error("udp accepted")
	}
	if _, err := ParseProxyProto("v3"); err == nil {
		t.Error("v3 accepted")
	}
}
