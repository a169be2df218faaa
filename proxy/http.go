package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"halb/proxy/balance"
)

const (
	httpReadBuffer  = 16 << 10 // bounds the request line + headers: beyond it 431/414
	httpWriteBuffer = 16 << 10
	httpBodyBuffer  = 64 << 10 // request bodies up to this size are read before forwarding; larger ones stream
	backendIdle     = 3 * time.Second
	maxURI          = 8 << 10 // longer request targets get 414
)

// clientKey identifies a shared backend connection pool.
type clientKey struct {
	addr            netip.AddrPort
	connect, server time.Duration
}

// dialError marks a failure to connect: nothing reached the backend, so the
// request may be redispatched.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// deadlineConn applies an inactivity timeout to each Read and Write, bounded
// by any deadline its user sets, counts bytes, and folds small writes into the
// next read (fold.go).
type deadlineConn struct {
	c       *net.TCPConn
	idle    time.Duration
	rd, wd  time.Time
	in, out *atomic.Uint64
	track   *sync.Map // backend connections: the server's set, for a forced shutdown

	raw      syscall.RawConn // nil: no folding
	foldAll  bool            // fold every small write (backend connections)
	foldOnce bool            // fold the next write (client connections, set per response)
	noFold   bool            // a folded read missed its reply once: fold no more
	mayHold  bool            // owner's view: bytes may be held back
	wrote    bool            // a write since the last read
	op       *foldOp         // allocated at the first folded read
	fmu      sync.Mutex      // guards pending against a flush from another goroutine
	pending  []byte
	pbuf     *[]byte // pending's buffer, from foldBufs
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	now := time.Now()
	t := now.Add(d.idle)
	if !d.rd.IsZero() && d.rd.Before(t) {
		t = d.rd
	}
	var n int
	var err error
	d.wrote = false
	if d.mayHold {
		d.mayHold = false
		var done bool
		if n, err, done = d.foldRead(p, now, t); !done {
			d.c.SetReadDeadline(t)
			n, err = d.readAfterFold(p)
		}
	} else {
		d.c.SetReadDeadline(t)
		n, err = d.c.Read(p)
	}
	if d.in != nil && n > 0 {
		d.in.Add(uint64(n))
	}
	return n, err
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.mayHold {
		d.mayHold = false
		if err := d.flushPending(); err != nil {
			return 0, err
		}
	}
	if d.foldable(len(p)) {
		d.hold(p)
		d.mayHold = true
		return len(p), nil
	}
	t := time.Now().Add(d.idle)
	if !d.wd.IsZero() && d.wd.Before(t) {
		t = d.wd
	}
	d.c.SetWriteDeadline(t)
	n, err := d.c.Write(p)
	if d.out != nil && n > 0 {
		d.out.Add(uint64(n))
	}
	return n, err
}

func (d *deadlineConn) Close() error {
	if d.foldAll {
		d.dropPending() // a request whose response nobody will read is not sent
	} else {
		d.flushPending()
	}
	if d.track != nil {
		d.track.Delete(d)
	}
	return d.c.Close()
}

func (d *deadlineConn) LocalAddr() net.Addr                { return d.c.LocalAddr() }
func (d *deadlineConn) RemoteAddr() net.Addr               { return d.c.RemoteAddr() }
func (d *deadlineConn) SetReadDeadline(t time.Time) error  { d.rd = t; return nil }
func (d *deadlineConn) SetWriteDeadline(t time.Time) error { d.wd = t; return nil }
func (d *deadlineConn) SetDeadline(t time.Time) error {
	d.rd, d.wd = t, t
	return nil
}

// httpConn is the client connection as fasthttp sees it.
type httpConn struct {
	deadlineConn
	se      *session
	remote  net.Addr
	local   net.Addr
	private map[*balance.Backend]*fasthttp.HostClient // send-proxy backends: not shared
	tunnel  chan struct{}                             // set when hijacked; closed when the tunnel ends
	scratch []byte
	bodyBuf []byte
	linger  bool // an error was answered: drain unread input before closing
}

