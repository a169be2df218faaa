package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"halb/proxy/balance"
)

var (
	errNoServer    = errors.New("no server available")
	errBackendFull = errors.New("all eligible servers are at maxconn")
)

// session is one accepted client connection.
type session struct {
	svc    *service
	client *net.TCPConn
	start  time.Time
	src    netip.AddrPort // the client (from the PROXY header when accepted)
	dst    netip.AddrPort // the address the client connected to
	prefix []byte         // client bytes read ahead and not yet forwarded

	mu      sync.Mutex
	closed  bool
	backend net.Conn
	idle    bool // HTTP: waiting for the next request on a keep-alive connection
	http    bool
	hc      *httpConn // http mode: its client connection, for drain
}

// close aborts the session (forced shutdown).
func (se *session) close() {
	se.mu.Lock()
	defer se.mu.Unlock()
	se.closed = true
	se.client.Close()
	if se.backend != nil {
		se.backend.Close()
	}
}

// drain closes an HTTP connection that is idle; busy ones close after their response.
func (se *session) drain() {
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.http && se.idle {
		if se.hc != nil {
			se.hc.flushPending() // a response held back for the next read
		}
		se.client.Close()
	}
}

func (se *session) setIdle(idle bool) {
	se.mu.Lock()
	se.idle = idle
	se.mu.Unlock()
}

// setBackend registers the backend connection for forced close; false if the session is already closed.
func (se *session) setBackend(c net.Conn) bool {
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.closed {
		return false
	}
	se.backend = c
	return true
}

func (s *Server) serve(se *session) {
	defer func() {
		s.mu.Lock()
		delete(s.sessions, se)
		s.mu.Unlock()
		s.wg.Done()
	}()
	svc := se.svc
	st := svc.st
	c := se.client
	st.total.Add(1)
	se.src = addrPortOf(c.RemoteAddr())
	se.dst = addrPortOf(c.LocalAddr())
	if !s.admit(svc) {
		st.refused.Add(1)
		if svc.spec.Mode == ModeHTTP {
			st.req[5].Add(1)
			refuseHTTP(c, svc.to.Client)
		}
		c.Close()
		svc.logSession(se, nil, 0, 0, "refused: maxconn and queue full or queue timeout", errors.New("refused"))
		return
	}
	defer s.release(svc)
	if svc.spec.AcceptProxy {
		if err := s.readProxyHeader(se); err != nil {
			st.refused.Add(1)
			c.Close()
			svc.logSession(se, nil, 0, 0, "bad or missing PROXY header", err)
			return
		}
	}
	switch svc.spec.Mode {
	case ModeTCP:
		svc.serveTCP(se, svc.spec.Pool, "")
	case ModeTLS:
		svc.serveTLS(se)
	case ModeHTTP:
		svc.serveHTTP(se)
	}
}

const refused503 = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nService Unavailable\n"

// refuseHTTP answers 503 without reading the request, then lingers briefly
// so that the unread request does not turn the close into a reset.
func refuseHTTP(c *net.TCPConn, timeout time.Duration) {
	c.SetDeadline(time.Now().Add(min(timeout, time.Second)))
	if _, err := io.WriteString(c, refused503); err != nil {
		return
	}
	c.CloseWrite()
	io.CopyN(io.Discard, c, 64<<10)
}

// readProxyHeader reads a PROXY header from a trusted source and keeps any
// bytes read past it in se.prefix.
func (s *Server) readProxyHeader(se *session) error {
	if !inPrefixes(se.src.Addr(), se.svc.spec.TrustedProxies) {
		return fmt.Errorf("proxy: accept-proxy: %v is not a trusted proxy", se.src.Addr())
	}
	c := se.client
	c.SetReadDeadline(time.Now().Add(se.svc.to.HTTPRequest))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		h, hn, perr := ParseProxyHeader(buf)
		if perr == nil {
			if !h.Local {
				se.src = netip.AddrPortFrom(h.Src.Addr().Unmap(), h.Src.Port())
				se.dst = netip.AddrPortFrom(h.Dst.Addr().Unmap(), h.Dst.Port())
			}
			se.prefix = append(se.prefix, buf[hn:]...)
			return nil
		}
		if !errors.Is(perr, ErrProxyIncomplete) {
			return fmt.Errorf("proxy: accept-proxy: %w", perr)
		}
		if err != nil {
			return fmt.Errorf("proxy: accept-proxy: read: %w", err)
		}
	}
}

// sendProxyFor returns the PROXY version to send to b.
func (svc *service) sendProxyFor(b *balance.Backend) ProxyProto {
	if o, ok := b.Data().(*BackendOpts); ok && o != nil {
		return o.SendProxy
	}
	return svc.spec.SendProxy
}

