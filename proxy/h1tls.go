package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"halb/proxy/balance"
	"io"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// TLS termination (tls_certificate) and HTTP/2 to clients (alpn h2).
//
// A TLS connection is served by the same HTTP/1 engine over the *tls.Conn,
// with the same checks, routes and rules; it keeps its goroutine while open
// (crypto/tls reads through a net.Conn and buffers what it decrypted, so the
// descriptor's readiness says nothing), and bodies go through a buffer
// (no splice through TLS).
//
// An HTTP/2 connection is served by halb's HTTP/2 server (l7_h2.go). Each stream is
// served by the HTTP/1 engine in the stream's goroutine, as one HTTP/1.1
// request on a connection that closes after it, so that every rule of the
// engine (target checks, routes, header rules, the retry rule) applies to
// HTTP/2 requests unchanged; the engine's client connection is an h2stream,
// which turns the HTTP/1 answer into the stream's response. The streams of
// one connection share its idle server connections (h2conns).

// serveTLSTerminated handshakes, then serves HTTP/1.1 or HTTP/2.
func (svc *service) serveTLSTerminated(h *h1conn, l7 *L7Spec) {
	se := h.se
	g := &gatherConn{Conn: se.client, raw: newRawIO(se.client)}
	tc, err := Handshake(context.Background(), g, l7.TLS.Config(), svc.to.HTTPRequest)
	if err != nil {
		se.shard.errs.Add(1)
		se.client.Close()
		svc.logSession(se, nil, 0, 0, "TLS handshake failed", err)
		se.end()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" && svc.h2 != nil {
		hc := &h2conn{se: se}
		svc.h2.ServeConn(tc, g, hc)
		hc.conns.close()
		tc.Close()
		se.end()
		return
	}
	h.nc, h.tls = tlsGather{tc, g}, true
	h.firstWait = true
	h.run()
}

// tlsGather is an HTTP/1.1 client's TLS connection whose every Write goes
// out in one sendto(2), however many records it takes (a 64 KiB body: four).
type tlsGather struct {
	*tls.Conn
	g *gatherConn
}

func (t tlsGather) Write(p []byte) (int, error) { return t.g.writeVia(t.Conn, p) }

// h2conn is what the streams of one HTTP/2 client connection share: its
// session (counters, source address, PROXY header) and its idle server
// connections.
type h2conn struct {
	se    *session
	conns h2conns
}

// h2bridge hands HTTP/2 streams to the HTTP/1 engine (H2Handler).
type h2bridge struct{ svc *service }

// ServeH2 serves one stream with the HTTP/1 engine, in the stream's own
// goroutine: the request's fields become a request head, as if parsed, and
// go through the same checks, routes, rules, server choice and retry rule
// as an HTTP/1.1 request on a connection that closes after it; the engine's
// answer is written to the stream by an h2stream.
func (b h2bridge) ServeH2(s *H2Stream) {
	svc := b.svc
	hc := s.Owner().(*h2conn)
	st := h2streams.Get().(*h2stream)
	st.start(s)
	h := h2Engines.Get().(*h1conn)
	h.se, h.svc, h.nc, h.tls, h.h2, h.shared = hc.se, svc, st, true, true, &hc.conns
	reuse := true
	rq := h1reqs.Get().(*h1req)
	rq.cr = connReader{c: st, idle: svc.to.Client, ctr: &hc.se.shard.bytesIn, prefix: &st.prefix}
	rq.start = time.Now()
	h.req = rq
	if !s.NoBody {
		// Only a body is read through it: a request the HEADERS frame
		// ended takes no reader (each nil h.br is taken where needed).
		h.br = svc.readers.get(&rq.cr)
	}
	// A stream the client resets (or a connection that ends) stops its
	// exchange: its server connections close, and what waits on them returns.
	s.SetAbort(h)
	if s.Truncated {
		h.reject(headerCheck{431, "request head too large"}, nil)
	} else if chk := requestFromH2(&rq.h, &rq.info, &rq.raw, svc.l7Fields, s, st); chk.status != 0 {
		h.reject(chk, nil)
	} else if h.proxy(rq) == handedOff {
		reuse = false // a tunnel keeps h (never for HTTP/2, where a 101 is refused)
	}
	s.SetAbort(nil) // returns once no AbortStream runs: h is the handler's alone again
	h.dropBackends()
	h.idle()
	st.finish(h.broken || st.inHead)
	if reuse {
		*h = h1conn{}
		h2Engines.Put(h)
	}
}