// Close closes the connection; after an error response it first drains
// what the client still sends, briefly, so that the close does not reset
// the connection before the client has read the response.
func (h *httpConn) Close() error {
	h.flushPending()
	if h.linger {
		h.linger = false
		h.c.CloseWrite()
		h.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.CopyN(io.Discard, h.c, 256<<10)
	}
	return h.c.Close()
}

func (h *httpConn) Read(p []byte) (int, error) {
	if len(h.se.prefix) > 0 {
		n := copy(p, h.se.prefix)
		h.se.prefix = h.se.prefix[n:]
		h.in.Add(uint64(n))
		return n, nil
	}
	return h.deadlineConn.Read(p)
}

func (h *httpConn) RemoteAddr() net.Addr { return h.remote }
func (h *httpConn) LocalAddr() net.Addr  { return h.local }

func (svc *service) newHTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      svc.handle,
		ErrorHandler:                 svc.handleParseError,
		ConnState:                    svc.connState,
		Logger:                       fasthttpLogger{svc.log},
		ReadTimeout:                  svc.to.HTTPRequest,
		IdleTimeout:                  svc.to.Client,
		ReadBufferSize:               httpReadBuffer,
		WriteBufferSize:              httpWriteBuffer,
		MaxRequestBodySize:           httpBodyBuffer,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		SecureErrorLogMessage:        false, // handleParseError reads the quoted request head

		DisableHeaderNamesNormalizing: false,
	}
}

type fasthttpLogger struct{ l *zap.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp", zap.String("msg", fmt.Sprintf(format, args...)))
}

func (svc *service) connState(c net.Conn, state fasthttp.ConnState) {
	hc, ok := c.(*httpConn)
	if !ok {
		return
	}
	switch state {
	case fasthttp.StateNew, fasthttp.StateIdle:
		hc.se.setIdle(true)
		if svc.srv.draining.Load() {
			hc.flushPending()
			hc.se.client.Close()
		}
	case fasthttp.StateActive:
		hc.se.setIdle(false)
	}
}

func (svc *service) serveHTTP(se *session) {
	hc := &httpConn{
		deadlineConn: deadlineConn{c: se.client, idle: svc.to.Client, in: &svc.st.bytesIn, out: &svc.st.bytesOut},
		se:           se,
		remote:       net.TCPAddrFromAddrPort(se.src),
		local:        net.TCPAddrFromAddrPort(se.dst),
	}
	hc.raw, _ = se.client.SyscallConn()
	se.mu.Lock()
	se.http = true
	se.hc = hc
	se.mu.Unlock()
	_ = svc.http.ServeConn(hc)
	if hc.tunnel != nil {
		<-hc.tunnel
	}
	for _, c := range hc.private {
		c.CloseIdleConnections()
	}
	se.client.Close()
}

// handleParseError answers requests fasthttp could not parse, with the most
// precise status our own checks find in the request head.
func (svc *service) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	status := fasthttp.StatusBadRequest
	msg := err.Error()
	raw, haveRaw := errContents(msg)
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small) || errors.Is(err, fasthttp.ErrSmallReadBuffer):
		status = fasthttp.StatusRequestHeaderFieldsTooLarge
		if i := strings.Index(msg, `contents: "`); i >= 0 && !strings.Contains(msg[i:], `\n`) {
			status = fasthttp.StatusRequestURITooLong
		}
	case strings.Contains(msg, "unsupported http version"):
		if v, ok := quotedAfter(msg, "unsupported http version "); ok && isHTTPVersion(v) {
			status = fasthttp.StatusHTTPVersionNotSupported
		}
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status = fasthttp.StatusRequestEntityTooLarge
	case isTimeout(err):
		status = fasthttp.StatusRequestTimeout
	case haveRaw:
		line, rest, _ := strings.Cut(raw, "\n")
		http11 := strings.HasSuffix(strings.TrimSuffix(line, "\r"), "HTTP/1.1")
		if i := strings.Index(rest, "\r\n\r\n"); i >= 0 {
			rest = rest[:i+4] // the head only; body bytes may follow
		}
		if chk := checkRequestHeaders([]byte(rest), http11, nil); chk.status != 0 {
			status = chk.status
		} else if strings.Contains(msg, "transfer-encoding") {
			status = fasthttp.StatusNotImplemented
		}
	}
	svc.reject(ctx, headerCheck{status, "unparsable request"}, err)
}

