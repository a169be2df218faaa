package proxy

import (
	"bytes"
	"errors"
	"strconv"

	"golang.org/x/net/http2/hpack"
)

// Backend responses are parsed here, strictly, and forwarded line by line:
// what the client gets is what the server sent, less the hop-by-hop fields
// and with the framing halb chose. fasthttp's ResponseHeader is not used for
// them: it rewrites Date, reorders fields and accepts what this parser
// refuses (bare LF, obs-fold, several Content-Length).

// respHead is a parsed response head. Its slices point into the buffer the
// head was read into, valid until that buffer is read again.
type respHead struct {
	respInfo
	fields [maxRespFields]field // the first nFields are set
	out    []field              // the fields the client gets (responseFields)
	h2     []hpack.HeaderField  // ... as an HTTP/2 stream's head (h2stream.prepareHead)
}

// respInfo is what a response head says, less its fields: reset whole for
// each response. Of fields only the first nFields are read; those past it
// are left as they were (clearing them cost a tenth of the parse).
type respInfo struct {
	status  int
	http11  bool
	reason  []byte
	nFields int

	cl        int64  // Content-Length, -1 when absent
	te        bool   // a Transfer-Encoding field is present
	chunked   bool   // ... and its final coding is chunked
	connClose bool   // Connection: close (or an HTTP/1.0 response without keep-alive)
	connUpg   bool   // Connection lists upgrade
	conn      []byte // the last Connection field's value
}

type field struct{ name, value []byte }

const maxRespFields = 128

var (
	errRespSyntax = errors.New("malformed response head")
	errRespFields = errors.New("too many response header fields")
)

// parseResponseHead parses a complete head (status line to the empty line,
// CRLF line ends only: the caller has checked for bare LF).
func parseResponseHead(raw []byte, r *respHead) error {
	r.respInfo = respInfo{cl: -1}
	line, rest, ok := bytes.Cut(raw, []byte("\r\n"))
	if !ok || len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return errRespSyntax
	}
	switch line[7] {
	case '1':
		r.http11 = true
	case '0':
	default:
		return errRespSyntax
	}
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return errRespSyntax
		}
	}
	r.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if r.status < 100 {
		return errRespSyntax
	}
	if len(line) > 12 {
		if line[12] != ' ' {
			return errRespSyntax
		}
		r.reason = line[13:]
		for _, c := range r.reason {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return errRespSyntax
			}
		}
	}
	keepAlive := false
	for {
		// Lines end in CRLF: cut at LF, then take the CR off.
		i := bytes.IndexByte(rest, '\n')
		if i < 1 || rest[i-1] != '\r' {
			return errRespSyntax
		}
		line, rest = rest[:i-1], rest[i+1:]
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errRespSyntax // obs-fold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errRespSyntax
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range name {
			if !isTchar(c) {
				return errRespSyntax
			}
		}
		for _, c := range value {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return errRespSyntax
			}
		}
		if r.nFields == maxRespFields {
			return errRespFields
		}
		r.fields[r.nFields] = field{name, value}
		r.nFields++
		switch {
		case len(name) != 14 && len(name) != 17 && len(name) != 10:
			// not one of the three below: most fields
		case bytes.EqualFold(name, []byte("content-length")):
			n, ok := parseContentLength(value)
			if !ok || (r.cl >= 0 && r.cl != n) {
				return errRespSyntax
			}
			r.cl = n
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			r.te = true
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = trimOWS(value[i+1:])
			}
			r.chunked = bytes.EqualFold(last, []byte("chunked"))
		case bytes.EqualFold(name, []byte("connection")):
			r.conn = value
			for tok := range bytes.SplitSeq(value, []byte{','}) {
				tok = trimOWS(tok)
				switch {
				case bytes.EqualFold(tok, []byte("close")):
					r.connClose = true
				case bytes.EqualFold(tok, []byte("keep-alive")):
					keepAlive = true
				case bytes.EqualFold(tok, []byte("upgrade")):
					r.connUpg = true
				}
			}
		}
	}
	if len(rest) != 0 {
		return errRespSyntax
	}
	if !r.http11 && !keepAlive {
		r.connClose = true
	}
	return nil
}

// parseContentLength accepts 1 to 18 digits.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Body kinds of a message.
type bodyKind uint8

const (
	bodyNone       bodyKind = iota
	bodyLength              // Content-Length bytes
	bodyChunked             // chunked coding up to the last chunk and trailers
	bodyUntilClose          // everything until the server closes
)

// framing is the one decision on how a response's body is delimited and
// whether the server connection may carry another request after it (RFC 9112
// §6.3). A connection is reused only after a complete response whose
// framing leaves nothing in doubt; the caller also checks that no byte
// follows it.
type framing struct {
	kind   bodyKind
	length int64
	reuse  bool
}

func responseFraming(head bool, r *respHead) framing {
	f := framing{reuse: !r.connClose}
	switch {
	case head || r.status < 200 || r.status == 204 || r.status == 304:
		f.kind = bodyNone
		// A server that announces a body it may not send (a HEAD answered
		// like a GET, a 204 or 304 with a length) may send it anyway: such a
		// connection is not trusted with another request.
		if r.te || (r.cl > 0 && (head || r.status == 204 || r.status == 304)) {
			f.reuse = false
		}
	case r.te && r.chunked:
		f.kind = bodyChunked
		if r.cl >= 0 {
			f.reuse = false // both: chunked wins, and the connection closes after
		}
	case r.te:
		f.kind, f.reuse = bodyUntilClose, false
	case r.cl >= 0:
		f.kind, f.length = bodyLength, r.cl
	default:
		f.kind, f.reuse = bodyUntilClose, false
	}
	return f
}

// hopHeaders are removed when a message crosses the proxy, both ways, with
// the fields that its Connection header lists (removeHopByHop). Framing
// fields (Content-Length, Transfer-Encoding) are the framing code's.
var hopHeaders = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Upgrade"}

// isHopHeader reports whether name is in hopHeaders, or (upgrade false) also
// when it is Upgrade, whose fate depends on the exchange.
func isHopHeader(name []byte, keepUpgrade bool) bool {
	switch len(name) { // the lengths of hopHeaders' names: most fields compare none
	case 2, 7, 10, 16:
	default:
		return false
	}
	for _, h := range hopHeaders {
		if bytes.EqualFold(name, []byte(h)) {
			return !(keepUpgrade && h == "Upgrade")
		}
	}
	return false
}

// appendStatusLine writes the status line the client gets: always
// HTTP/1.1 (RFC 9110 §6.2: a server sends its own version), with the
// server's code and reason.
func appendStatusLine(dst []byte, status int, reason []byte) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	return append(dst, reason...)
}
