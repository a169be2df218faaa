package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"halb/proxy/balance"
)

// The HTTP/1 engine. A client connection (h1conn) is served by a goroutine
// only while a request is in flight; between requests it parks (park.go)
// and holds no goroutine and no buffer. Request heads are parsed by
// fasthttp's RequestHeader after a strict check of the raw bytes
// (httpcheck.go); response heads by parseResponseHead (h1resp.go); bodies
// are relayed by h1body.go, large ones with splice(2).
//
// Backend connections belong to the client connection that opened them and
// are reused only by its later requests (at most maxBackendConns of them, one
// per server): a response, or stray bytes after one, can never reach another
// client. The first request of a connection opens a server connection, as
// with HAProxy's "http-reuse safe", which shares them between clients for
// later requests; halb never does. docs/dataplane.md explains the choice.

const (
	maxBackendConns = 4                      // idle server connections one client connection keeps
	backendIdle     = 3 * time.Second        // an idle server connection older than this is not reused
	backendHold     = 100 * time.Millisecond // a parked client keeps its server connections this long
	respHeadMax     = 16 << 10               // bounds a response head
	spliceMin       = 16 << 10               // bodies (or rest of bodies) at least this long move by splice
)

// h1conn is one HTTP client connection. Its fields are ordered for size:
// an idle connection costs this record, its session and its socket.
type h1conn struct {
	se          *session
	svc         *service
	nc          net.Conn     // what requests are read from and answers written to: se.client, or TLS over it
	parkedUntil atomic.Int64 // parked: unix nanos when its keep-alive time ends
	shared      *h2conns     // an HTTP/2 stream: its connection's idle server connections
	pkv         parked       // its parking slot when parks; pkv.rc: se.client's raw connection (plaintext only)

	br    *bufio.Reader // while active
	req   *h1req        // while active
	state atomic.Int32  // h1Active, h1Parked, h1Closed

	idleWait  atomic.Bool // TLS: waiting for the next request (a drain may close it)
	tls       bool        // TLS terminated: the connection keeps its goroutine (crypto/tls reads through nc)
	woken     bool        // just woken by the loop: bytes (or an end) are there
	h2        bool        // an HTTP/2 stream (nc is its h2stream)
	broken    bool        // a response was cut short after its head was sent
	linger    bool        // an error was answered: drain unread input before closing
	firstWait bool
	pipelined bool   // the client sent a request before its previous answer was out: always probe
	out       []byte // an answer held back to be written from inside the next wait (respond)
	parks     bool   // registered with the parker (pkv)
	detached  bool   // parked, its descriptor taken from Go's runtime (pkv.detach): se.client and nc are nil

	mu  sync.Mutex // guards bes against abort
	bes [maxBackendConns]*beConn
}

const (
	h1Active int32 = iota
	h1Parked
	h1Closed
)

// h1req is the per-request state, pooled: a parked connection holds none.
type h1req struct {
	cr     connReader // the client connection's reader
	w      waiter     // its waits
	nr     rawRead    // its reads that do not wait (cr.now)
	h      fasthttp.RequestHeader
	resp   *respHead // taken from respHeads when the server's answer is there (exchange), given back after it (forward)
	wbuf   []byte
	scr    []byte
	fwd    []byte // the forwarding fields as header lines, when written after the head (setForwarded)
	raw    []byte // an HTTP/2 request's fields that bypass h, as header lines (requestFromH2)
	method []byte
	uri    []byte
	start  time.Time
	now    time.Time // read at the start of the exchange with a server (forward): for checks a few microseconds do not change
	info   headInfo

	cookieHad []byte // persistence_cookie: the server id the request named
	cookieID  string // ... and the id of the server that answered
}

var h1reqs = sync.Pool{New: func() any { return &h1req{wbuf: make([]byte, 0, 4096)} }}

// respHeads holds parsed response heads apart from their requests: one is
// taken only once a server's answer is readable and given back once it is
// relayed, so that the one taken is the one given back last, still in the
// CPU's cache, rather than one that waited with its request.
var respHeads = sync.Pool{New: func() any { return new(respHead) }}

// respHead returns the request's response head, taking one from respHeads.
func (rq *h1req) respHead() *respHead {
	if rq.resp == nil {
		rq.resp = respHeads.Get().(*respHead)
	}
	return rq.resp
}