// h2Engines holds the engine records of ended HTTP/2 streams for the next
// ones (one taken anew per stream was cold memory by the time its answer
// came).
var h2Engines = sync.Pool{New: func() any { return new(h1conn) }}

// AbortStream closes the server connections of an HTTP/2 stream whose
// client went away.
func (h *h1conn) AbortStream() {
	h.mu.Lock()
	for i, be := range h.bes {
		if be != nil {
			be.close()
			h.bes[i] = nil
		}
	}
	h.mu.Unlock()
}

// requestFromH2 writes an HTTP/2 request's fields into hd as an HTTP/1.1
// request head. The HTTP/2 server has checked the pseudo-fields and refused
// the connection-specific fields (RFC 9113 §8.2.2); the target is checked
// here as for HTTP/1. Cookie fields are joined into one (§8.2.3). A body
// without content-length goes to the server chunked. info.has notes which
// fields the head got, as checkRequestHeaders does for HTTP/1: none of the
// hop-by-hop ones, so their deletes are skipped.
//
// A field nothing in halb reads or changes (not one of fieldBits' names nor
// a lookalike with '_', not one layer 7 names: named, and not one the
// conversion handles) is not put into hd: it is appended to raw as a header
// line, in the lower case it came in (as HAProxy sends HTTP/2 requests on),
// and goes to the server after the head's fields (exchange). The HTTP/2
// reader refused names that are not lower-case tokens and values with CR,
// LF or NUL, so a line is a line.
func requestFromH2(hd *fasthttp.RequestHeader, info *headInfo, raw *[]byte, named []string, s *H2Stream, st *h2stream) headerCheck {
	*raw = (*raw)[:0]
	if chk := checkRequestTarget(unsafeBytes(s.Method), unsafeBytes(s.Path)); chk.status != 0 {
		return chk
	}
	hd.SetMethod(s.Method)
	hd.SetRequestURI(s.Path)
	host := s.Authority
	var cookie []byte
	*info = headInfo{}
	for _, f := range s.Fields {
		switch f.Name {
		case "content-length", "expect", "te":
			continue // framing is set below; the server answers 100-continue itself
		case "host":
			if host == "" {
				host = f.Value
			}
			continue
		case "cookie":
			if cookie != nil {
				cookie = append(cookie, "; "...)
			}
			cookie = append(cookie, f.Value...)
			continue
		}
		bit := fieldBit(unsafeBytes(f.Name))
		if bit == 0 && (len(named) == 0 || !slices.Contains(named, f.Name)) {
			*raw = append(append(append(append(*raw, f.Name...), ": "...), f.Value...), "\r\n"...)
			continue
		}
		info.has |= bit // of the fields the head gets
		hd.Add(f.Name, f.Value)
	}
	if host != "" {
		hd.SetHost(host)
	}
	if cookie != nil {
		hd.SetBytesV("Cookie", cookie)
	}
	switch {
	case s.ContentLength >= 0:
		hd.SetContentLength(int(s.ContentLength))
	case !s.NoBody:
		hd.SetContentLength(-1)
		st.chunk = true
	}
	return headerCheck{}
}

// h2stream is the engine's client connection for one HTTP/2 stream: reads
// take the request body (chunk-coded when it has no length), and the HTTP/1
// answer the engine writes is turned into the stream's status, fields and
// DATA. Deadlines are kept by the stream itself (a read or write making no
// progress for the client timeout resets it).
type h2stream struct {
	s      *H2Stream
	chunk  bool   // the body goes chunked
	eof    bool   // ... its last chunk is in pend
	pend   []byte // chunk framing and data not yet read
	scr    []byte
	prefix []byte // always empty: the connection's PROXY header was read before TLS
	inHead bool   // no final response head written yet
	left   int64  // body bytes still to come after the head (-1: until finish)
	fields []hpack.HeaderField
	trail  []hpack.HeaderField
	head   []hpack.HeaderField // the final head set by prepareHead, not sent yet (ready)
	ready  bool
}

var h2streams = sync.Pool{New: func() any { return &h2stream{} }}