// connect picks a backend from pool and dials it, redispatching to another
// backend on failure up to Retries times. The returned backend is acquired.
func (svc *service) connect(se *session, pool *balance.Pool) (*balance.Backend, *net.TCPConn, error) {
	if pool == nil {
		return nil, nil, errNoServer
	}
	var failedArr [8]*balance.Backend
	failed := failedArr[:0]
	var queueDeadline time.Time
	d := net.Dialer{Timeout: svc.to.Connect}
	for attempts := 0; ; {
		b, err := svc.acquire(pool, se.src.Addr(), failed, &queueDeadline)
		if err != nil {
			return nil, nil, err
		}
		conn, err := d.Dial("tcp", b.Addr().String())
		if err == nil {
			tc := conn.(*net.TCPConn)
			if err = svc.writeProxy(tc, b, se); err == nil {
				svc.passiveResult(b, true)
				return b, tc, nil
			}
			tc.Close()
		}
		svc.releaseBackend(b)
		svc.passiveResult(b, false)
		failed = append(failed, b)
		attempts++
		if attempts > svc.spec.Retries {
			return nil, nil, fmt.Errorf("connect %v: %w", b.Addr(), err)
		}
	}
}

// acquire picks a backend not in failed and takes one of its connection
// slots. When every candidate is at its maxconn, the connection waits in the
// service's queue (bounded by MaxQueue, for up to the queue timeout counted
// from the first wait) for a backend to release a slot, as HAProxy queues on
// a backend whose servers are full.
func (svc *service) acquire(pool *balance.Pool, client netip.Addr, failed []*balance.Backend, deadline *time.Time) (*balance.Backend, error) {
	s := svc.srv
	for {
		b, full := tryPick(pool, client, failed)
		if b != nil {
			return b, nil
		}
		if !full {
			if len(failed) > 0 {
				return nil, fmt.Errorf("%w (all candidates failed)", errNoServer)
			}
			return nil, errNoServer
		}
		if deadline.IsZero() {
			*deadline = time.Now().Add(svc.to.Queue)
		}
		if svc.st.queued.Add(1) > int64(svc.spec.MaxQueue) {
			svc.st.queued.Add(-1)
			return nil, errBackendFull
		}
		// Register as a waiter before the last try so that a release in
		// between is not missed.
		s.waiters.Add(1)
		s.wakeMu.Lock()
		ch := s.wake
		s.wakeMu.Unlock()
		b, _ = tryPick(pool, client, failed)
		if b == nil {
			t := time.NewTimer(time.Until(*deadline))
			select {
			case <-ch:
			case <-t.C:
			}
			t.Stop()
		}
		s.waiters.Add(-1)
		svc.st.queued.Add(-1)
		if b != nil {
			return b, nil
		}
		if !time.Now().Before(*deadline) || s.draining.Load() {
			if b, _ := tryPick(pool, client, failed); b != nil {
				return b, nil
			}
			return nil, errBackendFull
		}
	}
}

// tryPick picks from pool, skipping failed and backends at their maxconn.
// full reports that some candidate was skipped for being full.
func tryPick(pool *balance.Pool, client netip.Addr, failed []*balance.Backend) (b *balance.Backend, full bool) {
	var excl [8]*balance.Backend
	exclude := append(excl[:0], failed...)
	now := time.Now()
	for {
		b := pool.Pick(client, now, exclude)
		if b == nil {
			// Pick itself passes over members at their maxconn: eligible
			// members beyond the failed ones can only be full.
			return nil, full || pool.Eligible() > len(failed)
		}
		if b.Acquire() {
			return b, full
		}
		full = true
		exclude = append(exclude, b)
	}
}

// releaseBackend ends a connection counted by acquire and wakes queued ones.
func (svc *service) releaseBackend(b *balance.Backend) {
	b.Release()
	svc.srv.notify()
}

func (svc *service) writeProxy(c net.Conn, b *balance.Backend, se *session) error {
	pp := svc.sendProxyFor(b)
	if pp == ProxyNone {
		return nil
	}
	var buf [232]byte
	hdr := AppendProxyHeader(buf[:0], pp, se.src, se.dst)
	c.SetWriteDeadline(time.Now().Add(svc.to.Connect))
	_, err := c.Write(hdr)
	c.SetWriteDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("send proxy header: %w", err)
	}
	return nil
}