// putResp gives the response head back to respHeads.
func (rq *h1req) putResp() {
	if rq.resp != nil {
		clear(rq.resp.out)
		clear(rq.resp.h2)
		respHeads.Put(rq.resp)
		rq.resp = nil
	}
}

// readerPool holds bufio.Readers of one size (max_header_size).
type readerPool struct {
	size int
	p    sync.Pool
}

func (rp *readerPool) get(r io.Reader) *bufio.Reader {
	if v := rp.p.Get(); v != nil {
		br := v.(*bufio.Reader)
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, rp.size)
}

func (rp *readerPool) put(br *bufio.Reader) {
	br.Reset(nil)
	rp.p.Put(br)
}

// connReader reads a connection with an inactivity deadline (or a fixed
// one), counting bytes; it serves the session's read-ahead prefix first.
type connReader struct {
	c       net.Conn
	idle    time.Duration
	fixed   time.Time // non-zero: a hard deadline (a request head)
	set     time.Time // the deadline last given to the socket
	ctr     *atomic.Uint64
	prefix  *[]byte
	short   bool // the last read returned less than asked: the socket is empty
	timeout bool
	// ready: the socket was found readable, so its next read needs no
	// deadline moved: it is made without waiting, through now, and only if
	// it finds nothing does the read wait, under its deadline (without now,
	// a TLS stream's, it reads under the deadline the wait had).
	ready bool
	now   *rawRead
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.prefix != nil && len(*r.prefix) > 0 {
		n := copy(p, *r.prefix)
		*r.prefix = (*r.prefix)[n:]
		return n, nil
	}
	var n int
	var err error
	if r.ready {
		r.ready = false
		if r.now == nil {
			n, err = r.c.Read(p)
			return r.took(p, n, err)
		}
		if n, err = r.now.try(p); n > 0 || err != nil {
			return r.took(p, n, err)
		}
	}
	r.arm()
	n, err = r.c.Read(p)
	return r.took(p, n, err)
}

func (r *connReader) took(p []byte, n int, err error) (int, error) {
	r.short = n < len(p)
	if n > 0 && r.ctr != nil {
		r.ctr.Add(uint64(n))
	}
	if err != nil && isTimeout(err) {
		r.timeout = true
	}
	return n, err
}

// arm moves the read deadline when an eighth of its span has passed.
func (r *connReader) arm() { r.armAt(time.Time{}) }

// armAt is arm with now, a clock reading taken moments before (zero: read
// the clock).
func (r *connReader) armAt(now time.Time) {
	if !r.fixed.IsZero() {
		if !r.set.Equal(r.fixed) {
			r.set = r.fixed
			r.c.SetReadDeadline(r.fixed)
		}
		return
	}
	if now.IsZero() {
		now = time.Now()
	}
	if r.set.Sub(now) < r.idle-r.idle/8 {
		r.set = now.Add(r.idle)
		r.c.SetReadDeadline(r.set)
	}
}

// deadline sets a hard read deadline (zero: back to inactivity).
func (r *connReader) deadline(t time.Time) {
	r.fixed = t
	if t.IsZero() {
		r.set = time.Time{}
	}
}

// writeAll writes p with an inactivity deadline (an HTTP/2 stream keeps its
// own: no clock read for it).
func writeAll(c net.Conn, p []byte, idle time.Duration, ctr *atomic.Uint64) error {
	return writeAllRC(c, nil, p, idle, ctr)
}

// writeAllRC is writeAll with rc, c's raw connection, if c is a plain TCP
// socket: then the writes are raw system calls (writeRC).
func writeAllRC(c net.Conn, rc syscall.RawConn, p []byte, idle time.Duration, ctr *atomic.Uint64) error {
	if _, ok := c.(*h2stream); !ok {
		c.SetWriteDeadline(time.Now().Add(idle))
	}
	var n int
	var err error
	if rc != nil {
		n, err = writeRC(rc, p)
	} else {
		n, err = c.Write(p)
	}
	if n > 0 && ctr != nil {
		ctr.Add(uint64(n))
	}
	return err
}

// writeClient writes p to the client (writeAll), with raw system calls when
// the connection is plaintext HTTP/1.
func (h *h1conn) writeClient(p []byte, ctr *atomic.Uint64) error {
	var rc syscall.RawConn
	if !h.tls && !h.h2 {
		rc = h.pkv.rc
	}
	return writeAllRC(h.nc, rc, p, h.svc.to.Client, ctr)
}

