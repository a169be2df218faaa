package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PROXY protocol codec (versions 1 and 2), written by hand: no maintained
// library for it is in the module graph. Spec:
// https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt

// ProxyProto selects which PROXY protocol header is sent to a backend.
type ProxyProto uint8

const (
	ProxyNone ProxyProto = iota // no header
	ProxyV1                     // text header, "PROXY TCP4 ..."
	ProxyV2                     // binary header
)

func (p ProxyProto) String() string {
	switch p {
	case ProxyNone:
		return "none"
	case ProxyV1:
		return "v1"
	case ProxyV2:
		return "v2"
	}
	return "ProxyProto(" + strconv.Itoa(int(p)) + ")"
}

// ParseProxyProto parses "none" (or ""), "v1" or "v2".
func ParseProxyProto(s string) (ProxyProto, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return ProxyNone, nil
	case "v1", "1":
		return ProxyV1, nil
	case "v2", "2":
		return ProxyV2, nil
	}
	return ProxyNone, fmt.Errorf("proxy: unknown PROXY protocol version %q (want none, v1 or v2)", s)
}

// ProxyHeader is a parsed PROXY protocol header.
type ProxyHeader struct {
	Version int  // 1 or 2
	Local   bool // v2 LOCAL, v1 UNKNOWN, or an address family we do not relay: use the socket's addresses
	Src     netip.AddrPort
	Dst     netip.AddrPort
}

var (
	// ErrProxyIncomplete reports that the bytes are a valid prefix of a header: read more.
	ErrProxyIncomplete = errors.New("proxy header: incomplete")
	// errNotProxy reports that the bytes cannot start a PROXY header.
	errNotProxy = errors.New("proxy header: missing")
)

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	proxyV1Max = 107  // the longest v1 line, CRLF included (spec §2.1)
	proxyV2Max = 4096 // we refuse larger v2 headers (TLVs), like HAProxy's buffer-bound limit
)

// ParseProxyHeader parses one PROXY v1 or v2 header at the start of b. It
// returns the header and its length in bytes. ErrProxyIncomplete means b is a
// valid but truncated header; any other error means the peer must be dropped.
func ParseProxyHeader(b []byte) (ProxyHeader, int, error) {
	if len(b) == 0 {
		return ProxyHeader{}, 0, ErrProxyIncomplete
	}
	if b[0] == 'P' {
		return parseProxyV1(b)
	}
	if b[0] == '\r' {
		return parseProxyV2(b)
	}
	return ProxyHeader{}, 0, errNotProxy
}

func parseProxyV1(b []byte) (ProxyHeader, int, error) {
	const prefix = "PROXY "
	n := min(len(b), len(prefix))
	if string(b[:n]) != prefix[:n] {
		return ProxyHeader{}, 0, errNotProxy
	}
	end := bytes.IndexByte(b[:min(len(b), proxyV1Max)], '\n')
	if end < 0 {
		if len(b) >= proxyV1Max {
			return ProxyHeader{}, 0, errors.New("proxy v1: line too long")
		}
		if i := bytes.IndexByte(b, '\r'); i >= 0 && i != len(b)-1 {
			return ProxyHeader{}, 0, errors.New("proxy v1: bare CR")
		}
		return ProxyHeader{}, 0, ErrProxyIncomplete
	}
	if end == 0 || b[end-1] != '\r' {
		return ProxyHeader{}, 0, errors.New("proxy v1: line not ended by CRLF")
	}
	line := b[len(prefix) : end-1]
	h := ProxyHeader{Version: 1}
	fields := bytes.Split(line, []byte{' '})
	switch string(fields[0]) {
	case "UNKNOWN":
		// Anything may follow UNKNOWN; the receiver ignores it (spec §2.1).
		for _, c := range line {
			if c < 0x20 || c == 0x7f {
				return ProxyHeader{}, 0, errors.New("proxy v1: control character")
			}
		}
		h.Local = true
		return h, end + 1, nil
	case "TCP4", "TCP6":
	default:
		return ProxyHeader{}, 0, fmt.Errorf("proxy v1: bad protocol %q", fields[0])
	}
	if len(fields) != 5 {
		return ProxyHeader{}, 0, errors.New("proxy v1: want 5 fields")
	}
	v6 := string(fields[0]) == "TCP6"
	src, err := parseV1Addr(fields[1], v6)
	if err != nil {
		return ProxyHeader{}, 0, err
	}
	dst, err := parseV1Addr(fields[2], v6)
	if err != nil {
		return ProxyHeader{}, 0, err
	}
	sp, err := parseV1Port(fields[3])
	if err != nil {
		return ProxyHeader{}, 0, err
	}
	dp, err := parseV1Port(fields[4])
	if err != nil {
		return ProxyHeader{}, 0, err
	}
	h.Src = netip.AddrPortFrom(src, sp)
	h.Dst = netip.AddrPortFrom(dst, dp)
	return h, end + 1, nil
}

