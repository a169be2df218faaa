package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"halb/proxy/balance"
)

// A pipe relays bytes both ways between two TCP connections (tcp and tls
// modes, and HTTP tunnels after a 101) until both directions end, with
// half-close propagation, and then closes both and calls done once.
//
// Each direction runs in a goroutine only while it moves bytes: after a
// burst it waits a while (pipeParkAfter, pipeParkAfterBusy) for the next
// one, then parks its source descriptor (park.go) and its goroutine ends.
// A session with nothing in flight holds no goroutine and no buffer, only
// its two sockets and this record.
//
// Inactivity counts traffic in both directions: a parked direction whose
// timer fires while the other direction moved bytes within its span parks
// again for the rest. A write blocked for its whole span (the peer does not
// read) ends the session.
type pipe struct {
	client, backend *net.TCPConn
	pipes           *pipePool    // the server's spare splice pipes
	dirs            [2]pipeDir   // [0] client → backend, [1] backend → client
	live            atomic.Int32 // directions not finished
	abortOnce       sync.Once
	done            func(in, out int64, cause string, err error)
}

type pipeDir struct {
	// What every burst touches, first and together (64 bytes): spread over
	// the record, and with the last activity in the pipe that both
	// directions wrote, a 128 B exchange took up to three cache misses
	// here per burst (perf annotate of burst.read, not pinned).
	p      *pipe
	ctr    *atomic.Uint64
	n      int64
	act    atomic.Int64    // unix nanos of the last byte this direction moved
	dstRC  syscall.RawConn // dst's raw connection: short bursts are written from inside the wait on src
	src    *net.TCPConn
	linger time.Duration // how long to wait for the next burst before parking

	dst      *net.TCPConn
	idle     time.Duration
	err      error
	pk       *parked // &pkv when the direction can park (pkv.rc: src's raw connection)
	pkv      parked
	parkedAt int64 // unix nanos when it last parked
	finished atomic.Bool
	timeout  bool // ended by inactivity
}

// startPipe relays between client and backend; done runs once when both
// directions ended and both connections are closed. The calling goroutine
// runs the backend → client direction until it parks or ends.
func (s *Server) startPipe(client, backend *net.TCPConn, cIdle, sIdle time.Duration, inCtr, outCtr *atomic.Uint64,
	register func(*pipe) bool, done func(in, out int64, cause string, err error)) {
	p := &pipe{client: client, backend: backend, pipes: &s.pipes, done: done}
	p.live.Store(2)
	p.dirs[0] = pipeDir{p: p, dst: backend, src: client, idle: cIdle, ctr: inCtr}
	p.dirs[1] = pipeDir{p: p, dst: client, src: backend, idle: sIdle, ctr: outCtr}
	now := time.Now().UnixNano()
	p.dirs[0].act.Store(now)
	p.dirs[1].act.Store(now)
	for i := range p.dirs {
		d := &p.dirs[i]
		if rc, err := d.src.SyscallConn(); err == nil && s.parker.register(&d.pkv, rc) == nil {
			d.pk = &d.pkv
		} // else no parking: the goroutine waits
		d.dstRC, _ = d.dst.SyscallConn()
		d.linger = pipeParkAfter
	}
	if register != nil && !register(p) {
		client.Close()
		backend.Close()
		for i := range p.dirs {
			if pk := p.dirs[i].pk; pk != nil {
				pk.forget()
			}
		}
		done(0, 0, "aborted", errAborted)
		return
	}
	go p.dirs[0].run()
	p.dirs[1].run()
}

// run moves bursts until the direction ends or parks.
func (d *pipeDir) run() {
	p := d.p
	b := bursts.Get().(*burst)
	var wdl time.Time
	for {
		start := time.Now()
		wait := d.linger
		if d.pk == nil {
			wait = max(d.idle/4, time.Millisecond)
		}
		d.src.SetReadDeadline(start.Add(wait))
		if wdl.Sub(start) < d.idle-d.idle/8 {
			wdl = start.Add(d.idle)
			d.dst.SetWriteDeadline(wdl)
		}
		var n int64
		var err error
		if d.pk != nil {
			// Inline bursts stop extending the wait after an eighth of the
			// inactivity span, so that the loop comes round to move dst's
			// write deadline before the span can run out.
			b.d, b.until = d, start.Add(d.idle/8)
			n, err = copyBurst(d.dst, d.src, d.pkv.rc, b)
		} else {
			n, err = io.CopyN(d.dst, d.src, spliceChunk)
		}
		if n > 0 {
			d.moved(n, time.Now())
		}
		switch {
		case err == nil || (n > 0 && isTimeout(err)):
			// A burst that moved bytes is progress even if the short read
			// deadline passed while its write waited. (Inline bursts alone
			// are not: their wait ran out a linger after the last one,
			// with no readiness since, so the direction parks at once.)
			continue
		case err == io.EOF:
			bursts.Put(b)
			d.dst.CloseWrite()
			d.finish()
			return
		case isTimeout(err) && n == 0 && !p.silentFor(d.idle):
			if d.pk == nil {
				continue
			}
			bursts.Put(b) // before parking: another goroutine may run this direction next
			if d.park() {
				return
			}
			b = bursts.Get().(*burst)
			continue
		case isTimeout(err) && n == 0:
			d.err, d.timeout = err, true
		default:
			d.err = err
		}
		bursts.Put(b)
		d.finish()
		return
	}
}