// serveHTTP takes a new client connection.
func (svc *service) serveHTTP(se *session) {
	h := &h1conn{se: se, svc: svc, nc: se.client}
	if l7 := svc.spec.L7; l7 != nil && l7.TLS != nil {
		svc.serveTLSTerminated(h, l7)
		return
	}
	if rc, err := se.client.SyscallConn(); err == nil {
		if svc.srv.parker.register(&h.pkv, rc) == nil {
			h.parks = true
		} else {
			h.pkv.rc = rc
		}
	}
	se.mu.Lock()
	closed := se.closed
	se.h1 = h
	se.mu.Unlock()
	if closed {
		h.finish()
		return
	}
	h.firstWait = true
	h.run()
}

func (h *h1conn) wake() {
	if !h.state.CompareAndSwap(h1Parked, h1Active) {
		return
	}
	if h.detached && !h.attach() {
		h.state.Store(h1Closed)
		h.finish()
		return
	}
	h.woken = true // the loop saw it readable: no probe before reading
	h.run()
}

// expire runs when a parked connection's time in the wheel is up: after
// backendHold it lets its server connections go, detaches its descriptor
// from Go's runtime and parks again for the rest of its keep-alive time;
// then it closes the connection.
func (h *h1conn) expire() {
	h.dropBackends()
	if rest := time.Until(time.Unix(0, h.parkedUntil.Load())); rest > 0 {
		h.detach()
		if h.pkv.park(rest, h) == nil {
			if h.svc.srv.draining.Load() || h.se.isClosed() {
				h.drain() // a Shutdown or forced close that looked while this one was busy
			}
			return
		}
	}
	if h.state.CompareAndSwap(h1Parked, h1Closed) {
		h.finish()
	}
}

// detach takes the descriptor of a connection that stayed idle for
// backendHold away from Go's runtime (parked.detach), unless the session is
// closing; if that fails it stays as it was.
func (h *h1conn) detach() {
	if !h.parks || h.detached || h.pkv.rc == nil {
		return
	}
	se := h.se
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.closed || h.pkv.detach(se.client) != nil {
		return
	}
	se.client, h.nc = nil, nil
	h.detached = true
}

// attach gives a woken detached connection a *net.TCPConn again; false: the
// session is closing, or the descriptor could not be taken back (it is
// closed then).
func (h *h1conn) attach() bool {
	h.detached = false
	c, err := h.pkv.attach()
	if err != nil {
		h.svc.log.Debug("http: reattaching an idle client connection", zap.Error(err))
		return false
	}
	se := h.se
	se.mu.Lock()
	se.client, h.nc = c, c
	closed := se.closed
	se.mu.Unlock()
	return !closed
}

// hasBackends reports whether the connection holds server connections.
func (h *h1conn) hasBackends() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, be := range h.bes {
		if be != nil {
			return true
		}
	}
	return false
}

// drain closes the connection if it is parked; a busy one closes after its response.
func (h *h1conn) drain() {
	if h.tls && h.idleWait.Load() {
		h.nc.Close() // its goroutine sees the close and finishes
		return
	}
	if h.parks && h.pkv.cancel() && h.state.CompareAndSwap(h1Parked, h1Closed) {
		h.finish()
	}
}

// abort closes everything (forced shutdown).
func (h *h1conn) abort() {
	h.se.mu.Lock()
	nc := h.nc // nil while detached
	h.se.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
	h.mu.Lock()
	for _, be := range h.bes {
		if be != nil {
			be.c.Close()
		}
	}
	h.mu.Unlock()
	h.drain()
}

// finish closes the client and its server connections and ends the session.
func (h *h1conn) finish() {
	h.flushOut()
	h.idle()
	if h.linger {
		h.linger = false
		if cw, ok := h.nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		h.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.CopyN(io.Discard, h.nc, 256<<10)
	}
	switch {
	case h.detached:
		h.pkv.closeDetached()
		h.detached = false
	case h.nc == nil: // attach failed: the descriptor is closed
	default:
		if h.parks {
			h.pkv.forget()
		}
		h.nc.Close()
		if !h.h2 {
			h.se.client.Close()
		}
	}
	h.dropBackends()
	h.se.end()
}