// errContents extracts the request bytes fasthttp quotes in a parse error.
func errContents(msg string) (string, bool) {
	return quotedAfter(msg, "contents: ")
}

func quotedAfter(msg, key string) (string, bool) {
	i := strings.Index(msg, key)
	if i < 0 {
		return "", false
	}
	q, err := strconv.QuotedPrefix(msg[i+len(key):])
	if err != nil {
		return "", false
	}
	v, err := strconv.Unquote(q)
	return v, err == nil
}

// isHTTPVersion reports whether v is syntactically HTTP-version ("HTTP/" DIGIT "." DIGIT).
func isHTTPVersion(v string) bool {
	return len(v) == 8 && v[:5] == "HTTP/" && v[5] >= '0' && v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9'
}

// reject answers a bad request without contacting any backend and closes the connection.
func (svc *service) reject(ctx *fasthttp.RequestCtx, chk headerCheck, err error) {
	ctx.Response.Reset()
	ctx.SetStatusCode(chk.status)
	ctx.SetContentType("text/plain")
	ctx.SetBodyString(fasthttp.StatusMessage(chk.status) + "\n")
	ctx.SetConnectionClose()
	if hc, ok := ctx.Conn().(*httpConn); ok {
		hc.linger = true
	}
	svc.st.errs.Add(1)
	svc.st.req[4+chk.status/500].Add(1)
	if err == nil {
		err = errors.New(chk.reason)
	}
	svc.logRequest(ctx, nil, chk.status, 0, "bad request", err)
}

func isIdempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// handle proxies one request.
func (svc *service) handle(ctx *fasthttp.RequestCtx) {
	hc, ok := ctx.Conn().(*httpConn)
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		return
	}
	hc.foldOnce = false
	h := &ctx.Request.Header
	uri := h.RequestURI()
	if len(uri) > maxURI {
		svc.reject(ctx, headerCheck{fasthttp.StatusRequestURITooLong, "request target too long"}, nil)
		return
	}
	if chk := checkRequestTarget(h.Method(), uri); chk.status != 0 {
		svc.reject(ctx, chk, nil)
		return
	}
	if h.IsConnect() {
		// A reverse proxy does not open tunnels to arbitrary targets.
		svc.reject(ctx, headerCheck{fasthttp.StatusNotImplemented, "CONNECT is not supported"}, nil)
		return
	}
	if p := h.Protocol(); string(p) != "HTTP/1.1" && string(p) != "HTTP/1.0" {
		svc.reject(ctx, headerCheck{fasthttp.StatusHTTPVersionNotSupported, "unsupported HTTP version"}, nil)
		return
	}
	var info headInfo
	if chk := checkRequestHeaders(h.RawHeaders(), h.IsHTTP11(), &info); chk.status != 0 {
		svc.reject(ctx, chk, nil)
		return
	}
	if info.tooMany {
		svc.reject(ctx, headerCheck{fasthttp.StatusBadRequest, "too many Connection tokens"}, nil)
		return
	}
	// The request head is in; from now on the body and the response are
	// governed by the inactivity timeouts, not the request timeout.
	hc.rd = time.Time{}
	clientClose := h.ConnectionClose() || svc.srv.draining.Load()
	upgrade := info.upgradeTok && info.upgrade && h.IsHTTP11()
	for i := range info.nConn {
		if tok := info.connTokens[i]; !protectedHeader(tok) {
			h.DelBytes(tok)
		}
	}
	h.Del("Connection")
	h.Del("Keep-Alive")
	h.Del("Proxy-Connection")
	h.Del("TE")
	if !upgrade {
		h.Del("Upgrade")
	}
	h.ResetConnectionClose()
	hc.scratch = svc.setForwarded(h, hc.se.src.Addr(), hc.scratch)
	if upgrade {
		svc.tunnel(ctx, hc)
		return
	}
	var cb *clientBody
	if ctx.Request.IsBodyStream() {
		// Read the start of a streamed body before choosing a backend: a
		// malformed chunked body is refused without any backend connection.
		if hc.bodyBuf == nil {
			hc.bodyBuf = make([]byte, 16<<10)
		}
		stream := ctx.Request.BodyStream()
		n, err := stream.Read(hc.bodyBuf)
		switch {
		case err == io.EOF:
			ctx.Request.SetBody(hc.bodyBuf[:n])
		case err != nil:
			svc.reject(ctx, headerCheck{fasthttp.StatusBadRequest, "bad request body"}, err)
			return
		default:
			cb = &clientBody{r: io.MultiReader(bytes.NewReader(hc.bodyBuf[:n]), stream)}
			ctx.Request.SetBodyStream(cb, ctx.Request.Header.ContentLength())
		}
	}
	resp := fasthttp.AcquireResponse()
	b, err := svc.roundTrip(ctx, hc, resp)
	if err != nil && cb != nil && cb.err != nil {
		fasthttp.ReleaseResponse(resp) // b, if any, is already released
		svc.reject(ctx, headerCheck{fasthttp.StatusBadRequest, "bad request body"}, cb.err)
		return
	}
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		status := statusFor(err)
		ctx.Response.Reset()
		ctx.SetStatusCode(status)
		ctx.SetContentType("text/plain")
		ctx.SetBodyString(fasthttp.StatusMessage(status) + "\n")
		ctx.SetConnectionClose()
		hc.linger = true // the request body may be unread
		svc.st.errs.Add(1)
		svc.st.req[5].Add(1)
		svc.logRequest(ctx, b, status, 0, "backend error", err)
		return
	}
	rh := &ctx.Response.Header
	resp.Header.CopyTo(rh)
	if v := resp.Header.Peek("Connection"); len(v) > 0 {
		for tok := range bytes.SplitSeq(v, []byte{','}) {
			if tok = trimOWS(tok); len(tok) > 0 && !protectedHeader(tok) {
				rh.DelBytes(tok)
			}
		}
	}
	rh.Del("Connection")
	rh.Del("Keep-Alive")
	rh.Del("Proxy-Connection")
	rh.Del("TE")
	rh.Del("Upgrade")
	rh.ResetConnectionClose()
	if clientClose {
		ctx.SetConnectionClose()
	}
	status := resp.StatusCode()
	if c := status / 100; c >= 1 && c <= 5 {
		svc.st.req[c].Add(1)
	}
	if resp.IsBodyStream() {
		size := resp.Header.ContentLength()
		if size < 0 {
			size = -1
		}
		rb, _ := svc.srv.respBodies.Get().(*respBody)
		if rb == nil {
			rb = new(respBody)
		}
		*rb = respBody{resp: resp, r: resp.BodyStream(), b: b, svc: svc, ctx: ctx, hc: hc}
		if size < 0 && !ctx.Request.Header.IsHTTP11() {
			svc.sendUnframed(ctx, hc, rb)
			return
		}
		ctx.Response.SetBodyStream(rb, size)
		// A small response of known length goes out in one write, and the
		// next thing fasthttp does is read the next request: fold them.
		hc.foldOnce = size >= 0 && size <= foldMax/2
		return
	}
	hc.foldOnce = len(resp.Body()) <= foldMax/2
	ctx.Response.SetBody(resp.Body())
	n := len(resp.Body())
	fasthttp.ReleaseResponse(resp)
	svc.releaseBackend(b)
	svc.logRequest(ctx, b, status, int64(n), "done", nil)
}

// clientBody records a failure to read the client's body, which makes a
// failed forward the client's fault (400), not the backend's.
type clientBody struct {
	r   io.Reader
	err error
}

