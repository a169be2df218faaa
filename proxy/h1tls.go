package proxy

import (
	"bytes"
	"context"
	"errors"
	"halb/proxy/balance"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// TLS termination (tls_certificate) and HTTP/2 to clients (alpn h2).
//
// A TLS connection is served by the same HTTP/1 engine over the *tls.Conn,
// with the same checks, routes and rules; it keeps its goroutine while open
// (crypto/tls reads through a net.Conn and buffers what it decrypted, so the
// descriptor's readiness says nothing), and bodies go through a buffer
// (no splice through TLS).
//
// An HTTP/2 connection is served by x/net/http2 (l7_h2.go). Each stream is
// served by the HTTP/1 engine in the stream's goroutine, as one HTTP/1.1
// request on a connection that closes after it, so that every rule of the
// engine (target checks, routes, header rules, the retry rule) applies to
// HTTP/2 requests unchanged; the engine's client connection is an h2stream,
// which turns the HTTP/1 answer into the stream's response. The streams of
// one connection share its idle server connections (h2conns).

// serveTLSTerminated handshakes, then serves HTTP/1.1 or HTTP/2.
func (svc *service) serveTLSTerminated(h *h1conn, l7 *L7Spec) {
	se := h.se
	cc := newCorkConn(se.client)
	tc, err := Handshake(context.Background(), cc, l7.TLS.Config(), svc.to.HTTPRequest)
	if err != nil {
		se.shard.errs.Add(1)
		se.client.Close()
		svc.logSession(se, nil, 0, 0, "TLS handshake failed", err)
		se.end()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" && svc.h2 != nil {
		cc.cork(svc.to.Client)
		hc := &h2conn{se: se}
		svc.h2.ServeConn(context.WithValue(context.Background(), h2connKey{}, hc), tc)
		hc.conns.close()
		tc.Close()
		se.end()
		return
	}
	h.nc, h.tls = tc, true
	h.firstWait = true
	h.run()
}

// h2conn is what the streams of one HTTP/2 client connection share: its
// session (counters, source address, PROXY header) and its idle server
// connections.
type h2conn struct {
	se    *session
	conns h2conns
}

type h2connKey struct{}

// h2bridge hands HTTP/2 streams to the HTTP/1 engine (H2Forwarder).
type h2bridge struct{ svc *service }

// ForwardH2 serves one stream with the HTTP/1 engine, in the stream's own
// goroutine: the request's fields become a request head, as if parsed, and
// go through the same checks, routes, rules, server choice and retry rule
// as an HTTP/1.1 request on a connection that closes after it; the engine's
// answer is written to the stream by an h2stream.
func (b h2bridge) ForwardH2(w http.ResponseWriter, r *http.Request) {
	svc := b.svc
	hc, _ := r.Context().Value(h2connKey{}).(*h2conn)
	if hc == nil {
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	st := h2streams.Get().(*h2stream)
	st.start(w, r, svc.to.Client)
	h := &h1conn{se: hc.se, svc: svc, nc: st, tls: true, h2: true, shared: &hc.conns}
	rq := h1reqs.Get().(*h1req)
	rq.cr = connReader{c: st, idle: svc.to.Client, ctr: &hc.se.shard.bytesIn, prefix: &st.prefix}
	rq.start = time.Now()
	h.req = rq
	h.br = svc.readers.get(&rq.cr)
	// A stream the client resets (or a connection that ends) stops its
	// exchange: its server connections close, and what waits on them returns.
	stop := context.AfterFunc(r.Context(), h.closeBackends)
	if chk := requestFromH2(&rq.h, r, st); chk.status != 0 {
		h.reject(chk, nil)
	} else {
		h.proxy(rq)
	}
	stop()
	h.dropBackends()
	h.idle()
	broken := h.broken || st.inHead
	st.finish()
	if broken {
		// The response is not whole: the client gets RST_STREAM, not an end.
		panic(http.ErrAbortHandler)
	}
}

// closeBackends closes the server connections of an HTTP/2 stream whose
// client went away.
func (h *h1conn) closeBackends() {
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
// request head. x/net/http2 has checked the pseudo-headers and refused the
// connection-specific fields (RFC 9113 §8.2.2); the target is checked here
// as for HTTP/1. A body without content-length goes to the server chunked.
func requestFromH2(hd *fasthttp.RequestHeader, r *http.Request, st *h2stream) headerCheck {
	if chk := checkRequestTarget([]byte(r.Method), []byte(r.RequestURI)); chk.status != 0 {
		return chk
	}
	hd.SetMethod(r.Method)
	hd.SetRequestURI(r.RequestURI)
	hd.SetHost(r.Host)
	for k, vs := range r.Header {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Expect", "Host":
			continue // framing is set below; x/net/http2 answers 100-continue itself
		}
		for _, v := range vs {
			hd.Add(k, v)
		}
	}
	switch {
	case r.ContentLength > 0:
		hd.SetContentLength(int(r.ContentLength))
	case r.ContentLength < 0:
		hd.SetContentLength(-1)
		st.chunk = true
	case r.Header["Content-Length"] != nil:
		hd.SetContentLength(0)
	}
	return headerCheck{}
}

// h2stream is the engine's client connection for one HTTP/2 stream: reads
// take the request body (chunk-coded when it has no length), and the HTTP/1
// answer the engine writes is turned into the stream's status, fields and
// DATA. Deadlines are not passed to x/net/http2 (each is a message to the
// connection's goroutine); instead a read or write to the stream making no
// progress for the client timeout resets the stream.
type h2stream struct {
	w      http.ResponseWriter
	body   io.ReadCloser
	chunk  bool   // the body goes chunked
	eof    bool   // ... its last chunk is in pend
	pend   []byte // chunk framing and data not yet read
	scr    []byte
	prefix []byte // always empty: the connection's PROXY header was read before TLS
	inHead bool   // no final response head written yet

	idle  time.Duration
	guard *time.Timer
	fired bool // the guard went off: the stream is not pooled again
	mu    sync.Mutex
	done  bool // the handler returned: the guard must not touch w
}

var h2streams = sync.Pool{New: func() any {
	st := &h2stream{}
	st.guard = time.AfterFunc(time.Hour, st.stalled)
	st.guard.Stop()
	return st
}}

func (st *h2stream) start(w http.ResponseWriter, r *http.Request, idle time.Duration) {
	st.mu.Lock()
	st.w, st.body, st.idle, st.done, st.inHead = w, r.Body, idle, false, true
	st.mu.Unlock()
	st.chunk, st.eof, st.pend, st.fired = false, false, nil, false
}

// finish ends the stream's use of w, and pools st unless its guard went off
// (its callback may still be on its way).
func (st *h2stream) finish() {
	st.guard.Stop()
	st.mu.Lock()
	st.w, st.body, st.done = nil, nil, true
	st.mu.Unlock()
	if !st.fired {
		h2streams.Put(st)
	}
}

// arm and disarm bound one read or write of the stream.
func (st *h2stream) arm() { st.guard.Reset(st.idle) }

func (st *h2stream) disarm() {
	if !st.guard.Stop() {
		st.fired = true
	}
}

// stalled resets a stream whose read or write made no progress in time.
func (st *h2stream) stalled() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return
	}
	rc := http.NewResponseController(st.w)
	past := time.Now().Add(-time.Second)
	rc.SetReadDeadline(past)
	rc.SetWriteDeadline(past)
}