func (st *h2stream) start(s *H2Stream) {
	st.s, st.inHead, st.left = s, true, -1
	st.chunk, st.eof, st.pend, st.ready, st.head = false, false, nil, false, nil
	st.fields, st.trail = st.fields[:0], st.trail[:0]
}

// finish ends the stream: with RST_STREAM when the response is not whole
// (broken), so the client never takes a short body for a whole one.
func (st *h2stream) finish(broken bool) {
	if broken {
		st.s.Reset()
	} else {
		st.s.End(st.trail)
	}
	st.s, st.head = nil, nil
	clear(st.fields)
	clear(st.trail)
	h2streams.Put(st)
}

func (st *h2stream) Read(p []byte) (int, error) {
	if !st.chunk {
		return st.s.Read(p)
	}
	for len(st.pend) == 0 {
		if st.eof {
			return 0, io.EOF
		}
		if st.scr == nil {
			st.scr = make([]byte, 16<<10)
		}
		const room = 10 // size line: up to 8 hex digits and CRLF
		n, err := st.s.Read(st.scr[room : len(st.scr)-2])
		if n > 0 {
			var line [room]byte
			l := strconv.AppendInt(line[:0], int64(n), 16)
			l = append(l, '\r', '\n')
			from := room - len(l)
			copy(st.scr[from:], l)
			end := room + n
			st.scr[end], st.scr[end+1] = '\r', '\n'
			st.pend = st.scr[from : end+2]
		}
		if err == io.EOF {
			st.eof = true
			st.pend = append(st.pend, "0\r\n\r\n"...) // may grow past scr: rare, once
		} else if err != nil && n == 0 {
			return 0, err
		}
	}
	n := copy(p, st.pend)
	st.pend = st.pend[n:]
	return n, nil
}

// Write takes the engine's answer: heads (written whole, each in one call)
// become the stream's status and fields, what follows the final head its
// DATA. A response whose length is known ends with its last DATA frame.
func (st *h2stream) Write(p []byte) (int, error) {
	n := len(p)
	if st.ready {
		head := st.head
		st.ready, st.inHead, st.head = false, false, nil
		if err := st.s.WriteHead(head, st.left == 0); err != nil {
			return 0, err
		}
	}
	for st.inHead {
		end := bytes.Index(p, []byte("\r\n\r\n"))
		if end < 0 || len(p) < 12 {
			return 0, errors.New("h2: response head not written whole")
		}
		status, noBody := st.header(p[:end+2])
		if status < 100 {
			return 0, errors.New("h2: bad status line")
		}
		p = p[end+4:]
		final := status >= 200
		if final {
			st.inHead = false
			if noBody {
				st.left = 0
			}
		}
		if err := st.s.WriteHead(st.fields, final && st.left == 0); err != nil {
			return 0, err
		}
	}
	if len(p) > 0 {
		if st.left >= 0 {
			if int64(len(p)) > st.left {
				return 0, errors.New("h2: response body longer than its content-length")
			}
			st.left -= int64(len(p))
		}
		if err := st.s.Write(p, st.left == 0); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// prepareHead sets the final response head from the engine's fields
// (responseFields), less those HTTP/2 forbids, built in buf, which it
// returns for the caller to keep until the head is sent: the next Write
// sends it, then its bytes as DATA. left: the body's length, 0 for none, -1
// until finish. The names and values are views of the server's read buffer,
// not copies, and the names in the server's case: the engine calls Write
// before it reads from that server again, and the connection lowers and
// copies what it keeps (h2Conn.own). buf is the response head's (respHead),
// taken once the answer was there, so still in the CPU's cache, where the
// stream's own list waited with the request.
func (st *h2stream) prepareHead(status int, fs []field, left int64, buf []hpack.HeaderField) []hpack.HeaderField {
	buf = append(buf[:0], hpack.HeaderField{Name: ":status", Value: statusText(status)})
	for _, f := range fs {
		if h2Forbidden(f.name) {
			continue
		}
		buf = append(buf, hpack.HeaderField{Name: unsafeString(f.name), Value: unsafeString(f.value)})
	}
	st.head, st.left, st.ready = buf, left, true
	return buf
}

// header sets st.fields from an HTTP/1 head the engine wrote (valid by
// construction) and returns its status, and whether no body follows (by
// content-length 0, 204 or 304, or a HEAD request). Fields HTTP/2 forbids are
// left out; names go in lower case.
func (st *h2stream) header(head []byte) (status int, noBody bool) {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	for _, c := range line[9:12] {
		status = status*10 + int(c-'0')
	}
	st.left = -1
	st.fields = append(st.fields[:0], hpack.HeaderField{Name: ":status", Value: statusText(status)})
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || h2Forbidden(name) {
			continue
		}
		value = trimOWS(value)
		if bytes.EqualFold(name, []byte("content-length")) {
			if n, ok := parseContentLength(value); ok {
				st.left = n
			}
		}
		st.fields = append(st.fields, hpack.HeaderField{Name: lowerName(name), Value: string(value)})
	}
	noBody = status == 204 || status == 304 || st.s.Method == "HEAD"
	return status, noBody
}

// statusText returns the status as a string, without allocating for the common ones.
func statusText(status int) string {
	switch status {
	case 200:
		return "200"
	case 204:
		return "204"
	case 206:
		return "206"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 404:
		return "404"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	}
	return strconv.Itoa(status)
}

// h2Names are common response field names in lower case, to look up
// without allocating.
var h2Names = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"accept-ranges", "age", "cache-control", "content-encoding", "content-language",
		"content-length", "content-range", "content-type", "date", "etag", "expires", "last-modified",
		"location", "server", "set-cookie", "strict-transport-security", "vary", "via", "x-request-id",
		"access-control-allow-origin", "x-content-type-options", "x-frame-options", "retry-after", "link"} {
		m[n] = n
	}
	return m
}()