// moved counts n bytes moved at now.
func (d *pipeDir) moved(n int64, now time.Time) {
	d.n += n
	d.act.Store(now.UnixNano())
	d.ctr.Add(uint64(n))
}

// lastAct is when a byte last moved, either way.
func (p *pipe) lastAct() time.Time {
	return time.Unix(0, max(p.dirs[0].act.Load(), p.dirs[1].act.Load()))
}

// silentFor reports whether nothing moved either way for idle.
func (p *pipe) silentFor(idle time.Duration) bool {
	return time.Since(p.lastAct()) >= idle
}

// park hands the direction to the parker until its source is readable or the
// session's inactivity span runs out. false: it could not park (keep going).
func (d *pipeDir) park() bool {
	rest := d.idle - time.Since(d.p.lastAct())
	if rest <= 0 {
		rest = time.Millisecond
	}
	d.parkedAt = time.Now().UnixNano()
	return d.pk.park(rest, d) == nil
}

// wake runs a parked direction whose source became readable. One that comes
// back soon after parking is busy: it lingers longer from now on.
func (d *pipeDir) wake() {
	if time.Now().UnixNano()-d.parkedAt < int64(pipeParkAfterBusy) {
		d.linger = pipeParkAfterBusy
	}
	d.run()
}

// expire runs when a parked direction's timer fires first.
func (d *pipeDir) expire() {
	if !d.p.silentFor(d.idle) {
		if d.park() {
			return
		}
		go d.run()
		return
	}
	d.err, d.timeout = os.ErrDeadlineExceeded, true
	d.finish()
}

// finish ends one direction; an error ends the other one too.
func (d *pipeDir) finish() {
	if !d.finished.CompareAndSwap(false, true) {
		return
	}
	p := d.p
	if d.err != nil {
		p.abort(d.err)
	}
	p.dirDone()
}

// dirDone counts a finished direction; the last one closes and reports.
func (p *pipe) dirDone() {
	if p.live.Add(-1) == 0 {
		p.client.Close()
		p.backend.Close()
		for i := range p.dirs {
			if pk := p.dirs[i].pk; pk != nil {
				pk.forget()
			}
		}
		in, out := p.dirs[0].n, p.dirs[1].n
		cause, err := p.result()
		p.done(in, out, cause, err)
	}
}

// abort closes both connections; a parked direction is finished here, the
// others see the closed sockets.
func (p *pipe) abort(cause error) {
	p.abortOnce.Do(func() {
		p.client.Close()
		p.backend.Close()
		for i := range p.dirs {
			d := &p.dirs[i]
			if d.pk != nil && d.pk.cancel() && d.finished.CompareAndSwap(false, true) {
				if d.err == nil {
					d.err = cause
				}
				p.dirDone()
			}
		}
	})
}

func (p *pipe) result() (string, error) {
	in, out := &p.dirs[0], &p.dirs[1]
	switch {
	case in.err == nil && out.err == nil:
		return "closed", nil
	case out.timeout:
		return "server timeout", out.err
	case in.timeout:
		return "client timeout", in.err
	case in.err != nil && !errors.Is(in.err, net.ErrClosed) && in.err != errAborted:
		return "client error", in.err
	case out.err != nil && !errors.Is(out.err, net.ErrClosed) && out.err != errAborted:
		return "server error", out.err
	}
	return "aborted", errors.Join(in.err, out.err)
}

// spliceChunk bounds one splice round between deadline refreshes.
const spliceChunk = 256 << 10

// smallCopy is the buffer of one burst: a request or a small response goes
// through it with one recvfrom(2) and one sendto(2), as HAProxy moves it; what is
// queued beyond it is spliced (zero copy for bulk transfers).
const smallCopy = 16 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, smallCopy); return &b }}

// burst is copyBurst's state, one per direction, so that the callbacks
// handed to the raw connections allocate nothing per burst.
type burst struct {
	d       *pipeDir
	bp      *[]byte
	n, off  int // bytes read into *bp; of them, written on already
	errno   error
	werr    error
	until   time.Time // inline bursts extend the wait's deadline until then
	readFn  func(uintptr) bool
	writeFn func(uintptr)
}

// bursts hold the burst records of active directions: a parked one keeps none.
var bursts = sync.Pool{New: func() any {
	b := &burst{}
	b.readFn, b.writeFn = b.read, b.write
	return b
}}