// dropBackends closes the idle server connections.
func (h *h1conn) dropBackends() {
	h.mu.Lock()
	for i, be := range h.bes {
		if be != nil {
			if h.shared == nil || !h.shared.put(be) {
				be.close()
			}
			h.bes[i] = nil
		}
	}
	h.mu.Unlock()
}

// release gives the read buffer back to its pool.
func (h *h1conn) release() {
	if h.br != nil {
		h.svc.readers.put(h.br)
		h.br = nil
	}
}

// active takes the per-request state from its pool.
func (h *h1conn) active() *h1req {
	if h.req == nil {
		rq := h1reqs.Get().(*h1req)
		rq.cr = connReader{c: h.nc, idle: h.svc.to.Client, ctr: &h.se.shard.bytesIn, prefix: &h.se.prefix}
		h.req = rq
	}
	return h.req
}

// idle gives the per-request state back (parking, closing).
func (h *h1conn) idle() {
	h.release()
	if h.req != nil {
		h.req.h.Reset()
		h.req.putResp()
		h.req.raw = h.req.raw[:0] // an HTTP/1 request taking this record has none
		if cap(h.req.raw) > 4<<10 {
			h.req.raw = nil
		}
		h.req.cr = connReader{}
		h.req.w = waiter{fn: h.req.w.fn}
		h.req.nr.rc = nil
		h1reqs.Put(h.req)
		h.req = nil
	}
}

// run serves requests until the connection parks or closes.
func (h *h1conn) run() {
	for {
		if h.br == nil || h.br.Buffered() == 0 {
			h.release()
			if !h.waitRequest() {
				return
			}
			h.readyNext()
		} else {
			h.pipelined = true
			if !h.flushOut() {
				h.state.Store(h1Closed)
				h.finish()
				return
			}
		}
		switch h.serveOne() {
		case closeConn:
			h.state.Store(h1Closed)
			h.finish()
			return
		case handedOff:
			return
		}
		if h.svc.srv.draining.Load() {
			h.state.Store(h1Closed)
			h.finish()
			return
		}
	}
}

// readyNext marks the client's socket readable, as waitRequest found it:
// the request's first read does not wait, so it goes without a deadline
// (plaintext only: a TLS connection reads through crypto/tls).
func (h *h1conn) readyNext() {
	if h.tls || h.pkv.rc == nil {
		return
	}
	rq := h.active()
	rq.nr.rc = h.pkv.rc
	rq.cr.now, rq.cr.ready = &rq.nr, true
}

// waitRequest waits for the next request: a little while in this goroutine,
// then parked. It reports whether bytes are there to read; false means the
// connection parked or closed, and this goroutine must let go of it.
func (h *h1conn) waitRequest() bool {
	srv := h.svc.srv
	if len(h.se.prefix) > 0 || h.woken {
		h.woken = false
		return h.flushOut()
	}
	idle := h.svc.to.HTTPKeepAlive
	if h.firstWait {
		idle = h.svc.to.HTTPRequest
	}
	if srv.draining.Load() || h.se.isClosed() {
		h.state.Store(h1Closed)
		h.finish()
		return false
	}
	if h.tls {
		// crypto/tls buffers what it decrypted: wait for a byte through it.
		rq := h.active()
		if h.br == nil {
			h.br = h.svc.readers.get(&rq.cr)
		}
		rq.cr.deadline(time.Now().Add(idle))
		h.idleWait.Store(true)
		_, err := h.br.Peek(1)
		h.idleWait.Store(false)
		rq.cr.deadline(time.Time{})
		if err != nil || srv.draining.Load() {
			h.state.Store(h1Closed)
			h.finish()
			return false
		}
		h.firstWait = false
		return true
	}
	if h.pkv.rc != nil {
		res, ok := h.lingerWait(min(parkAfter, idle))
		if !ok {
			res = waitClosed
		}
		switch res {
		case waitReady:
			h.firstWait = false
			return true
		case waitClosed:
			h.state.Store(h1Closed)
			h.finish()
			return false
		}
		if h.parks {
			// A parked connection keeps its server connections and its
			// *net.TCPConn for backendHold only (expire, detach): a client
			// that comes back at once (256 connections on one core come
			// back every few milliseconds) finds them; kept longer, they
			// would cost a descriptor and a record each for every idle
			// client (halb does not share them between clients), and Go's
			// per-socket state.
			rest := idle - parkAfter
			h.parkedUntil.Store(time.Now().Add(rest).UnixNano())
			rest = min(rest, backendHold)
			h.idle()
			first := h.firstWait
			h.firstWait = false // before parking: the next owner may run at once
			h.state.Store(h1Parked)
			if err := h.pkv.park(rest, h); err == nil {
				if srv.draining.Load() {
					h.drain() // a Shutdown that looked while this one was busy
				}
				return false
			}
			h.state.Store(h1Active)
			h.firstWait = first
		}
	}
	// No parking: wait here for the rest.
	if res, _, _ := readable(h.se.client, h.pkv.rc, &h.active().w, idle, nil, false); res == waitReady {
		h.firstWait = false
		return true
	}
	h.state.Store(h1Closed)
	h.finish()
	return false
}