func (c *clientBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
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

// setForwarded sets X-Forwarded-For, X-Forwarded-Proto and Forwarded:
// appended to a trusted upstream's values, replacing anyone else's.
func (svc *service) setForwarded(h *fasthttp.RequestHeader, ip netip.Addr, buf []byte) []byte {
	trusted := len(svc.spec.TrustedUpstreams) > 0 && inPrefixes(ip, svc.spec.TrustedUpstreams)
	buf = buf[:0]
	if trusted {
		for _, v := range h.PeekAll("X-Forwarded-For") {
			buf = append(append(buf, v...), ", "...)
		}
	}
	buf = ip.AppendTo(buf)
	h.Del("X-Forwarded-For")
	h.SetBytesV("X-Forwarded-For", buf)
	if !trusted || len(h.Peek("X-Forwarded-Proto")) == 0 {
		h.Set("X-Forwarded-Proto", "http")
	}
	buf = buf[:0]
	if trusted {
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
	buf = append(buf, ";proto=http"...)
	h.Del("Forwarded")
	h.SetBytesV("Forwarded", buf)
	return buf
}

func statusFor(err error) int {
	var de *dialError
	switch {
	case errors.Is(err, errNoServer), errors.Is(err, errBackendFull), errors.As(err, &de):
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, fasthttp.ErrTimeout), isTimeout(err):
		return fasthttp.StatusGatewayTimeout
	}
	return fasthttp.StatusBadGateway
}

// roundTrip sends the request to a backend, redispatching to another one
// when the connection cannot be established (nothing was sent). On success
// the returned backend is acquired; on error it is the last one tried (for
// the log), already released.
func (svc *service) roundTrip(ctx *fasthttp.RequestCtx, hc *httpConn, resp *fasthttp.Response) (*balance.Backend, error) {
	pool := svc.spec.Pool
	if pool == nil {
		return nil, errNoServer
	}
	var failedArr [8]*balance.Backend
	failed := failedArr[:0]
	var queueDeadline time.Time
	for attempts := 0; ; {
		b, err := svc.acquire(pool, hc.se.src.Addr(), failed, &queueDeadline)
		if err != nil {
			return nil, err
		}
		if len(ctx.Request.Header.Host()) == 0 {
			ctx.Request.Header.SetHost(b.Addr().String())
		}
		err = svc.hostClient(b, hc).Do(&ctx.Request, resp)
		if err == nil {
			svc.passiveResult(b, true)
			return b, nil
		}
		svc.releaseBackend(b)
		var de *dialError
		if !errors.As(err, &de) {
			return b, fmt.Errorf("proxy: %v: %w", b.Addr(), err)
		}
		svc.passiveResult(b, false)
		failed = append(failed, b)
		attempts++
		if attempts > svc.spec.Retries {
			return b, fmt.Errorf("proxy: %v: %w", b.Addr(), err)
		}
		resp.Reset()
	}
}

// hostClient returns the connection pool for b: shared, or private to the
// client connection when b gets a PROXY header (it describes one client).
func (svc *service) hostClient(b *balance.Backend, hc *httpConn) *fasthttp.HostClient {
	if svc.sendProxyFor(b) != ProxyNone {
		if c := hc.private[b]; c != nil {
			return c
		}
		c := svc.newHostClient(b, hc.se)
		if hc.private == nil {
			hc.private = make(map[*balance.Backend]*fasthttp.HostClient)
		}
		hc.private[b] = c
		return c
	}
	k := clientKey{b.Addr(), svc.to.Connect, svc.to.Server}
	if c, ok := svc.srv.clients.Load(k); ok {
		return c.(*fasthttp.HostClient)
	}
	c, _ := svc.srv.clients.LoadOrStore(k, svc.newHostClient(b, nil))
	return c.(*fasthttp.HostClient)
}

func (svc *service) newHostClient(b *balance.Backend, se *session) *fasthttp.HostClient {
	addr := b.Addr().String()
	d := net.Dialer{Timeout: svc.to.Connect}
	idle := svc.to.Server
	return &fasthttp.HostClient{
		Addr: addr,
		Dial: func(string) (net.Conn, error) {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return nil, &dialError{err}
			}
			tc := c.(*net.TCPConn)
			if se != nil {
				if err := svc.writeProxy(tc, b, se); err != nil {
					tc.Close()
					return nil, &dialError{err}
				}
			}
			dc := &deadlineConn{c: tc, idle: idle, track: &svc.srv.backendConns, foldAll: true}
			dc.raw, _ = tc.SyscallConn()
			svc.srv.backendConns.Store(dc, struct{}{})
			if svc.srv.aborted.Load() { // a forced shutdown is closing them all
				dc.Close()
				return nil, errors.New("proxy: server shut down")
			}
			return dc, nil
		},
		MaxConns:                      math.MaxInt32,
		MaxIdleConnDuration:           backendIdle,
		MaxIdemponentCallAttempts:     2,
		RetryIfErr:                    retryStale,
		ReadBufferSize:                httpReadBuffer,
		WriteBufferSize:               httpWriteBuffer,
		NoDefaultUserAgentHeader:      true,
		DisablePathNormalizing:        true,
		DisableHeaderNamesNormalizing: false,
		StreamResponseBody:            true,
		SecureErrorLogMessage:         true,
	}
}