// read takes a buffer only once data is there: nothing is held while
// waiting. A short burst (the read left the socket empty) is written on at
// once from here, without leaving the wait on src (RawConn.Read): readiness
// that comes after it is kept by Go's poller, so the next burst needs no
// read(2) that finds nothing, which a new wait would start with. Anything
// else (a full buffer, a write that would block, an end, an error) goes back
// to copyBurst.
func (b *burst) read(fd uintptr) bool {
	b.bp = copyBufs.Get().(*[]byte)
	b.off = 0
	b.n, b.errno = readNonblock(fd, *b.bp)
	switch {
	case b.errno == unix.EAGAIN:
		copyBufs.Put(b.bp)
		b.bp = nil
		return false
	case b.errno != nil || b.n <= 0 || b.n == len(*b.bp) || b.d.dstRC == nil:
		return true
	}
	b.werr = nil
	if err := b.d.dstRC.Control(b.writeFn); err != nil {
		b.werr = err
	}
	if b.werr != nil || b.off < b.n {
		return true
	}
	copyBufs.Put(b.bp)
	b.bp = nil
	now := time.Now()
	b.d.moved(int64(b.n), now)
	b.n = 0
	if now.Before(b.until) {
		b.d.src.SetReadDeadline(now.Add(b.d.linger)) // the linger starts again from this burst
	}
	return false
}

// write writes what read holds to dst without blocking; b.off is how much
// went, b.werr a failure other than a full socket.
func (b *burst) write(fd uintptr) {
	w, err := writeNonblock(fd, (*b.bp)[b.off:b.n])
	b.off += w
	if err != nil {
		b.werr = os.NewSyscallError("write", err)
	}
}

// copyBurst waits until src is readable, then moves what it holds: up to
// smallCopy bytes through a pooled buffer, and when that filled, the rest of
// the receive queue, up to spliceChunk, by splice. io.EOF when src is at its
// end. Short bursts go through inside the wait (burst.read) and are counted
// there: n is what moved here.
func copyBurst(dst, src *net.TCPConn, rc syscall.RawConn, b *burst) (int64, error) {
	b.bp, b.n, b.off, b.errno, b.werr = nil, 0, 0, nil, nil
	if err := rc.Read(b.readFn); err != nil {
		if b.bp != nil {
			copyBufs.Put(b.bp)
		}
		return 0, err
	}
	bp, n, off := b.bp, b.n, b.off
	defer copyBufs.Put(bp)
	switch {
	case b.werr != nil:
		return int64(off), b.werr
	case b.errno != nil:
		return 0, os.NewSyscallError("read", b.errno)
	case n <= 0:
		return 0, io.EOF
	}
	var w int
	var err error
	if b.d.dstRC != nil {
		w, err = writeRC(b.d.dstRC, (*bp)[off:n])
	} else {
		w, err = dst.Write((*bp)[off:n])
	}
	if err != nil || n < len(*bp) {
		return int64(off + w), err
	}
	q := 0
	rc.Control(func(fd uintptr) { q = queuedNonblock(fd) })
	if q <= 0 {
		return int64(n), nil
	}
	// The rest of what is queued, by splice: it is there, so nothing waits
	// for it (the read deadline is the relay's own, moved again by its loop).
	m, err := spliceN(b.d.p.pipes, dst, src, int64(min(q, spliceChunk)), b.d.idle, b.d.idle)
	if se, ok := err.(*srcError); ok {
		err = se.err
		if err == io.ErrUnexpectedEOF {
			err = io.EOF // the source ended (its queue was cut by a reset)
		}
	}
	return int64(n) + m, err
}

// serveTCP connects to a backend of pool and relays until both sides close.
func (svc *service) serveTCP(se *session, pool *balance.Pool, sni string) {
	b, bc, err := svc.connect(se, pool)
	if err != nil {
		se.shard.errs.Add(1)
		se.client.Close()
		svc.logSession(se, nil, 0, 0, "connect failed", err, sniField(sni)...)
		se.end()
		return
	}
	prefix := int64(len(se.prefix))
	if prefix > 0 {
		bc.SetWriteDeadline(time.Now().Add(svc.to.Server))
		if _, err := bc.Write(se.prefix); err != nil {
			se.shard.errs.Add(1)
			se.client.Close()
			bc.Close()
			svc.releaseBackend(b)
			svc.logSession(se, b, 0, 0, "server write error", err, sniField(sni)...)
			se.end()
			return
		}
		se.shard.bytesIn.Add(uint64(prefix))
		se.prefix = nil
	}
	cIdle, sIdle := svc.to.Client, svc.to.Server
	if svc.tunnelSet {
		cIdle, sIdle = svc.to.Tunnel, svc.to.Tunnel
	}
	svc.srv.startPipe(se.client, bc, cIdle, sIdle, &se.shard.bytesIn, &se.shard.bytesOut,
		func(p *pipe) bool { return se.setPipe(p, bc) },
		func(in, out int64, cause string, err error) {
			in += prefix
			b.AddBytes(in, out)
			svc.releaseBackend(b)
			if err != nil {
				se.shard.errs.Add(1)
			}
			svc.logSession(se, b, in, out, cause, err, sniField(sni)...)
			se.end()
		})
}
