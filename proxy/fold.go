package proxy

import (
	"io"
	"os"
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

// hold keeps p for the next read. The caller has checked foldable.
func (d *deadlineConn) hold(p []byte) {
	d.fmu.Lock()
	d.pending = append(d.pbuf[:0], p...)
	d.pbuf = d.pending
	d.fmu.Unlock()
}

// dropPending forgets held-back bytes.
func (d *deadlineConn) dropPending() {
	d.fmu.Lock()
	d.pending = nil
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
	p := d.pending
	d.pending = nil
	d.c.SetWriteDeadline(time.Now().Add(d.idle))
	n, err := d.c.Write(p)
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
	p := d.pending
	d.pending = nil
	for len(p) > 0 {
		n, err := ignoringEINTR(func() (int, error) { return syscall.Write(fd, p) })
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
	wrote := false
	var werr, errno error
	rerr := d.raw.Read(func(fd uintptr) bool {
		if !wrote {
			wrote = true
			werr = d.writeHeld(int(fd))
			return werr != nil // else the reply can't be there yet: wait for the poller
		}
		n, errno = ignoringEINTR(func() (int, error) { return syscall.Read(int(fd), p) })
		return errno != syscall.EAGAIN
	})
	switch {
	case werr != nil:
		return 0, werr, true
	case rerr != nil:
		if isTimeout(rerr) && !final && wrote {
			return 0, nil, false
		}
		return 0, rerr, true
	case errno != nil:
		return 0, os.NewSyscallError("read", errno), true
	case n == 0 && len(p) > 0:
		return 0, io.EOF, true
	}
	return n, nil, true
}

// readAfterFold is the usual read after a folded read waited foldWait in
// vain: if data is there at the first try, its notification was missed and
// the connection stops folding.
func (d *deadlineConn) readAfterFold(p []byte) (n int, err error) {
	first := true
	rerr := d.raw.Read(func(fd uintptr) bool {
		n, err = ignoringEINTR(func() (int, error) { return syscall.Read(int(fd), p) })
		if err == syscall.EAGAIN {
			first = false
			return false
		}
		return true
	})
	if rerr != nil {
		return 0, rerr
	}
	if first && n > 0 {
		d.noFold = true
	}
	if err != nil {
		return 0, os.NewSyscallError("read", err)
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

func ignoringEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != syscall.EINTR {
			return n, err
		}
	}
}