type waitResult uint8

const (
	waitReady waitResult = iota
	waitTimeout
	waitClosed
)

// readable waits up to d for c to have bytes (or an end) to read, without
// reading them. pending, if any, is written first from inside the wait, after
// the poller has been armed for this wait: with fresh (nothing can be
// waiting on c before pending is sent, as on a server connection before its
// request) the wait then needs no probing read(2), which measured at about one
// per exchange. Otherwise one MSG_PEEK looks first: Go's RawConn.Read
// forgets a readiness that came before it was called.
//
// unsent is what could not be written without blocking; the caller writes it
// and waits again. d 0: the caller has set the read deadline.
func readable(c *net.TCPConn, rc syscall.RawConn, w *waiter, d time.Duration, pending []byte, fresh bool) (res waitResult, unsent []byte, werr error) {
	if rc == nil {
		return waitReady, pending, nil
	}
	if d > 0 {
		c.SetReadDeadline(time.Now().Add(d))
	}
	if w.fn == nil {
		w.fn = w.call
	}
	w.pending, w.fresh, w.calls, w.werr = pending, fresh, 0, nil
	err := rc.Read(w.fn)
	pending, werr = w.pending, w.werr
	w.pending = nil
	switch {
	case werr != nil || len(pending) > 0:
		return waitReady, pending, werr
	case err == nil:
		return waitReady, nil, nil
	case isTimeout(err):
		return waitTimeout, nil, nil
	}
	return waitClosed, nil, nil
}

// waiter is readable's state, one per connection, so that the callback
// handed to RawConn.Read allocates nothing per wait.
type waiter struct {
	pending []byte
	fresh   bool
	calls   int
	werr    error
	ctr     *atomic.Uint64     // counts what is written of pending, if set
	fn      func(uintptr) bool // w.call
}

func (w *waiter) call(fd uintptr) bool {
	w.calls++
	if w.calls > 1 {
		// Called again after the poller reported the descriptor readable:
		// no probe. A spurious report costs nothing more, since the reader
		// that follows waits on its own when read(2) finds nothing.
		return true
	}
	if len(w.pending) > 0 {
		n, err := writeNonblock(fd, w.pending)
		w.pending = w.pending[n:]
		if n > 0 && w.ctr != nil {
			w.ctr.Add(uint64(n))
		}
		if err != nil {
			w.werr = err
			return true
		}
		if len(w.pending) > 0 {
			return true // the caller writes the rest
		}
		if w.fresh {
			return false
		}
	}
	return peekFD(fd) != unix.EAGAIN
}

// readNonblock is one recv(2) of fd, retried when interrupted (EAGAIN: the
// socket holds nothing).
//
// readNonblock, writeNonblock and peekFD are raw system calls: the socket
// never blocks, so the goroutine's P need not be marked as in a system call.
// Marked, a thread the kernel preempts inside the call (a loopback write
// wakes the peer, which often takes the CPU at the call's exit) leaves its P
// "in a system call" long enough for Go's sysmon to hand it to another thread,
// and the preempted thread then parks: futex wake-ups and a sysmon that keeps
// its shortest sleep. recv/send rather than read/write: the kernel's socket
// path without the file-position layer.
func readNonblock(fd uintptr, p []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// writeNonblock writes what of p fd takes without blocking: n bytes, and err
// a failure other than a full socket (EAGAIN ends it with err nil).
func writeNonblock(fd uintptr, p []byte) (n int, err error) {
	for n < len(p) {
		q := p[n:]
		w, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&q[0])), uintptr(len(q)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			n += int(w)
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return n, nil
		}
		return n, e
	}
	return n, nil
}