func parseV1Addr(f []byte, v6 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(f))
	if err != nil || a.Zone() != "" || a.Is6() != v6 {
		return netip.Addr{}, fmt.Errorf("proxy v1: bad address %q", f)
	}
	return a, nil
}

func parseV1Port(f []byte) (uint16, error) {
	if len(f) == 0 || len(f) > 5 || (len(f) > 1 && f[0] == '0') {
		return 0, fmt.Errorf("proxy v1: bad port %q", f)
	}
	v := 0
	for _, c := range f {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("proxy v1: bad port %q", f)
		}
		v = v*10 + int(c-'0')
	}
	if v > 65535 {
		return 0, fmt.Errorf("proxy v1: bad port %q", f)
	}
	return uint16(v), nil
}

func parseProxyV2(b []byte) (ProxyHeader, int, error) {
	n := min(len(b), len(proxyV2Sig))
	if !bytes.Equal(b[:n], proxyV2Sig[:n]) {
		return ProxyHeader{}, 0, errNotProxy
	}
	if len(b) < 16 {
		return ProxyHeader{}, 0, ErrProxyIncomplete
	}
	verCmd, fam := b[12], b[13]
	if verCmd>>4 != 2 {
		return ProxyHeader{}, 0, fmt.Errorf("proxy v2: bad version %d", verCmd>>4)
	}
	cmd := verCmd & 0x0f
	if cmd > 1 {
		return ProxyHeader{}, 0, fmt.Errorf("proxy v2: bad command %d", cmd)
	}
	total := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if total > proxyV2Max {
		return ProxyHeader{}, 0, fmt.Errorf("proxy v2: header too long (%d bytes)", total)
	}
	if len(b) < total {
		return ProxyHeader{}, 0, ErrProxyIncomplete
	}
	body := b[16:total]
	h := ProxyHeader{Version: 2, Local: true}
	var alen int
	switch fam {
	case 0x00: // UNSPEC
	case 0x11, 0x12, 0x21, 0x22, 0x31, 0x32:
		if fam&0x0f == 2 && cmd == 1 {
			return ProxyHeader{}, 0, errors.New("proxy v2: datagram family on a stream listener")
		}
		alen = [...]int{0, 12, 36, 216}[fam>>4]
	default:
		return ProxyHeader{}, 0, fmt.Errorf("proxy v2: bad family 0x%02x", fam)
	}
	if len(body) < alen {
		return ProxyHeader{}, 0, errors.New("proxy v2: address block too short")
	}
	if err := checkTLVs(body[alen:]); err != nil {
		return ProxyHeader{}, 0, err
	}
	if cmd == 1 && (fam == 0x11 || fam == 0x21) {
		h.Local = false
		if fam == 0x11 {
			h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
			h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
		} else {
			h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
			h.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
		}
	}
	return h, total, nil
}

// checkTLVs verifies that the TLV area is a whole sequence of type/length/value.
func checkTLVs(b []byte) error {
	for len(b) > 0 {
		if len(b) < 3 {
			return errors.New("proxy v2: truncated TLV")
		}
		l := 3 + int(binary.BigEndian.Uint16(b[1:3]))
		if len(b) < l {
			return errors.New("proxy v2: TLV overruns header")
		}
		b = b[l:]
	}
	return nil
}

// AppendProxyHeader appends a PROXY header of version v describing a
// connection from src to dst. Mixed families are sent as IPv6 (IPv4-mapped).
// An invalid address pair yields v1 "UNKNOWN" or a v2 LOCAL header.
func AppendProxyHeader(b []byte, v ProxyProto, src, dst netip.AddrPort) []byte {
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	ok := sa.IsValid() && da.IsValid()
	if ok && sa.Is4() != da.Is4() {
		sa, da = netip.AddrFrom16(sa.As16()), netip.AddrFrom16(da.As16())
	}
	switch v {
	case ProxyV1:
		if !ok {
			return append(b, "PROXY UNKNOWN\r\n"...)
		}
		b = append(b, "PROXY TCP4 "...)
		if sa.Is6() {
			b[len(b)-2] = '6'
		}
		b = sa.WithZone("").AppendTo(b)
		b = append(b, ' ')
		b = da.WithZone("").AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(src.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(dst.Port()), 10)
		return append(b, '\r', '\n')
	case ProxyV2:
		b = append(b, proxyV2Sig...)
		if !ok {
			return append(b, 0x20, 0x00, 0, 0)
		}
		if sa.Is4() {
			b = append(b, 0x21, 0x11, 0, 12)
			s, d := sa.As4(), da.As4()
			b = append(b, s[:]...)
			b = append(b, d[:]...)
		} else {
			b = append(b, 0x21, 0x21, 0, 36)
			s, d := sa.As16(), da.As16()
			b = append(b, s[:]...)
			b = append(b, d[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, src.Port())
		return binary.BigEndian.AppendUint16(b, dst.Port())
	}
	return b
}