func (svc *service) serveTCP(se *session, pool *balance.Pool, sni string) {
	st := svc.st
	b, bc, err := svc.connect(se, pool)
	if err != nil {
		st.errs.Add(1)
		se.client.Close()
		svc.logSession(se, nil, 0, 0, "connect failed", err, sniField(sni)...)
		return
	}
	defer svc.releaseBackend(b)
	if !se.setBackend(bc) {
		bc.Close()
		return
	}
	if len(se.prefix) > 0 {
		bc.SetWriteDeadline(time.Now().Add(svc.to.Server))
		if _, err := bc.Write(se.prefix); err != nil {
			st.errs.Add(1)
			se.client.Close()
			bc.Close()
			svc.logSession(se, b, 0, 0, "server write error", err, sniField(sni)...)
			return
		}
		st.bytesIn.Add(uint64(len(se.prefix)))
	}
	in, out, cause, err := svc.pipe(se.client, bc)
	in += int64(len(se.prefix))
	b.AddBytes(in, out)
	if err != nil {
		st.errs.Add(1)
	}
	svc.logSession(se, b, in, out, cause, err, sniField(sni)...)
}

// spliceChunk bounds one io.CopyN round between deadline refreshes.
const spliceChunk = 256 << 10

// pipe copies both ways until both directions end, with half-close
// propagation, and closes both connections. The copies are io.CopyN between
// *net.TCPConn, which the runtime turns into splice(2).
func (svc *service) pipe(client, backend *net.TCPConn) (in, out int64, cause string, err error) {
	cIdle, sIdle := svc.to.Client, svc.to.Server
	if svc.tunnelSet {
		cIdle, sIdle = svc.to.Tunnel, svc.to.Tunnel
	}
	return pipeConns(client, backend, cIdle, sIdle, &svc.st.bytesIn, &svc.st.bytesOut)
}

func pipeConns(client, backend *net.TCPConn, cIdle, sIdle time.Duration, inCtr, outCtr *atomic.Uint64) (in, out int64, cause string, err error) {
	var act atomic.Int64
	act.Store(time.Now().UnixNano())
	type result struct {
		n   int64
		err error
	}
	ch := make(chan result, 1)
	go func() {
		n, err := copyDir(backend, client, cIdle, &act, inCtr)
		if err != nil {
			client.Close()
			backend.Close()
		}
		ch <- result{n, err}
	}()
	out, errOut := copyDir(client, backend, sIdle, &act, outCtr)
	if errOut != nil {
		client.Close()
		backend.Close()
	}
	r := <-ch
	in = r.n
	client.Close()
	backend.Close()
	switch {
	case r.err == nil && errOut == nil:
		return in, out, "closed", nil
	case errOut != nil && isTimeout(errOut):
		return in, out, "server timeout", errOut
	case r.err != nil && isTimeout(r.err):
		return in, out, "client timeout", r.err
	case r.err != nil && !errors.Is(r.err, net.ErrClosed):
		return in, out, "client error", r.err
	case errOut != nil && !errors.Is(errOut, net.ErrClosed):
		return in, out, "server error", errOut
	}
	return in, out, "aborted", errors.Join(r.err, errOut)
}

// copyDir copies src to dst until EOF (then half-closes dst) or an error.
// Splice hides progress until io.CopyN returns, so reads wake up every
// idle/4: a round that moved bytes, or a session whose other direction did
// within idle, goes on; a silent session ends between idle and 1.25*idle.
// A write blocked for 7/8 to all of idle (the peer does not read) ends the
// session.
//
// Between bursts it waits for src to become readable without holding
// anything (no buffer, no splice pipe): an idle session costs two sockets.
// Each burst is moved by copyBurst.
func copyDir(dst, src *net.TCPConn, idle time.Duration, act *atomic.Int64, ctr *atomic.Uint64) (int64, error) {
	tick := max(idle/4, time.Millisecond)
	rc, rcErr := src.SyscallConn()
	b := newBurst()
	var total int64
	// The deadlines move only when an eighth of their span has passed: a busy session does
	// not re-arm two timers per burst, and each still fires within 7/8 to 1 of its span.
	var rdl, wdl time.Time
	for {
		start := time.Now()
		if rdl.Sub(start) < tick-tick/8 {
			rdl = start.Add(tick)
			src.SetReadDeadline(rdl)
		}
		if wdl.Sub(start) < idle-idle/8 {
			wdl = start.Add(idle)
			dst.SetWriteDeadline(wdl)
		}
		var n int64
		var err error
		if rcErr == nil {
			n, err = copyBurst(dst, src, rc, b)
		} else {
			n, err = io.CopyN(dst, src, spliceChunk)
		}
		total += n
		if n > 0 {
			act.Store(time.Now().UnixNano())
			ctr.Add(uint64(n))
		}
		switch {
		case err == nil:
		case err == io.EOF:
			dst.CloseWrite()
			return total, nil
		case isTimeout(err) && time.Since(start) < idle && time.Since(time.Unix(0, act.Load())) < idle:
			// The read tick fired on a session that is not idle.
		default:
			return total, err
		}
	}
}