// peekFD looks for one byte (or an end, or an error) without taking it and
// without waiting: EAGAIN means nothing is there. No allocation, unlike
// unix.Recvfrom.
func peekFD(fd uintptr) syscall.Errno {
	var b [1]byte
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		if e != unix.EINTR {
			return e
		}
	}
}

// lingerWait waits up to d for the client's next request, writing the answer
// held back in h.out first, from inside the wait (readable): the poller is
// armed before the client can have it, so nothing it sends after it can be
// missed and the wait needs no probe, unless the client pipelines (its next
// request may already be on the socket). ok is false when the answer could
// not be written.
func (h *h1conn) lingerWait(d time.Duration) (res waitResult, ok bool) {
	out := h.out
	h.out = nil
	ctr := &h.se.shard.bytesOut
	w := &h.active().w
	w.ctr = ctr
	defer func() { w.ctr = nil }()
	for {
		var unsent []byte
		var werr error
		fresh := out != nil && !h.pipelined
		res, unsent, werr = readable(h.se.client, h.pkv.rc, w, d, out, fresh)
		if werr != nil {
			return res, false
		}
		if len(unsent) == 0 {
			if res == waitTimeout && fresh && !quietConn(h.pkv.rc) {
				// A request sent before the answer was out (pipelined in
				// its own segment) gave no readiness to this wait: found
				// late, once; this connection probes from now on.
				h.pipelined = true
				res = waitReady
			}
			return res, true
		}
		if h.writeClient(unsent, ctr) != nil {
			return res, false
		}
		out = nil
	}
}

// flushOut writes the answer held back in h.out, if any; false: it could not.
func (h *h1conn) flushOut() bool {
	out := h.out
	if out == nil {
		return true
	}
	h.out = nil
	return h.writeClient(out, &h.se.shard.bytesOut) == nil
}

// serveOne reads one request and answers it.
func (h *h1conn) serveOne() outcome {
	svc := h.svc
	rq := h.active()
	rq.start = time.Now()
	if h.br == nil {
		h.br = svc.readers.get(&rq.cr)
	}
	rq.cr.deadline(rq.start.Add(svc.to.HTTPRequest))
	n, err := peekHead(h.br)
	if err != nil {
		rq.cr.deadline(time.Time{})
		return h.headError(err)
	}
	raw, _ := h.br.Peek(n)
	if chk := checkRequestLine(raw); chk.status != 0 {
		return h.rejectOutcome(chk)
	}
	lineEnd := bytes.IndexByte(raw, '\n') + 1
	http11 := bytes.HasSuffix(raw[:lineEnd], []byte("HTTP/1.1\r\n"))
	rq.info = headInfo{}
	if chk := checkRequestHeaders(raw[lineEnd:], http11, &rq.info); chk.status != 0 {
		return h.rejectOutcome(chk)
	}
	if err := rq.h.Read(h.br); err != nil {
		st := 400
		if bytes.Contains(bytes.ToLower(raw[lineEnd:]), []byte("transfer-encoding")) {
			st = 501 // a coding fasthttp does not frame (gzip, chunked): as for any unknown coding
		}
		h.reject(headerCheck{st, "unparsable request"}, err)
		return closeConn
	}
	rq.cr.deadline(time.Time{})
	return h.proxy(rq)
}

// headError answers a request head that could not be read whole.
func (h *h1conn) headError(err error) outcome {
	switch {
	case errors.Is(err, errHeadBareLF):
		return h.rejectOutcome(headerCheck{400, "bare LF in request head"})
	case errors.Is(err, errHeadTooLarge):
		buf, _ := h.br.Peek(h.br.Buffered())
		if bytes.IndexByte(buf, '\n') < 0 {
			return h.rejectOutcome(headerCheck{414, "request line too long"})
		}
		return h.rejectOutcome(headerCheck{431, "request head too large"})
	case h.br.Buffered() == 0:
		return closeConn // closed, or nothing came: end quietly
	case isTimeout(err):
		h.reject(headerCheck{408, "request head not complete in time"}, err)
	}
	return closeConn // the client went away mid-head
}

var (
	errHeadBareLF   = errors.New("bare LF")
	errHeadTooLarge = errors.New("head too large")
)

