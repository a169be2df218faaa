package proxy

import (
	"bytes"

	"golang.org/x/net/http/httpguts"
)

// Strict request validation. fasthttp parses the request; these checks run
// on its raw header block before any backend is contacted and reject what a
// lenient parser (ours or a backend's) could read differently: the classic
// request smuggling vectors.

// headerCheck is the verdict on a request head: status 0 means acceptable.
type headerCheck struct {
	status int
	reason string
}

// isTchar reports whether c is a token character (RFC 9110 §5.6.2).
func isTchar(c byte) bool { return httpguts.IsTokenRune(rune(c)) }

// headInfo collects what the proxy needs from the raw header block.
type headInfo struct {
	connTokens [8][]byte // tokens of Connection (slices of the raw block)
	nConn      int
	tooMany    bool // more Connection tokens than connTokens holds
	upgradeTok bool // Connection lists "upgrade"
	upgrade    bool // an Upgrade header is present
	has        fieldSet
}

// fieldSet says which of the fields the proxy removes or replaces a request
// head has: where one is absent, its delete (a walk of all the fields) is
// skipped. The set may say more than the head has, never less
// (FuzzCheckRequestHeaders holds it to fasthttp's parse of the same head).
type fieldSet uint16

const (
	hasConnection fieldSet = 1 << iota
	hasKeepAlive
	hasProxyConnection
	hasTE
	hasUpgrade
	hasExpect
	hasXFF
	hasXFP
	hasForwarded
	hasUnderscore // a name with '_' (dropLookalikes)
)

var fieldBits = [...]struct {
	name string
	bit  fieldSet
}{
	{"Connection", hasConnection}, {"Keep-Alive", hasKeepAlive}, {"Proxy-Connection", hasProxyConnection},
	{"TE", hasTE}, {"Upgrade", hasUpgrade}, {"Expect", hasExpect}, {"X-Forwarded-For", hasXFF},
	{"X-Forwarded-Proto", hasXFP}, {"Forwarded", hasForwarded},
}

// fieldBit returns the bits name sets.
func fieldBit(name []byte) fieldSet {
	var b fieldSet
	if bytes.IndexByte(name, '_') >= 0 {
		b = hasUnderscore
	}
	switch len(name) { // the lengths of fieldBits' names: most fields compare none
	case 2, 6, 7, 9, 10, 15, 16, 17:
		for _, f := range fieldBits {
			if len(f.name) == len(name) && bytes.EqualFold(name, []byte(f.name)) {
				return b | f.bit
			}
		}
	}
	return b
}

// checkRequestHeaders validates a raw header block (the lines after the
// request line, as read from the wire). http11 tells whether the request
// line said HTTP/1.1. info, if not nil, receives the Connection tokens.
func checkRequestHeaders(raw []byte, http11 bool, info *headInfo) headerCheck {
	var (
		nCL, nTE, nHost int
		te              [8][]byte // transfer codings, in order
		nCodings        int
	)
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		var line []byte
		if i < 0 {
			line, raw = raw, nil
		} else {
			line, raw = raw[:i], raw[i+1:]
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			if len(raw) != 0 {
				return headerCheck{400, "data after end of headers"}
			}
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return headerCheck{400, "obs-fold header continuation"}
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return headerCheck{400, "header line without name"}
		}
		name, value := line[:colon], line[colon+1:]
		for _, c := range name {
			if !isTchar(c) {
				return headerCheck{400, "invalid character in header name"}
			}
		}
		for _, c := range value {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return headerCheck{400, "invalid character in header value"}
			}
		}
		value = trimOWS(value)
		if info != nil {
			info.has |= fieldBit(name)
		}
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			nCL++
			if nCL > 1 {
				return headerCheck{400, "duplicate Content-Length"}
			}
			if len(value) == 0 || len(value) > 18 {
				return headerCheck{400, "invalid Content-Length"}
			}
			for _, c := range value {
				if c < '0' || c > '9' {
					return headerCheck{400, "invalid Content-Length"}
				}
			}
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			nTE++
			for tok := range bytes.SplitSeq(value, []byte{','}) {
				tok = trimOWS(tok)
				if len(tok) == 0 {
					continue
				}
				if nCodings == len(te) {
					return headerCheck{400, "too many transfer codings"}
				}
				te[nCodings] = tok
				nCodings++
			}
		case info != nil && bytes.EqualFold(name, []byte("connection")):
			for tok := range bytes.SplitSeq(value, []byte{','}) {
				tok = trimOWS(tok)
				switch {
				case len(tok) == 0:
				case bytes.EqualFold(tok, []byte("upgrade")):
					info.upgradeTok = true
				case info.nConn == len(info.connTokens):
					info.tooMany = true
				default:
					info.connTokens[info.nConn] = tok
					info.nConn++
				}
			}
		case info != nil && bytes.EqualFold(name, []byte("upgrade")):
			info.upgrade = true
		case bytes.EqualFold(name, []byte("host")):
			nHost++
			if nHost > 1 {
				return headerCheck{400, "duplicate Host"}
			}
		}
	}
	if nTE > 0 {
		if nCL > 0 {
			return headerCheck{400, "Content-Length with Transfer-Encoding"}
		}
		if !http11 {
			return headerCheck{400, "Transfer-Encoding in HTTP/1.0 request"}
		}
		if nCodings == 0 {
			return headerCheck{400, "empty Transfer-Encoding"}
		}
		for i := range nCodings {
			c := te[i]
			chunked := bytes.EqualFold(c, []byte("chunked"))
			if chunked && i != nCodings-1 {
				return headerCheck{400, "chunked is not the final transfer coding"}
			}
			if !chunked && !knownCoding(c) {
				return headerCheck{501, "unknown transfer coding"}
			}
		}
		if !bytes.EqualFold(te[nCodings-1], []byte("chunked")) {
			return headerCheck{400, "Transfer-Encoding does not end in chunked"}
		}
	}
	if http11 && nHost == 0 {
		return headerCheck{400, "missing Host"}
	}
	return headerCheck{}
}

func knownCoding(c []byte) bool {
	for _, k := range [...]string{"gzip", "x-gzip", "deflate", "compress", "x-compress"} {
		if bytes.EqualFold(c, []byte(k)) {
			return true
		}
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// checkRequestTarget validates the method token and the request-target.
func checkRequestTarget(method, uri []byte) headerCheck {
	if len(method) == 0 {
		return headerCheck{400, "empty method"}
	}
	for _, c := range method {
		if !isTchar(c) {
			return headerCheck{400, "invalid method"}
		}
	}
	if len(uri) == 0 {
		return headerCheck{400, "empty request target"}
	}
	for _, c := range uri {
		if c <= 0x20 || c >= 0x7f {
			return headerCheck{400, "invalid character in request target"}
		}
	}
	return headerCheck{}
}