// lowerName returns name in lower case.
func lowerName(name []byte) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return strings.ToLower(string(name))
	}
	l := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		l[i] = c
	}
	if s, ok := h2Names[string(l)]; ok {
		return s
	}
	return string(l)
}

// trailer passes a trailer field of the server's chunked body to the stream:
// they are sent in the trailing HEADERS frame, less the fields that may not
// be trailers (framing, routing, authentication: httpguts.ValidTrailerHeader).
func (st *h2stream) trailer(name, value []byte) {
	if h2Forbidden(name) || !httpguts.ValidTrailerHeader(textproto.CanonicalMIMEHeaderKey(string(name))) {
		return
	}
	st.trail = append(st.trail, hpack.HeaderField{Name: lowerName(name), Value: string(value)})
}

// h2Forbidden reports the connection-specific fields (RFC 9113 §8.2.2): the
// hop-by-hop ones, and the HTTP/1 framing ones.
func h2Forbidden(name []byte) bool {
	return isHopHeader(name, false) || bytes.EqualFold(name, []byte("transfer-encoding")) || bytes.EqualFold(name, []byte("trailer"))
}

// unsafeBytes returns s's bytes without copying; they must not be written.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// unsafeString is b as a string without a copy: valid only while b's bytes
// stay as they are.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (st *h2stream) Close() error                     { return nil }
func (st *h2stream) LocalAddr() net.Addr              { return nil }
func (st *h2stream) RemoteAddr() net.Addr             { return nil }
func (st *h2stream) SetDeadline(time.Time) error      { return nil }
func (st *h2stream) SetReadDeadline(time.Time) error  { return nil }
func (st *h2stream) SetWriteDeadline(time.Time) error { return nil }

// h2conns are the idle server connections of one HTTP/2 client connection,
// shared by its streams: one client, so nothing one stream's server sends can
// reach another client; without them every stream dialled its server.
type h2conns struct {
	mu     sync.Mutex
	idle   []*beConn
	closed bool
}

const maxH2Idle = 32

// take returns an idle connection to b, or nil.
func (p *h2conns) take(b *balance.Backend) *beConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.idle) - 1; i >= 0; i-- {
		if be := p.idle[i]; be.b == b {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return be
		}
	}
	return nil
}

// put keeps be for a later stream; false: full or closed (the caller closes it).
func (p *h2conns) put(be *beConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= maxH2Idle {
		return false
	}
	p.idle = append(p.idle, be)
	return true
}

// close closes every idle connection; later puts are refused.
func (p *h2conns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, be := range p.idle {
		be.close()
	}
	p.idle = nil
}