// peekHead reads until br holds a complete head (ending in CRLF CRLF) and
// returns its length. A bare LF anywhere in it is refused at once, as is a
// head that does not fit br.
func peekHead(br *bufio.Reader) (int, error) {
	scanned := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		from := max(scanned-3, 0)
		if i := bytes.Index(buf[from:], []byte("\r\n\r\n")); i >= 0 {
			end := from + i + 4
			if hasBareLF(buf[:end]) {
				return 0, errHeadBareLF
			}
			return end, nil
		}
		if hasBareLF(buf) || bytes.HasSuffix(buf, []byte("\n\n")) {
			return 0, errHeadBareLF
		}
		scanned = len(buf)
		if len(buf) >= br.Size() {
			return 0, errHeadTooLarge
		}
		if _, err := br.Peek(len(buf) + 1); err != nil && br.Buffered() == len(buf) {
			if err == bufio.ErrBufferFull {
				return 0, errHeadTooLarge
			}
			return 0, err
		}
	}
}

// hasBareLF reports an LF not preceded by CR.
func hasBareLF(b []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return false
		}
		if i+j == 0 || b[i+j-1] != '\r' {
			return true
		}
		i += j + 1
	}
}

// checkRequestLine checks the request line before fasthttp parses it:
// method, target and version, with the statuses a client can act on.
func checkRequestLine(raw []byte) headerCheck {
	line, _, _ := bytes.Cut(raw, []byte("\r\n"))
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return headerCheck{400, "malformed request line"}
	}
	target, version, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		return headerCheck{400, "malformed request line"}
	}
	if chk := checkRequestTarget(method, target); chk.status != 0 {
		return chk
	}
	if !isHTTPVersion(string(version)) {
		return headerCheck{400, "malformed HTTP version"}
	}
	if string(version) != "HTTP/1.1" && string(version) != "HTTP/1.0" {
		return headerCheck{505, "unsupported HTTP version"}
	}
	return headerCheck{}
}

// isHTTPVersion reports whether v is syntactically HTTP-version ("HTTP/" DIGIT "." DIGIT).
func isHTTPVersion(v string) bool {
	return len(v) == 8 && v[:5] == "HTTP/" && v[5] >= '0' && v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9'
}

// reject answers a bad request without contacting any backend; the
// connection closes after it.
func (h *h1conn) reject(chk headerCheck, err error) {
	h.se.shard.errs.Add(1)
	if err == nil {
		err = errors.New(chk.reason)
	}
	h.errorResponse(chk.status, nil, "bad request", err)
}

// errorResponse sends a short error response and makes the connection close
// after it (lingering, so that unread input does not reset it).
func (h *h1conn) errorResponse(status int, b *balance.Backend, cause string, err error) {
	h.se.shard.req[min(max(status/100, 1), 5)].Add(1)
	msg := fasthttp.StatusMessage(status)
	ctype, body := "text/plain", []byte(msg+"\n")
	if l7 := h.svc.spec.L7; l7 != nil {
		if p, ok := l7.ErrorPages.Lookup(status); ok {
			ctype, body = p.ContentType, p.Body // byte for byte (error_page)
		}
	}
	var buf [256]byte
	out := appendStatusLine(buf[:0], status, []byte(msg))
	out = append(out, "\r\nContent-Type: "...)
	out = append(out, ctype...)
	out = append(out, "\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\nConnection: close\r\n\r\n"...)
	out = append(out, body...)
	h.logRequest(b, status, 0, cause, err) // before the client can see the answer
	h.writeClient(out, &h.se.shard.bytesOut)
	h.linger = true
}

// logRequest writes the one line per request.
func (h *h1conn) logRequest(b *balance.Backend, status int, n int64, cause string, err error) {
	svc := h.svc
	if !svc.srv.shouldLog(svc.log, err != nil) {
		return
	}
	backend := "-"
	if b != nil {
		backend = b.Name()
	}
	var method, uri []byte
	start := time.Unix(0, h.se.start)
	if h.req != nil {
		method, uri, start = h.req.h.Method(), h.req.h.RequestURI(), h.req.start
	}
	fields := []zap.Field{
		zap.String("client", h.se.src.String()),
		zap.String("backend", backend),
		zap.ByteString("method", method),
		zap.ByteString("uri", uri),
		zap.Int("status", status),
		zap.Int64("bytes_out", n),
		zap.Duration("duration", time.Since(start)),
		zap.String("termination", cause),
	}
	if err != nil {
		svc.log.Warn("request", append(fields, zap.Error(err))...)
		return
	}
	svc.log.Info("request", fields...)
}