// smallCopy is the buffer of one burst: a request or a small response goes
// through it with one read(2) and one write(2), as HAProxy moves it; what is
// queued beyond it is spliced (zero copy for bulk transfers).
const smallCopy = 16 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, smallCopy); return &b }}

// burst is copyBurst's state, one per direction of a session, so that the
// callback handed to RawConn.Read allocates nothing per burst.
type burst struct {
	bp     *[]byte
	n      int
	errno  error
	readFn func(uintptr) bool // b.read
}

func newBurst() *burst {
	b := &burst{}
	b.readFn = b.read
	return b
}

// read takes a buffer only once data is there: nothing is held while waiting.
func (b *burst) read(fd uintptr) bool {
	b.bp = copyBufs.Get().(*[]byte)
	for {
		b.n, b.errno = unix.Read(int(fd), *b.bp)
		if b.errno != unix.EINTR {
			break
		}
	}
	if b.errno == unix.EAGAIN {
		copyBufs.Put(b.bp)
		b.bp = nil
		return false
	}
	return true
}

// copyBurst waits until src is readable, then moves what it holds: up to
// smallCopy bytes through a pooled buffer, and when that filled, the rest of
// the receive queue, up to spliceChunk, by splice. io.EOF when src is at its
// end.
func copyBurst(dst, src *net.TCPConn, rc syscall.RawConn, b *burst) (int64, error) {
	b.bp, b.n, b.errno = nil, 0, nil
	if err := rc.Read(b.readFn); err != nil {
		if b.bp != nil {
			copyBufs.Put(b.bp)
		}
		return 0, err
	}
	bp, n := b.bp, b.n
	defer copyBufs.Put(bp)
	switch {
	case b.errno != nil:
		return 0, os.NewSyscallError("read", b.errno)
	case n <= 0:
		return 0, io.EOF
	}
	w, err := dst.Write((*bp)[:n])
	if err != nil || n < len(*bp) {
		return int64(w), err
	}
	q := 0
	rc.Control(func(fd uintptr) { q, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	if q <= 0 {
		return int64(n), nil
	}
	m, err := io.CopyN(dst, src, int64(min(q, spliceChunk)))
	return int64(n) + m, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// serveTLS peeks at the ClientHello, picks the pool by SNI and proxies the
// bytes untouched.
func (svc *service) serveTLS(se *session) {
	c := se.client
	c.SetReadDeadline(time.Now().Add(svc.to.HTTPRequest))
	buf := se.prefix
	var name string
	for {
		var err error
		name, err = ParseClientHello(buf)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrHelloIncomplete) || len(buf) > maxHelloSize+64<<10 {
			svc.st.errs.Add(1)
			c.Close()
			svc.logSession(se, nil, int64(len(buf)), 0, "bad TLS ClientHello", err)
			return
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, max(1024, len(buf)))...)[:len(buf)]
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr != nil && n == 0 {
			if _, err := ParseClientHello(buf); err == nil {
				continue
			}
			svc.st.errs.Add(1)
			c.Close()
			svc.logSession(se, nil, int64(len(buf)), 0, "client closed or timed out before ClientHello", rerr)
			return
		}
	}
	c.SetReadDeadline(time.Time{})
	se.prefix = buf
	pool := svc.route(name)
	if pool == nil {
		svc.st.errs.Add(1)
		c.Close()
		svc.logSession(se, nil, int64(len(buf)), 0, "no route for SNI", errNoServer, zap.String("sni", name))
		return
	}
	svc.serveTCP(se, pool, name)
}

// route returns the pool for a server name: exact match, then one-label
// wildcard, then the default pool.
func (svc *service) route(name string) *balance.Pool {
	if name != "" {
		if p, ok := svc.exact[name]; ok {
			return p
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if p, ok := svc.wild[name[i+1:]]; ok {
				return p
			}
		}
	}
	return svc.spec.Pool
}

// sniField is the log field for a TLS server name, none for plain TCP.
func sniField(sni string) []zap.Field {
	if sni == "" {
		return nil
	}
	return []zap.Field{zap.String("sni", sni)}
}

// logSession writes the one line per TCP/TLS session.
func (svc *service) logSession(se *session, b *balance.Backend, in, out int64, cause string, err error, extra ...zap.Field) {
	if !svc.srv.shouldLog(svc.log, err != nil) {
		return
	}
	backend := "-"
	if b != nil {
		backend = b.Name()
	}
	fields := append([]zap.Field{
		zap.String("client", se.src.String()),
		zap.String("backend", backend),
		zap.Int64("bytes_in", in),
		zap.Int64("bytes_out", out),
		zap.Duration("duration", time.Since(se.start)),
		zap.String("termination", cause),
	}, extra...)
	if err != nil {
		svc.log.Warn("session", append(fields, zap.Error(err))...)
		return
	}
	svc.log.Info("session", fields...)
}