func (st *h2stream) Read(p []byte) (int, error) {
	if !st.chunk {
		st.arm()
		n, err := st.body.Read(p)
		st.disarm()
		return n, err
	}
	for len(st.pend) == 0 {
		if st.eof {
			return 0, io.EOF
		}
		if st.scr == nil {
			st.scr = make([]byte, 16<<10)
		}
		const room = 10 // size line: up to 8 hex digits and CRLF
		st.arm()
		n, err := st.body.Read(st.scr[room : len(st.scr)-2])
		st.disarm()
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
// DATA.
func (st *h2stream) Write(p []byte) (int, error) {
	n := len(p)
	st.arm()
	defer st.disarm()
	for st.inHead {
		end := bytes.Index(p, []byte("\r\n\r\n"))
		if end < 0 || len(p) < 12 {
			return 0, errors.New("h2: response head not written whole")
		}
		status := st.header(p[:end+2])
		if status < 100 {
			return 0, errors.New("h2: bad status line")
		}
		st.w.WriteHeader(status)
		p = p[end+4:]
		if status >= 200 {
			st.inHead = false
		} else {
			clear(st.w.Header())
		}
	}
	if len(p) > 0 {
		if _, err := st.w.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// header sets the stream's fields from an HTTP/1 head the engine wrote
// (valid by construction) and returns its status. Fields HTTP/2 forbids are
// left out; no Content-Type is invented where the server sent none.
func (st *h2stream) header(head []byte) int {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	status := 0
	for _, c := range line[9:12] {
		status = status*10 + int(c-'0')
	}
	hdr := st.w.Header()
	hdr["Content-Type"] = nil // x/net/http2 would sniff one
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || h2Forbidden(name) {
			continue
		}
		k := textproto.CanonicalMIMEHeaderKey(string(name))
		hdr[k] = append(hdr[k], string(trimOWS(value)))
	}
	return status
}

// trailer passes a trailer field of the server's chunked body to the stream:
// x/net/http2 sends it in the trailing HEADERS frame (dropping names that
// may not be trailers).
func (st *h2stream) trailer(name, value []byte) {
	if h2Forbidden(name) {
		return
	}
	k := http.TrailerPrefix + textproto.CanonicalMIMEHeaderKey(string(name))
	hdr := st.w.Header()
	hdr[k] = append(hdr[k], string(value))
}

// h2Forbidden reports the connection-specific fields (RFC 9113 §8.2.2): the
// hop-by-hop ones, and the HTTP/1 framing ones.
func h2Forbidden(name []byte) bool {
	return isHopHeader(name, false) || bytes.EqualFold(name, []byte("transfer-encoding")) || bytes.EqualFold(name, []byte("trailer"))
}

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
