package proxy

import (
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// Write folding: a small write that is followed by a read on the same
// connection (a request to a backend, then its response; a response to a
// client, then its next request) is held back and issued from inside the read,
// after Go's poller has been armed for the connection.
//
// Go's net.Conn.Read first tries read(2) and only then waits for readability.
// Right after a request or a response was sent, that first read finds the
// socket empty almost every time: measured at about 1.8 EAGAIN reads per
// proxied HTTP request, a third of halb's system calls. HAProxy, which waits on
// epoll first, makes none. Folding the write into the read removes them: the
// write goes out, and the goroutine waits for the reply without the wasted
// read(2).
//
// Waiting without a first read is only correct for data that arrives after
// the poller was armed (syscall.RawConn.Read arms it before calling us, then
// the write happens, then the reply). Data that arrived earlier, which only a
// pipelining client or an unusual backend sends, may have spent its
// readiness notification already. So a folded read waits at most foldWait,
// then reads as usual, and a connection where that fallback found data at once
// stops folding.
const (
	foldMax  = 8 << 10               // larger writes go out at once
	foldWait = 20 * time.Millisecond // how long a folded read trusts the poller alone
)

// foldable reports whether a write of n bytes is held back, and consumes a
// one-shot permission. On a backend connection only the first write after a
// read is: a request sent in one write (the everyday GET). Of a request
// whose body streams, only the head waits, for the first piece of the body,
// which is already at hand; the body is never held.
func (d *deadlineConn) foldable(n int) bool {
	once := d.foldOnce
	d.foldOnce = false
	first := !d.wrote
	d.wrote = true
	return (once || d.foldAll && first) && !d.noFold && n <= foldMax && d.raw != nil
}

// foldBufs holds the buffers of held-back writes: taken by hold, given back
// once written, so that an idle connection keeps none.
var foldBufs = sync.Pool{New: func() any { b := make([]byte, 0, foldMax); return &b }}

// hold keeps p for the next read. The caller has checked foldable.
func (d *deadlineConn) hold(p []byte) {
	d.fmu.Lock()
	d.pbuf = foldBufs.Get().(*[]byte)
	d.pending = append((*d.pbuf)[:0], p...)
	d.fmu.Unlock()
}

// releaseLocked gives the held buffer back. d.fmu held.
func (d *deadlineConn) releaseLocked() {
	d.pending = nil
	if d.pbuf != nil {
		foldBufs.Put(d.pbuf)
		d.pbuf = nil
	}
}

// dropPending forgets held-back bytes.
func (d *deadlineConn) dropPending() {
	d.fmu.Lock()
	d.releaseLocked()
	d.fmu.Unlock()
}

// flushPending writes held-back bytes, if any, now. Any goroutine may call
// it (a drain closes idle connections from the shutdown's goroutine).
func (d *deadlineConn) flushPending() error {
	d.fmu.Lock()
	defer d.fmu.Unlock()
	if len(d.pending) == 0 {
		return nil
	}
	defer d.releaseLocked()
	d.c.SetWriteDeadline(time.Now().Add(d.idle))
	n, err := d.c.Write(d.pending)
	if d.out != nil && n > 0 {
		d.out.Add(uint64(n))
	}
	return err
}

// writeHeld is flushPending from inside a raw read callback: the first try is
// a plain write(2) on the non-blocking socket; what does not fit waits in
// the usual Write.
func (d *deadlineConn) writeHeld(fd int) error {
	d.fmu.Lock()
	defer d.fmu.Unlock()
	defer d.releaseLocked()
	p := d.pending
	for len(p) > 0 {
		n, err := syscall.Write(fd, p)
		if err == syscall.EINTR {
			continue
		}
		if n > 0 {
			if d.out != nil {
				d.out.Add(uint64(n))
			}
			p = p[n:]
		}
		if err == syscall.EAGAIN {
			break
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
	}
	if len(p) == 0 {
		return nil
	}
	d.c.SetWriteDeadline(time.Now().Add(d.idle))
	n, err := d.c.Write(p)
	if d.out != nil && n > 0 {
		d.out.Add(uint64(n))
	}
	return err
}

// foldOp is the state of a folded read, kept with the connection so that the
// callbacks handed to RawConn.Read allocate nothing per call.
type foldOp struct {
	d            *deadlineConn
	p            []byte
	n            int
	wrote, first bool
	werr, errno  error
	foldFn       func(uintptr) bool // o.fold
	afterFn      func(uintptr) bool // o.after
}

func (d *deadlineConn) foldOp(p []byte) *foldOp {
	o := d.op
	if o == nil {
		o = &foldOp{d: d}
		o.foldFn, o.afterFn = o.fold, o.after
		d.op = o
	}
	o.p, o.n, o.wrote, o.first, o.werr, o.errno = p, 0, false, true, nil, nil
	return o
}

// fold: the first call writes the held bytes and asks to wait for the poller;
// the next ones read.
func (o *foldOp) fold(fd uintptr) bool {
	if !o.wrote {
		o.wrote = true
		o.werr = o.d.writeHeld(int(fd))
		return o.werr != nil // else the reply can't be there yet: wait for the poller
	}
	return o.read(fd)
}

// after reads at once, and notes whether the first try found data.
func (o *foldOp) after(fd uintptr) bool {
	done := o.read(fd)
	if !done {
		o.first = false
	}
	return done
}

func (o *foldOp) read(fd uintptr) bool {
	for {
		o.n, o.errno = syscall.Read(int(fd), o.p)
		if o.errno != syscall.EINTR {
			return o.errno != syscall.EAGAIN
		}
	}
}

// result maps the outcome of a raw read to Read's.
func (o *foldOp) result(rerr error) (int, error) {
	switch {
	case o.werr != nil:
		return 0, o.werr
	case rerr != nil:
		return 0, rerr
	case o.errno != nil:
		return 0, os.NewSyscallError("read", o.errno)
	case o.n <= 0 && len(o.p) > 0:
		return 0, io.EOF
	}
	return o.n, nil
}

// foldRead sends the held-back bytes and waits for the reply. deadline is
// the read's own deadline. done is false when the reply did not come within
// foldWait: nothing was read, and the caller reads as usual.
func (d *deadlineConn) foldRead(p []byte, now, deadline time.Time) (n int, err error, done bool) {
	w := now.Add(foldWait)
	final := !w.Before(deadline)
	if final {
		w = deadline
	}
	d.c.SetReadDeadline(w)
	o := d.foldOp(p)
	rerr := d.raw.Read(o.foldFn)
	if rerr != nil && isTimeout(rerr) && !final && o.wrote && o.werr == nil {
		return 0, nil, false
	}
	n, err = o.result(rerr)
	return n, err, true
}

// readAfterFold is the usual read after a folded read waited foldWait in
// vain: if data is there at the first try, its notification was missed and
// the connection stops folding.
func (d *deadlineConn) readAfterFold(p []byte) (int, error) {
	o := d.foldOp(p)
	rerr := d.raw.Read(o.afterFn)
	if rerr == nil && o.first && o.n > 0 {
		d.noFold = true
	}
	return o.result(rerr)
}