// retryStale lets fasthttp resend a request once on a reused keep-alive
// connection that turned out dead, only when that is safe: an idempotent
// method without a body (RFC 9110 §9.2.2), and never after a dial error
// (those are redispatched by roundTrip).
func retryStale(req *fasthttp.Request, attempts int, err error) (bool, bool) {
	var de *dialError
	if errors.As(err, &de) || attempts >= 2 || isTimeout(err) || errors.Is(err, fasthttp.ErrTimeout) {
		return false, false // a timed-out request is answered 504, not waited for twice
	}
	cl := req.Header.ContentLength() // -2: no body framing at all
	return false, isIdempotent(req.Header.Method()) && (cl == 0 || cl == -2) && !req.IsBodyStream()
}

// respBody streams a backend response body to the client and releases the
// backend when done.
type respBody struct {
	resp *fasthttp.Response
	r    io.Reader
	b    *balance.Backend
	svc  *service
	ctx  *fasthttp.RequestCtx
	hc   *httpConn
	n    int64
	err  error
}

func (rb *respBody) Read(p []byte) (int, error) {
	n, err := rb.r.Read(p)
	rb.n += int64(n)
	if err != nil && err != io.EOF {
		rb.err = err
	}
	return n, err
}

func (rb *respBody) Close() error {
	if rb.resp == nil {
		return nil // already closed
	}
	err := rb.resp.CloseBodyStream()
	status := rb.resp.StatusCode()
	fasthttp.ReleaseResponse(rb.resp)
	rb.svc.releaseBackend(rb.b)
	cause := "done"
	if rb.err != nil {
		rb.svc.st.errs.Add(1)
		cause = "server error during body"
	}
	svc := rb.svc
	// Per-backend traffic: the request head and body sent, the response body received.
	rb.b.AddBytes(int64(len(rb.ctx.Request.Header.RawHeaders()))+max(int64(rb.ctx.Request.Header.ContentLength()), 0), rb.n)
	svc.logRequest(rb.ctx, rb.b, status, rb.n, cause, rb.err)
	*rb = respBody{}
	svc.srv.respBodies.Put(rb)
	return err
}

func (svc *service) logRequest(ctx *fasthttp.RequestCtx, b *balance.Backend, status int, n int64, cause string, err error) {
	if !svc.srv.shouldLog(svc.log, err != nil) {
		return
	}
	backend := "-"
	if b != nil {
		backend = b.Name()
	}
	client := "-"
	if hc, ok := ctx.Conn().(*httpConn); ok {
		client = hc.se.src.String()
	}
	fields := []zap.Field{
		zap.String("client", client),
		zap.String("backend", backend),
		zap.ByteString("method", ctx.Request.Header.Method()),
		zap.ByteString("uri", ctx.Request.Header.RequestURI()),
		zap.Int("status", status),
		zap.Int64("bytes_out", n),
		zap.Duration("duration", time.Since(ctx.Time())),
		zap.String("termination", cause),
	}
	if err != nil {
		svc.log.Warn("request", append(fields, zap.Error(err))...)
		return
	}
	svc.log.Info("request", fields...)
}

