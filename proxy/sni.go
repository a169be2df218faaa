package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// TLS ClientHello parsing for SNI routing, written by hand with explicit
// bounds checks (golang.org/x/crypto/cryptobyte is not in the module graph).
// Only what routing needs is decoded; the bytes are forwarded untouched.

// ErrHelloIncomplete reports that the data is a valid prefix of a ClientHello: read more.
var ErrHelloIncomplete = errors.New("tls: client hello incomplete")

const (
	maxTLSRecord = 1 << 14 // plaintext record limit (RFC 8446 §5.1)
	maxHelloSize = 1 << 16 // we refuse larger ClientHello messages
)

// ParseClientHello parses the TLS records at the start of data, which must
// carry a ClientHello handshake message (possibly split across records), and
// returns the lower-cased host_name of its server_name extension ("" if the
// client sent none). It returns ErrHelloIncomplete when more bytes are
// needed, and another error when data is not a well-formed ClientHello.
func ParseClientHello(data []byte) (string, error) {
	var hs []byte // handshake bytes; aliases data when one record holds the message
	single := true
	for off := 0; ; {
		if len(data)-off < 5 {
			if err := checkRecordHeaderPrefix(data[off:]); err != nil {
				return "", err
			}
			return "", ErrHelloIncomplete
		}
		h := data[off : off+5]
		if err := checkRecordHeaderPrefix(h); err != nil {
			return "", err
		}
		rlen := int(binary.BigEndian.Uint16(h[3:5]))
		if rlen == 0 || rlen > maxTLSRecord {
			return "", fmt.Errorf("tls: bad record length %d", rlen)
		}
		if len(data)-off-5 < rlen {
			return "", ErrHelloIncomplete
		}
		frag := data[off+5 : off+5+rlen]
		off += 5 + rlen
		if hs == nil {
			hs = frag
		} else {
			if single {
				hs = append(make([]byte, 0, 2*len(hs)), hs...)
				single = false
			}
			hs = append(hs, frag...)
		}
		if len(hs) < 4 {
			continue
		}
		if hs[0] != 1 {
			return "", fmt.Errorf("tls: handshake type %d is not client_hello", hs[0])
		}
		mlen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
		if mlen > maxHelloSize {
			return "", fmt.Errorf("tls: client hello too large (%d bytes)", mlen)
		}
		if len(hs) < 4+mlen {
			continue
		}
		return parseHelloBody(hs[4 : 4+mlen])
	}
}

func checkRecordHeaderPrefix(h []byte) error {
	if len(h) > 0 && h[0] != 22 {
		return fmt.Errorf("tls: record type %d is not handshake", h[0])
	}
	if len(h) > 1 && h[1] != 3 {
		return fmt.Errorf("tls: bad record version %d.x", h[1])
	}
	if len(h) > 2 && h[2] > 4 {
		return fmt.Errorf("tls: bad record version 3.%d", h[2])
	}
	return nil
}

// reader is a bounds-checked cursor: every read reports failure instead of panicking.
type reader []byte

func (r *reader) u8() (int, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := (*r)[0]
	*r = (*r)[1:]
	return int(v), true
}

func (r *reader) u16() (int, bool) {
	if len(*r) < 2 {
		return 0, false
	}
	v := binary.BigEndian.Uint16(*r)
	*r = (*r)[2:]
	return int(v), true
}

func (r *reader) bytes(n int) ([]byte, bool) {
	if n < 0 || len(*r) < n {
		return nil, false
	}
	v := (*r)[:n]
	*r = (*r)[n:]
	return v, true
}

// vec reads a vector with an 8- or 16-bit length prefix.
func (r *reader) vec(lenBytes int) (reader, bool) {
	var n int
	var ok bool
	if lenBytes == 1 {
		n, ok = r.u8()
	} else {
		n, ok = r.u16()
	}
	if !ok {
		return nil, false
	}
	b, ok := r.bytes(n)
	return reader(b), ok
}

var errBadHello = errors.New("tls: malformed client hello")

func parseHelloBody(body []byte) (string, error) {
	r := reader(body)
	ver, ok := r.u16()
	if !ok || ver>>8 != 3 {
		return "", errBadHello
	}
	if _, ok := r.bytes(32); !ok { // random
		return "", errBadHello
	}
	sid, ok := r.vec(1)
	if !ok || len(sid) > 32 {
		return "", errBadHello
	}
	suites, ok := r.vec(2)
	if !ok || len(suites) < 2 || len(suites)%2 != 0 {
		return "", errBadHello
	}
	comp, ok := r.vec(1)
	if !ok || len(comp) < 1 {
		return "", errBadHello
	}
	if len(r) == 0 {
		return "", nil // no extensions (TLS 1.0-1.2 allow this)
	}
	exts, ok := r.vec(2)
	if !ok || len(r) != 0 {
		return "", errBadHello
	}
	var seen [64]uint64 // bitmap of extension types 0..4095 seen; others checked by a list
	var seenHigh []int
	name := ""
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec(2)
		if !ok1 || !ok2 {
			return "", errBadHello
		}
		if typ < 64*64 {
			if seen[typ/64]&(1<<(typ%64)) != 0 {
				return "", fmt.Errorf("tls: duplicate extension %d", typ)
			}
			seen[typ/64] |= 1 << (typ % 64)
		} else {
			for _, t := range seenHigh {
				if t == typ {
					return "", fmt.Errorf("tls: duplicate extension %d", typ)
				}
			}
			seenHigh = append(seenHigh, typ)
		}
		if typ != 0 { // server_name
			continue
		}
		var err error
		if name, err = parseServerName(data); err != nil {
			return "", err
		}
	}
	return name, nil
}

func parseServerName(data reader) (string, error) {
	list, ok := data.vec(2)
	if !ok || len(data) != 0 || len(list) == 0 {
		return "", errBadHello
	}
	name := ""
	for len(list) > 0 {
		typ, ok1 := list.u8()
		v, ok2 := list.vec(2)
		if !ok1 || !ok2 {
			return "", errBadHello
		}
		if typ != 0 {
			continue // unknown name types are skipped
		}
		if name != "" {
			return "", errors.New("tls: more than one host_name")
		}
		if !validSNI(v) {
			return "", fmt.Errorf("tls: bad server name %q", []byte(v))
		}
		b := make([]byte, len(v))
		for i, c := range v {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b[i] = c
		}
		name = string(b)
	}
	return name, nil
}

// validSNI accepts DNS host names (letters, digits, '-', '_', dots between
// non-empty labels of at most 63 bytes), no trailing dot (RFC 6066 §3).
func validSNI(b []byte) bool {
	if len(b) == 0 || len(b) > 253 {
		return false
	}
	label := 0
	for _, c := range b {
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return label > 0
}
