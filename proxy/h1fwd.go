package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"halb/proxy/balance"
)

// Forwarding one request: checks and rewrites of its head, the choice of a
// server and of a connection to it, the one retry rule, the response and
// the decision to keep each connection.

// beConn is a server connection, owned by one client connection.
type beConn struct {
	c      *net.TCPConn
	rc     syscall.RawConn
	b      *balance.Backend
	cr     connReader
	nr     rawRead // cr's read of a socket found readable (cr.now)
	w      waiter
	br     *bufio.Reader // while a response is read
	used   time.Time     // end of its last exchange
	served int           // exchanges completed on it
	quietF func(uintptr) // quiet's callback, bound once
	quietQ bool          // ... and its answer
}

func (be *beConn) close() {
	be.c.Close()
}

// outcome of serving one request on a client connection.
type outcome uint8

const (
	keepOpen outcome = iota
	closeConn
	handedOff // the connection became a tunnel
)

// proxy forwards a parsed request and relays the response.
func (h *h1conn) proxy(rq *h1req) outcome {
	svc := h.svc
	hd := &rq.h
	hd.SetNoDefaultContentType(true)
	if len(hd.RequestURI()) > svc.maxURI {
		return h.rejectOutcome(headerCheck{414, "request target too long"})
	}
	if hd.IsConnect() {
		// A reverse proxy does not open tunnels to arbitrary targets.
		return h.rejectOutcome(headerCheck{501, "CONNECT is not supported"})
	}
	if rq.info.tooMany {
		return h.rejectOutcome(headerCheck{400, "too many Connection tokens"})
	}
	if chk := normalizeTarget(hd); chk.status != 0 {
		return h.rejectOutcome(chk)
	}
	http11 := hd.IsHTTP11()
	clientClose := hd.ConnectionClose() || !http11 || h.h2
	upgrade := rq.info.upgradeTok && rq.info.upgrade && http11
	removeRequestHop(hd, &rq.info, upgrade)
	if rq.info.has&hasUnderscore != 0 {
		dropLookalikes(hd)
	}
	cont := false
	if v := expectField(hd, rq.info.has); len(v) > 0 {
		if !bytes.EqualFold(trimOWS(v), []byte("100-continue")) {
			return h.rejectOutcome(headerCheck{417, "unsupported expectation"})
		}
		cont = http11
		hd.Del("Expect")
	}
	rq.scr, rq.fwd = svc.setForwarded(hd, h.se.src.Addr(), rq.scr, rq.fwd, h.tls, rq.info.has)
	cl := int64(hd.ContentLength()) // -1 chunked, -2 none
	pool := svc.spec.Pool
	if l7 := svc.spec.L7; l7 != nil {
		var o outcome
		var done bool
		if pool, o, done = h.layer7(rq, l7, pool, cl, clientClose); done {
			return o
		}
	}
	if upgrade && (cl > 0 || cl == -1) {
		return h.rejectOutcome(headerCheck{400, "upgrade request with a body"})
	}
	if cont && (cl > 0 || cl == -1) {
		// halb answers the expectation itself, as nginx does: the server
		// gets the body without having been asked.
		if err := h.writeClient([]byte("HTTP/1.1 100 Continue\r\n\r\n"), &h.se.shard.bytesOut); err != nil {
			return closeConn
		}
	}
	if cl == -1 {
		// A malformed chunked body is refused before any server is contacted.
		if err := peekChunkLine(h.br); err != nil {
			if errors.Is(err, errBadChunk) {
				return h.rejectOutcome(headerCheck{400, "bad chunked body"})
			}
			return closeConn
		}
	}
	if upgrade {
		hd.Set("Connection", "Upgrade")
	}
	return h.forward(rq, pool, cl, clientClose, upgrade)
}

// layer7 applies a service's layer-7 settings to a request (l7_*.go): the
// scheme redirect, the request id, the routes (a pool or a redirect), the
// body size limit and the request's header rules. done means the request
// was answered here.
func (h *h1conn) layer7(rq *h1req, l7 *L7Spec, pool *balance.Pool, cl int64, clientClose bool) (*balance.Pool, outcome, bool) {
	hd := &rq.h
	if r := l7.SchemeRedirect; r != nil {
		loc, ok := r.AppendLocation(rq.scr[:0], hd)
		if !ok {
			return nil, h.rejectOutcome(headerCheck{400, "no usable Host for the redirect"}), true
		}
		rq.scr = loc
		return nil, h.redirect(r.Code, loc, clientClose || cl > 0 || cl == -1), true
	}
	if l7.RequestIDs != nil {
		l7.RequestIDs.Ensure(hd, l7.RequestID)
	}
	if l7.Router != nil {
		t, _, ok := l7.Router.Match(hd, h.se.src.Addr())
		switch {
		case ok && t.Redirect != nil:
			return nil, h.redirect(t.Redirect.Code, []byte(t.Redirect.Location), clientClose || cl > 0 || cl == -1), true
		case ok:
			pool = l7.Pools[t.Pool]
		case pool == nil:
			return nil, h.rejectOutcome(headerCheck{404, "no route"}), true
		}
	}
	if BodyTooLarge(hd, l7.MaxBodySize) {
		return nil, h.rejectOutcome(headerCheck{413, "request body over max_body_size"}), true
	}
	l7.Request.Request(hd)
	return pool, keepOpen, false
}