// sendUnframed answers an HTTP/1.0 client, which knows no chunked coding, a
// body of unknown length: the head, then the body as it comes, then close.
func (svc *service) sendUnframed(ctx *fasthttp.RequestCtx, hc *httpConn, rb *respBody) {
	rh := &ctx.Response.Header
	rh.SetContentLength(-2) // identity: neither Content-Length nor Transfer-Encoding
	rh.SetConnectionClose()
	head := append([]byte(nil), rh.Header()...)
	done := make(chan struct{})
	hc.tunnel = done
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer close(done)
		hc.flushPending()
		if _, err := c.Write(head); err == nil {
			if _, err := io.Copy(c, rb); err != nil && rb.err == nil {
				rb.err = err
			}
		}
		rb.Close()
	})
}

// tunnel forwards an Upgrade request (WebSocket) to a backend and then
// relays bytes both ways until either side closes.
func (svc *service) tunnel(ctx *fasthttp.RequestCtx, hc *httpConn) {
	if cl := ctx.Request.Header.ContentLength(); cl > 0 || cl == -1 {
		svc.reject(ctx, headerCheck{fasthttp.StatusBadRequest, "upgrade request with a body"}, nil)
		return
	}
	b, bc, err := svc.connect(hc.se, svc.spec.Pool)
	if err != nil {
		status := statusFor(err)
		if !errors.Is(err, errNoServer) && !errors.Is(err, errBackendFull) {
			status = fasthttp.StatusServiceUnavailable
		}
		ctx.SetStatusCode(status)
		ctx.SetBodyString(fasthttp.StatusMessage(status) + "\n")
		ctx.SetConnectionClose()
		svc.st.errs.Add(1)
		svc.st.req[5].Add(1)
		svc.logRequest(ctx, nil, status, 0, "backend error", err)
		return
	}
	ctx.Request.Header.Set("Connection", "Upgrade")
	head := ctx.Request.Header.Header()
	bc.SetWriteDeadline(time.Now().Add(svc.to.Server))
	if _, err := bc.Write(head); err != nil {
		bc.Close()
		svc.releaseBackend(b)
		ctx.SetStatusCode(fasthttp.StatusBadGateway)
		ctx.SetConnectionClose()
		svc.st.errs.Add(1)
		svc.st.req[5].Add(1)
		svc.logRequest(ctx, b, fasthttp.StatusBadGateway, 0, "backend write error", err)
		return
	}
	if !hc.se.setBackend(bc) {
		bc.Close()
		svc.releaseBackend(b)
		return
	}
	svc.st.req[1].Add(1)
	svc.logRequest(ctx, b, fasthttp.StatusSwitchingProtocols, 0, "upgrade", nil)
	done := make(chan struct{})
	hc.tunnel = done
	hc.idle = svc.to.Tunnel
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer close(done)
		defer svc.releaseBackend(b)
		hc.flushPending() // the raw socket is used below
		var act atomic.Int64
		act.Store(time.Now().UnixNano())
		errc := make(chan error, 1)
		go func() {
			_, err := copyGeneric(bc, c, svc.to.Tunnel, &act)
			if err != nil {
				hc.c.Close()
				bc.Close()
			}
			errc <- err
		}()
		// Backend to client: splice to the raw socket; fasthttp has
		// nothing left to write on it.
		_, err := copyDir(hc.c, bc, svc.to.Tunnel, &act, &svc.st.bytesOut)
		if err != nil {
			hc.c.Close()
			bc.Close()
		}
		<-errc
		hc.c.Close()
		bc.Close()
	})
}

// copyGeneric copies a (possibly buffered, hijacked) client connection to
// the backend. src applies the inactivity deadline on each read.
func copyGeneric(dst *net.TCPConn, src net.Conn, idle time.Duration, act *atomic.Int64) (int64, error) {
	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			dst.SetWriteDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
			act.Store(time.Now().UnixNano())
		}
		switch {
		case err == nil:
		case err == io.EOF:
			dst.CloseWrite()
			return total, nil
		case isTimeout(err) && time.Since(time.Unix(0, act.Load())) < idle:
		default:
			return total, err
		}
	}
}