// redirect answers with a redirect; the connection stays open unless the
// request had a body (not read) or asked to close.
func (h *h1conn) redirect(code int, loc []byte, closeAfter bool) outcome {
	sh := h.se.shard
	sh.req[3].Add(1)
	rq := h.req
	out := appendStatusLine(rq.wbuf[:0], code, []byte(fasthttp.StatusMessage(code)))
	out = append(out, "\r\nLocation: "...)
	out = append(out, loc...)
	out = append(out, "\r\nContent-Length: 0\r\n"...)
	if closeAfter {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	rq.wbuf = out[:0]
	h.logRequest(nil, code, 0, "redirect", nil)
	if err := h.writeClient(out, &sh.bytesOut); err != nil || closeAfter {
		h.linger = err == nil
		return closeConn
	}
	return keepOpen
}

func (h *h1conn) rejectOutcome(chk headerCheck) outcome {
	h.reject(chk, nil)
	return closeConn
}

// forward picks a server, sends the request and relays the response. It
// redispatches when a connection cannot be made (nothing was sent), and
// resends once on a new connection only by the stale keep-alive rule: no
// byte of a response came, the connection had served before, the method is
// idempotent, the request has no body (RFC 9110 §9.2.2, RFC 9112 §9.3.1)
// and its client is still there.
func (h *h1conn) forward(rq *h1req, pool *balance.Pool, cl int64, clientClose, upgrade bool) outcome {
	svc := h.svc
	if pool == nil {
		h.se.shard.errs.Add(1)
		h.errorResponse(503, nil, "no server", errNoServer)
		return closeConn
	}
	var failedArr [8]*balance.Backend
	failed := failedArr[:0]
	var queueDeadline time.Time
	src := h.se.src.Addr()
	var pinned *balance.Backend
	rq.cookieHad, rq.cookieID = rq.cookieHad[:0], ""
	if l7 := svc.spec.L7; l7 != nil && l7.Cookie != nil {
		rq.cookieHad = l7.Cookie.Request(&rq.h, rq.cookieHad)
		if len(rq.cookieHad) > 0 {
			pinned = cookieBackend(pool, rq.cookieHad)
		}
	}
	for attempts := 0; ; {
		var b *balance.Backend
		var err error
		now := time.Now()
		if pinned != nil && pinned.Acquire() {
			b = pinned // the server the client's cookie names, while it is up
		} else {
			b, err = svc.acquire(pool, src, failed, &queueDeadline, now)
			if !queueDeadline.IsZero() {
				now = time.Now() // it waited in the queue
			}
		}
		pinned = nil
		if err != nil {
			h.se.shard.errs.Add(1)
			h.errorResponse(503, nil, "no server", err)
			return closeConn
		}
		if len(rq.h.Host()) == 0 {
			rq.h.SetHost(b.Addr().String())
		}
		be, fresh, err := h.backendConn(b, now)
		if err != nil {
			svc.releaseBackend(b)
			svc.passiveResult(b, false)
			failed = append(failed, b)
			attempts++
			if attempts > svc.spec.Retries || len(failed) == cap(failedArr) {
				h.se.shard.errs.Add(1)
				h.errorResponse(503, b, "connect failed", fmt.Errorf("proxy: %v: %w", b.Addr(), err))
				return closeConn
			}
			continue
		}
		if fresh {
			svc.passiveResult(b, true)
			now = time.Now() // the connect took its time
		}
		rq.now = now
		res := h.exchange(rq, be, cl, upgrade)
		if res.err != nil && res.stale && !fresh && cl <= 0 && cl != -1 && isIdempotent(rq.h.Method()) && !h.clientGone() {
			h.dropBackend(be)
			if be, err = h.dial(b); err == nil {
				rq.now = time.Now()
				res = h.exchange(rq, be, cl, upgrade)
			} else {
				res = exchangeResult{err: err}
			}
		}
		o := h.respond(rq, be, b, res, clientClose, upgrade)
		rq.putResp()
		return o
	}
}

// clientGone reports that the client of an HTTP/2 stream reset it or went
// away: what failed on its server connection is not tried again (the abort
// closed that connection; another would send the request a second time for
// nobody).
func (h *h1conn) clientGone() bool {
	st, ok := h.nc.(*h2stream)
	return ok && st.s.Gone()
}

// backendConn returns an idle connection of this client to b, checked, or a
// new one. fresh reports a new connection.
func (h *h1conn) backendConn(b *balance.Backend, now time.Time) (*beConn, bool, error) {
	if h.shared != nil {
		if be := h.shared.take(b); be != nil {
			h.mu.Lock()
			h.bes[0], be = be, h.bes[0] // a stream holds at most a few; the displaced one closes
			h.mu.Unlock()
			if be != nil {
				be.close()
			}
		}
	}
	for _, be := range h.bes {
		if be == nil || be.b != b {
			continue
		}
		if now.Sub(be.used) < backendIdle && quiet(be) {
			return be, false, nil
		}
		h.dropBackend(be) // closed, aged, or it sent bytes nobody asked for
		break
	}
	be, err := h.dial(b)
	return be, true, err
}

// quiet reports that nothing is waiting on an idle server connection: no
// byte, no end. One MSG_PEEK, without waiting.
func quiet(be *beConn) bool {
	if be.quietF == nil {
		be.quietF = func(fd uintptr) { be.quietQ = peekFD(fd) == unix.EAGAIN }
	}
	be.quietQ = false
	be.rc.Control(be.quietF)
	return be.quietQ
}

// quietConn is quiet for a connection probed rarely (it allocates).
func quietConn(rc syscall.RawConn) bool {
	q := false
	rc.Control(func(fd uintptr) { q = peekFD(fd) == unix.EAGAIN })
	return q
}

// dial opens a connection to b (with its PROXY header) and keeps it.
func (h *h1conn) dial(b *balance.Backend) (*beConn, error) {
	svc := h.svc
	tc, err := dialBackend(b.Addr(), svc.to.Connect)
	if err != nil {
		return nil, &dialError{err}
	}
	if err := svc.writeProxy(tc, b, h.se); err != nil {
		tc.Close()
		return nil, &dialError{err}
	}
	be := &beConn{c: tc, b: b, used: time.Now()}
	be.rc, _ = tc.SyscallConn()
	be.cr = connReader{c: tc, idle: svc.to.Server}
	if be.rc != nil {
		be.nr.rc = be.rc
		be.cr.now = &be.nr
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.se.isClosed() || svc.srv.aborted.Load() {
		tc.Close()
		return nil, errors.New("proxy: server shut down")
	}
	slot, oldest := -1, 0
	for i, o := range h.bes {
		if o == nil {
			slot = i
			break
		}
		if o.used.Before(h.bes[oldest].used) {
			oldest = i
		}
	}
	if slot < 0 {
		slot = oldest
		h.bes[slot].close()
	}
	h.bes[slot] = be
	return be, nil
}

// dropBackend closes a server connection and forgets it.
func (h *h1conn) dropBackend(be *beConn) {
	h.mu.Lock()
	for i, o := range h.bes {
		if o == be {
			h.bes[i] = nil
		}
	}
	h.mu.Unlock()
	if be.br != nil {
		h.svc.respReaders.put(be.br)
		be.br = nil
	}
	be.close()
}

// dialError marks a failure to connect: nothing reached the backend, so the
// request may be redispatched.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// exchangeResult is what sending a request and reading the head of its
// final response gave.
type exchangeResult struct {
	err        error
	stale      bool // nothing of a response came and the connection may have been closed idle
	headLen    int  // the final response head's length in be.br
	clientBody bool // err is the client's (its body), not the server's
	status     int  // for an error: the status to answer (0: the client is gone)
	sentHead   bool // a 1xx was forwarded to the client already
}

// exchange sends the request and its body, and reads response heads until
// a final one (forwarding 1xx to HTTP/1.1 clients).
func (h *h1conn) exchange(rq *h1req, be *beConn, cl int64, upgrade bool) exchangeResult {
	svc := h.svc
	out := rq.h.AppendBytes(rq.wbuf[:0])
	if len(rq.fwd) > 0 || len(rq.raw) > 0 {
		out = append(append(append(out[:len(out)-2], rq.raw...), rq.fwd...), '\r', '\n') // before the head's empty line
	}
	body := int64(0)
	if cl > 0 {
		// The part of the body already read goes out with the head when small.
		if k := min(int64(h.br.Buffered()), cl); k > 0 && len(out)+int(k) <= 32<<10 {
			p, _ := h.br.Peek(int(k))
			out = append(out, p...)
			h.br.Discard(int(k))
			body = k
		}
	}
	rq.wbuf = out[:0]
	// A request that is all in out is written from inside the wait for
	// its response (readable): no probing read before the answer.
	folded := cl <= body && cl != -1
	if !folded {
		if err := writeAllRC(be.c, be.rc, out, svc.to.Server, nil); err != nil {
			return exchangeResult{err: err, stale: body == 0 && cl <= 0}
		}
	}
	var err error
	switch {
	case folded:
	case cl > body:
		_, err = copyBody(&svc.srv.pipes, be.c, h.br, h.nc, cl-body, svc.to.Client, svc.to.Server, nil)
	case cl == -1:
		var limit int64
		if l7 := svc.spec.L7; l7 != nil {
			limit = l7.MaxBodySize
		}
		_, err = relayChunked(be.c, h.br, false, svc.to.Server, limit)
	}
	if err != nil {
		var ce *srcError
		if errors.As(err, &ce) {
			st := 400
			switch {
			case errors.Is(err, errBodyTooLarge):
				st = 413 // the server's connection closes mid-body: it never gets the request whole
			case !errors.Is(err, errBadChunk):
				st = 0 // the client went away or stalled
			}
			return exchangeResult{err: err, clientBody: true, status: st}
		}
		// The server may have answered early (a 413, a redirect): read it.
	}
	sent := false
	for {
		if be.br == nil || be.br.Buffered() == 0 {
			var pending []byte
			if folded {
				pending, folded = out, false
			}
			// The server connection's reader keeps its read deadline, moved
			// only when an eighth of its span has passed (connReader.arm):
			// every reader of it waits for the same timeout server. A
			// request written from inside the wait (folded) has done nothing
			// that waits since forward read the clock.
			if pending != nil {
				be.cr.armAt(rq.now)
			} else {
				be.cr.arm()
			}
			res, unsent, werr := readable(be.c, be.rc, &be.w, 0, pending, true)
			if werr == nil && len(unsent) > 0 {
				if werr = writeAllRC(be.c, be.rc, unsent, svc.to.Server, nil); werr == nil {
					be.cr.arm()
					res, _, _ = readable(be.c, be.rc, &be.w, 0, nil, false)
				}
			}
			if werr != nil {
				return exchangeResult{err: werr, stale: len(unsent) == len(pending) && cl <= 0}
			}
			if res == waitTimeout {
				return exchangeResult{err: errServerTimeout, status: 504, sentHead: sent}
			}
			be.cr.ready = res == waitReady // its deadline was just armed
		}
		if be.br == nil {
			// Taken once the answer is there: the reader given back last,
			// still in the CPU's cache, not one that waited with the request.
			be.br = svc.respReaders.get(&be.cr)
		}
		n, perr := peekHead(be.br)
		if perr != nil {
			res := exchangeResult{err: perr, status: 502, sentHead: sent}
			switch {
			case isTimeout(perr):
				res.status = 504
			case be.br.Buffered() == 0 && !sent:
				res.stale = true // closed (or reset) before any byte of a response
			}
			return res
		}
		raw, _ := be.br.Peek(n)
		if err := parseResponseHead(raw, rq.respHead()); err != nil {
			return exchangeResult{err: err, status: 502, sentHead: sent}
		}
		st := rq.resp.status
		if st >= 200 || st == 101 {
			if st == 101 && !upgrade {
				return exchangeResult{err: errors.New("101 Switching Protocols to a request that did not ask to upgrade"), status: 502, sentHead: sent}
			}
			return exchangeResult{headLen: n, sentHead: sent}
		}
		// 1xx: informational, forwarded to HTTP/1.1 clients (RFC 9110 §15.2).
		if rq.h.IsHTTP11() {
			o := h.appendResponseHead(rq.wbuf[:0], rq.resp, false, false, false)
			rq.wbuf = o[:0]
			if err := h.writeClient(o, &h.se.shard.bytesOut); err != nil {
				return exchangeResult{err: err, clientBody: true}
			}
			sent = true
		}
		be.br.Discard(n)
	}
}

var errServerTimeout = fmt.Errorf("server did not answer in time: %w", errTimeout)
var errTimeout = errors.New("timeout")

// respond relays the final response (or answers the error) and decides the
// fate of both connections.
func (h *h1conn) respond(rq *h1req, be *beConn, b *balance.Backend, res exchangeResult, clientClose, upgrade bool) outcome {
	svc := h.svc
	sh := h.se.shard
	if res.err != nil {
		svc.releaseBackend(b)
		if be != nil {
			h.dropBackend(be)
		}
		sh.errs.Add(1)
		switch {
		case res.status == 0:
			h.logRequest(b, 0, 0, "client error", res.err)
			return closeConn
		case res.sentHead:
			h.broken = true
			h.logRequest(b, res.status, 0, "server error after 1xx", res.err)
			return closeConn
		case res.clientBody:
			h.errorResponse(res.status, b, "bad request body", res.err)
			return closeConn
		}
		cause := "server error"
		if res.status == 504 {
			cause = "server timeout"
		}
		h.errorResponse(res.status, b, cause, fmt.Errorf("proxy: %v: %w", b.Addr(), res.err))
		return closeConn
	}
	r := rq.resp
	head := bytes.Equal(rq.h.Method(), []byte("HEAD"))
	f := responseFraming(head, r)
	http11 := rq.h.IsHTTP11() && !h.h2 // HTTP/2 streams get bodies unchunked
	closeAfter := clientClose || svc.srv.draining.Load()
	if f.kind == bodyUntilClose || (f.kind == bodyChunked && !http11) {
		closeAfter = true
	}
	if f.kind == bodyChunked {
		// The first chunk line is checked before anything is sent: a
		// server that breaks its framing at once gets the client a 502.
		be.br.Discard(res.headLen)
		res.headLen = 0
		if err := peekChunkLine(be.br); err != nil {
			return h.respond(rq, be, b, exchangeResult{err: err, status: 502}, clientClose, upgrade)
		}
	}
	tunnel := r.status == 101
	if l7 := svc.spec.L7; l7 != nil && l7.Cookie != nil {
		rq.cookieID = ServerCookieID(b.Addr())
	}
	var out []byte
	if st, ok := h.nc.(*h2stream); ok {
		// An HTTP/2 stream takes the fields themselves, not a head to parse.
		left := int64(-1)
		switch f.kind {
		case bodyNone:
			left = 0
		case bodyLength:
			left = f.length
		}
		r.h2 = st.prepareHead(r.status, h.responseFields(r, false, f.kind == bodyChunked), left, r.h2)
		out = rq.wbuf[:0]
	} else {
		out = h.appendResponseHead(rq.wbuf[:0], r, tunnel, closeAfter && !tunnel, f.kind == bodyChunked && !http11)
	}
	be.br.Discard(res.headLen)
	class := min(r.status/100, 5)
	sh.req[class].Add(1)
	var n int64
	var err error
	switch {
	case tunnel:
		rq.wbuf = out[:0]
		return h.tunnel(rq, be, b, out)
	case f.kind == bodyNone:
		err = h.writeClient(out, &sh.bytesOut)
	case f.kind == bodyLength && int64(be.br.Buffered()) >= f.length && len(out)+int(f.length) <= 32<<10:
		p, _ := be.br.Peek(int(f.length))
		out = append(out, p...)
		be.br.Discard(int(f.length))
		n = f.length
		if h.holdBack(closeAfter) {
			h.out = out // written by the wait for the next request (lingerWait)
		} else {
			err = h.writeClient(out, &sh.bytesOut)
		}
	default:
		if f.kind == bodyLength {
			// The head and the body bytes already read go in one write;
			// the rest follows (spliced, or through a TLS layer).
			k := int(min(int64(be.br.Buffered()), f.length))
			p, _ := be.br.Peek(k)
			out = append(out, p...)
			be.br.Discard(k)
			n = int64(k)
		}
		if err = h.writeClient(out, &sh.bytesOut); err == nil {
			switch f.kind {
			case bodyLength:
				var m int64
				m, err = copyBody(&svc.srv.pipes, h.nc, be.br, be.c, f.length-n, svc.to.Server, svc.to.Client, &sh.bytesOut)
				n += m
			case bodyChunked:
				n, err = relayChunked(h.nc, be.br, !http11, svc.to.Client, 0)
				sh.bytesOut.Add(uint64(n))
			case bodyUntilClose:
				n, err = copyBody(&svc.srv.pipes, h.nc, be.br, be.c, -1, svc.to.Server, svc.to.Client, &sh.bytesOut)
			}
		}
	}
	if cap(out) > cap(rq.wbuf) {
		rq.wbuf = out[:0]
	}
	reuse := f.reuse && err == nil && be.br.Buffered() == 0
	if err == nil && f.reuse && be.br.Buffered() > 0 {
		svc.log.Warn("server sent bytes after a complete response: connection closed",
			zap.String("backend", b.Name()), zap.Int("bytes", be.br.Buffered()))
	}
	b.AddBytes(int64(len(rq.h.RawHeaders()))+max(int64(rq.h.ContentLength()), 0), n)
	svc.releaseBackend(b)
	if reuse {
		be.served++
		be.used = time.Now()
		svc.respReaders.put(be.br)
		be.br = nil
	} else {
		h.dropBackend(be)
	}
	if err != nil {
		sh.errs.Add(1)
		h.broken = true
		h.logRequest(b, r.status, n, "error during body", err)
		return closeConn
	}
	h.logRequest(b, r.status, n, "done", nil)
	if closeAfter {
		return closeConn
	}
	return keepOpen
}

// holdBack reports whether a whole answer in one buffer may wait to be
// written by the wait for the next request (lingerWait), which saves that
// wait its probe: only on a plaintext connection that stays open and
// has nothing of the next request buffered.
func (h *h1conn) holdBack(closeAfter bool) bool {
	return !closeAfter && h.pkv.rc != nil && !h.tls && !h.h2 &&
		len(h.se.prefix) == 0 && (h.br == nil || h.br.Buffered() == 0)
}

// appendResponseHead writes the head an HTTP/1 client gets: the status line,
// responseFields, and Connection: Upgrade for a tunnel or Connection: close
// when the connection ends after it.
func (h *h1conn) appendResponseHead(dst []byte, r *respHead, tunnel, closeAfter, unchunk bool) []byte {
	dst = appendStatusLine(dst, r.status, r.reason)
	dst = append(dst, '\r', '\n')
	for _, f := range h.responseFields(r, tunnel, unchunk) {
		dst = append(dst, f.name...)
		dst = append(dst, ':', ' ')
		dst = append(dst, f.value...)
		dst = append(dst, '\r', '\n')
	}
	switch {
	case tunnel:
		dst = append(dst, "Connection: Upgrade\r\n"...)
	case closeAfter:
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, '\r', '\n')
}

// responseFields lists the fields the client gets, in order: the server's
// less the hop-by-hop ones (a tunnel keeps Upgrade), those its Connection
// field names and those a response rule replaces; Set-Cookie rewritten for
// persistence_cookie rewrite and prefix, and for a client that cannot take
// chunked coding (unchunk) no Transfer-Encoding, Trailer nor Content-Length;
// then the inserted persistence cookie and the rules' set and add fields.
// The list and what it points to are valid until the next call for the
// same request or until the server's buffer is read again.
func (h *h1conn) responseFields(r *respHead, tunnel, unchunk bool) []field {
	rq := h.req
	out := r.out[:0]
	conn := r.conn
	if onlyKeepAlive(conn) {
		conn = nil // the one field it names is hop-by-hop anyway: no look per field
	}
	var rules []HeaderRule
	var ck *CookiePersistence
	if l7 := h.svc.spec.L7; l7 != nil {
		rules = l7.Response.rules
		if rq.cookieID != "" {
			ck = l7.Cookie
		}
	}
	for i := range r.nFields {
		f := r.fields[i]
		if isHopHeader(f.name, tunnel) || listedIn(conn, f.name) || ruleReplaces(rules, f.name) {
			continue
		}
		if ck != nil && ck.Mode != CookieInsert && bytes.EqualFold(f.name, []byte("set-cookie")) {
			if v, ok := rewriteSetCookie(nil, f.value, ck.Name, rq.cookieID, ck.Mode == CookiePrefix); ok {
				f.value = v
			}
		}
		if unchunk && (bytes.EqualFold(f.name, []byte("transfer-encoding")) || bytes.EqualFold(f.name, []byte("trailer")) ||
			bytes.EqualFold(f.name, []byte("content-length"))) {
			continue
		}
		out = append(out, f)
	}
	if ck != nil && ck.Mode == CookieInsert && string(rq.cookieHad) != rq.cookieID {
		v := append(rq.scr[:0], ck.Name...) // scr: the request is out
		v = append(v, '=')
		v = append(v, rq.cookieID...)
		v = append(v, "; Path=/"...)
		rq.scr = v
		out = append(out, field{[]byte("Set-Cookie"), v})
	}
	for _, x := range rules {
		if x.Op == HeaderSet || x.Op == HeaderAdd {
			out = append(out, field{unsafeBytes(x.Name), unsafeBytes(x.Value)})
		}
	}
	r.out = out
	return out
}

// cookieBackend returns the eligible server of pool whose persistence id is
// id, or nil (down, drained, removed: the request is balanced as usual and
// gets a new cookie).
func cookieBackend(pool *balance.Pool, id []byte) *balance.Backend {
	if pool == nil || len(id) != 12 {
		return nil
	}
	return pool.Find(func(b *balance.Backend) bool {
		var buf [12]byte
		return string(appendCookieID(buf[:0], b.Addr())) == string(id)
	})
}

// ruleReplaces reports whether a set or del rule takes name's lines out.
func ruleReplaces(rules []HeaderRule, name []byte) bool {
	for _, x := range rules {
		if x.Op != HeaderAdd && bytes.EqualFold(name, []byte(x.Name)) {
			return true
		}
	}
	return false
}

// onlyKeepAlive reports whether a Connection field's tokens are all
// keep-alive (what most servers send).
func onlyKeepAlive(conn []byte) bool {
	for tok := range bytes.SplitSeq(conn, []byte{','}) {
		if !bytes.EqualFold(trimOWS(tok), []byte("keep-alive")) {
			return false
		}
	}
	return true
}

// listedIn reports whether name is one of the Connection field's tokens
// (not a protected one: framing and routing stay the proxy's business).
func listedIn(conn, name []byte) bool {
	if len(conn) == 0 || protectedHeader(name) {
		return false
	}
	for tok := range bytes.SplitSeq(conn, []byte{','}) {
		if bytes.EqualFold(trimOWS(tok), name) {
			return true
		}
	}
	return false
}

// tunnel answers the 101 and relays both ways (WebSocket) until both close.
func (h *h1conn) tunnel(rq *h1req, be *beConn, b *balance.Backend, head []byte) outcome {
	svc := h.svc
	sh := h.se.shard
	h.mu.Lock()
	for i, o := range h.bes {
		if o == be {
			h.bes[i] = nil
		}
	}
	h.mu.Unlock()
	out := head
	if k := be.br.Buffered(); k > 0 {
		p, _ := be.br.Peek(k)
		out = append(out, p...)
	}
	err := h.writeClient(out, &sh.bytesOut)
	if err == nil && h.br.Buffered() > 0 {
		p, _ := h.br.Peek(h.br.Buffered())
		err = writeAll(be.c, p, svc.to.Tunnel, nil)
	}
	svc.respReaders.put(be.br)
	be.br = nil
	if err != nil {
		be.close()
		svc.releaseBackend(b)
		sh.errs.Add(1)
		h.logRequest(b, 101, 0, "tunnel setup error", err)
		return closeConn
	}
	h.logRequest(b, 101, 0, "upgrade", nil)
	h.release()
	if h.parks {
		h.pkv.forget()
	}
	h.state.Store(h1Closed)
	se := h.se
	se.mu.Lock()
	se.h1 = nil
	se.mu.Unlock()
	if h.tls {
		go func() {
			in, out, err := relayConns(h.nc, be.c, svc.to.Tunnel)
			sh.bytesIn.Add(uint64(in))
			sh.bytesOut.Add(uint64(out))
			b.AddBytes(in, out)
			svc.releaseBackend(b)
			cause := "tunnel closed"
			if err != nil {
				sh.errs.Add(1)
				cause = "tunnel error"
			}
			svc.logSession(se, b, in, out, cause, err)
			se.end()
		}()
		return handedOff
	}
	svc.srv.startPipe(h.se.client, be.c, svc.to.Tunnel, svc.to.Tunnel, &sh.bytesIn, &sh.bytesOut,
		func(p *pipe) bool { return se.setPipe(p, be.c) },
		func(in, out int64, cause string, err error) {
			b.AddBytes(in, out)
			svc.releaseBackend(b)
			if err != nil {
				sh.errs.Add(1)
			}
			svc.logSession(se, b, in, out, "tunnel "+cause, err)
			se.end()
		})
	return handedOff
}

// normalizeTarget refuses credentials in the request (never turned into an
// Authorization header) and turns an absolute-form target into origin-form
// with the authority as Host (RFC 9112 §3.2.2).
func normalizeTarget(hd *fasthttp.RequestHeader) headerCheck {
	if bytes.ContainsAny(hd.Host(), "@/\\?# ") {
		return headerCheck{400, "invalid Host"}
	}
	uri := hd.RequestURI()
	if len(uri) == 0 || uri[0] == '/' || (len(uri) == 1 && uri[0] == '*') {
		return headerCheck{}
	}
	var rest []byte
	switch {
	case len(uri) > 7 && bytes.EqualFold(uri[:7], []byte("http://")):
		rest = uri[7:]
	case len(uri) > 8 && bytes.EqualFold(uri[:8], []byte("https://")):
		rest = uri[8:]
	default:
		return headerCheck{400, "invalid request target"}
	}
	end := bytes.IndexAny(rest, "/?#")
	authority, path := rest, []byte("/")
	if end >= 0 {
		authority = rest[:end]
		if rest[end] == '/' {
			path = rest[end:]
		} else {
			path = append([]byte("/"), rest[end:]...)
		}
	}
	if len(authority) == 0 || bytes.ContainsAny(authority, "@\\ ") {
		return headerCheck{400, "invalid authority in request target"}
	}
	authority = append([]byte(nil), authority...)
	path = append([]byte(nil), path...)
	hd.SetRequestURIBytes(path)
	hd.SetHostBytes(authority)
	return headerCheck{}
}

// expectField returns the request's Expect field, looked up only when the
// head has one (an HTTP/2 stream's never has: its server answers
// 100-continue, and requestFromH2 leaves the field out).
func expectField(hd *fasthttp.RequestHeader, has fieldSet) []byte {
	if has&hasExpect == 0 {
		return nil
	}
	return hd.Peek("Expect")
}

// removeRequestHop removes the hop-by-hop fields of a request (the same
// table as responses) and the ones its Connection field lists.
func removeRequestHop(hd *fasthttp.RequestHeader, info *headInfo, upgrade bool) {
	for i := range info.nConn {
		if tok := info.connTokens[i]; !protectedHeader(tok) {
			hd.DelBytes(tok)
		}
	}
	for i, name := range hopHeaders {
		if upgrade && name == "Upgrade" || info.has&hopBits[i] == 0 {
			continue
		}
		hd.Del(name)
	}
	hd.ResetConnectionClose()
}

// hopBits are hopHeaders' bits in headInfo.has.
var hopBits = [len(hopHeaders)]fieldSet{hasConnection, hasKeepAlive, hasProxyConnection, hasTE, hasUpgrade}

// lookalikes are the fields halb reads or sets; a field whose name is one of
// them with '_' for '-' (Content_Length) is dropped, as nginx does, so that
// no server that folds the two can be told something else.
var lookalikes = [...]string{"content-length", "transfer-encoding", "host", "connection", "upgrade", "te",
	"trailer", "expect", "keep-alive", "proxy-connection", "x-forwarded-for", "x-forwarded-proto",
	"x-forwarded-host", "forwarded", "x-real-ip"}

func dropLookalikes(hd *fasthttp.RequestHeader) {
	var drop [8][]byte
	n := 0
	for k := range hd.All() {
		if n == len(drop) || bytes.IndexByte(k, '_') < 0 {
			continue
		}
		for _, l := range lookalikes {
			if len(k) == len(l) && equalFoldUnderscore(k, l) {
				drop[n] = k
				n++
				break
			}
		}
	}
	for i := range n {
		hd.DelBytes(append([]byte(nil), drop[i]...))
	}
}

// equalFoldUnderscore compares k with l ignoring case, '_' in k matching '-' in l.
func equalFoldUnderscore(k []byte, l string) bool {
	for i := range len(k) {
		c := k[i]
		if c == '_' {
			c = '-'
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != l[i] {
			return false
		}
	}
	return true
}

// protectedHeader reports names that a Connection header may not remove:
// framing and routing stay the proxy's business.
func protectedHeader(name []byte) bool {
	for _, p := range [...]string{"host", "content-length", "transfer-encoding", "close", "keep-alive"} {
		if bytes.EqualFold(name, []byte(p)) {
			return true
		}
	}
	return false
}

func isIdempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// setForwarded sets X-Forwarded-For, X-Forwarded-Proto and Forwarded:
// appended to a trusted upstream's values, replacing anyone else's. When
// no route, request rule or request id of the service names them
// (svc.lateFwd), the client's are deleted from h and halb's are not added
// to it but returned as header lines in fwd, which exchange writes after the
// head: the same request reaches the server without three fields going
// through fasthttp's header (0.6 µs per request in perf samples of HTTP/2,
// most of it cache misses on the header's field slots). Else they are set
// in h, where routes and rules see them. buf is scratch for the values.
func (svc *service) setForwarded(h *fasthttp.RequestHeader, ip netip.Addr, buf, fwd []byte, https bool, has fieldSet) ([]byte, []byte) {
	proto := "http"
	if https {
		proto = "https"
	}
	trusted := len(svc.spec.TrustedUpstreams) > 0 && inPrefixes(ip, svc.spec.TrustedUpstreams)
	buf = buf[:0]
	if trusted && has&hasXFF != 0 {
		for _, v := range h.PeekAll("X-Forwarded-For") {
			buf = append(append(buf, v...), ", "...)
		}
	}
	buf = ip.AppendTo(buf)
	xff := len(buf)
	if trusted && has&hasForwarded != 0 {
		for _, v := range h.PeekAll("Forwarded") {
			buf = append(append(buf, v...), ", "...)
		}
	}
	buf = append(buf, "for="...)
	if ip.Is6() {
		buf = append(buf, "\"["...)
		buf = ip.AppendTo(buf)
		buf = append(buf, "]\""...)
	} else {
		buf = ip.AppendTo(buf)
	}
	buf = append(buf, ";proto="...)
	buf = append(buf, proto...)
	// Theirs stands only when a trusted upstream set a non-empty one.
	setXFP := has&hasXFP == 0 || !trusted || len(h.Peek("X-Forwarded-Proto")) == 0
	if has&hasXFF != 0 {
		h.Del("X-Forwarded-For")
	}
	if has&hasForwarded != 0 {
		h.Del("Forwarded")
	}
	fwd = fwd[:0]
	if !svc.lateFwd {
		h.AddBytesV("X-Forwarded-For", buf[:xff]) // none left: added without a search
		if setXFP {
			h.Set("X-Forwarded-Proto", proto)
		}
		h.AddBytesV("Forwarded", buf[xff:])
		return buf, fwd
	}
	if setXFP && has&hasXFP != 0 {
		h.Del("X-Forwarded-Proto")
	}
	fwd = append(append(append(fwd, "X-Forwarded-For: "...), buf[:xff]...), "\r\n"...)
	if setXFP {
		fwd = append(append(append(fwd, "X-Forwarded-Proto: "...), proto...), "\r\n"...)
	}
	fwd = append(append(append(fwd, "Forwarded: "...), buf[xff:]...), "\r\n"...)
	return buf, fwd
}

// statusFor maps a failure to reach a server to the client's status.
func statusFor(err error) int {
	var de *dialError
	switch {
	case errors.Is(err, errNoServer), errors.Is(err, errBackendFull), errors.As(err, &de):
		return fasthttp.StatusServiceUnavailable
	case isTimeout(err), errors.Is(err, errTimeout):
		return fasthttp.StatusGatewayTimeout
	}
	return fasthttp.StatusBadGateway
}
