package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawIO reads and writes a TCP socket with the raw non-blocking calls of
// readNonblock and writeNonblock, waiting in Go's poller through its
// RawConn: what net.TCPConn's Read and Write do, without marking the
// goroutine's P as in a system call (see readNonblock). It serves the socket
// under a TLS layer, which reads and writes through an io.ReadWriter.
//
// One read and one write may run at once (crypto/tls reads in one goroutine
// while another writes); each has its own state and callback, bound once.
// Deadlines are the socket's (SetReadDeadline, SetWriteDeadline): a wait
// past one returns the poller's timeout error, as net.TCPConn's would.
type rawIO struct {
	r rawRead
	w rawWrite
}

// rawRead is the state of reads through a RawConn, with its two callbacks
// bound once: read waits in Go's poller until the socket has bytes (or an
// end), try takes what is there without waiting. Embedded where it serves
// many reads (a request record, a server connection, rawIO).
type rawRead struct {
	rc     syscall.RawConn
	p      []byte
	n      int
	err    error
	tryFn  func(uintptr) bool // tryCall
	waitFn func(uintptr) bool // waitCall
}

func (r *rawRead) tryCall(fd uintptr) bool {
	r.n, r.err = readNonblock(fd, r.p)
	return true
}

func (r *rawRead) waitCall(fd uintptr) bool {
	r.n, r.err = readNonblock(fd, r.p)
	return r.err != unix.EAGAIN // else wait until readable
}

// read reads into p, waiting until the socket has bytes, an end (io.EOF) or
// an error, under the socket's read deadline: what net.TCPConn's Read does.
func (r *rawRead) read(p []byte) (int, error) { return r.do(p, true) }

// try reads what the socket holds without waiting. It returns 0 and no
// error when the socket holds nothing yet, or when RawConn.Read refused (a
// read deadline already passed, as the linger's may have): the caller's
// read, under its own deadline, says what it is.
func (r *rawRead) try(p []byte) (int, error) { return r.do(p, false) }

func (r *rawRead) do(p []byte, wait bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.tryFn == nil {
		r.tryFn, r.waitFn = r.tryCall, r.waitCall
	}
	fn := r.tryFn
	if wait {
		fn = r.waitFn
	}
	r.p, r.n, r.err = p, 0, nil
	err := r.rc.Read(fn)
	n, rerr := r.n, r.err
	r.p, r.err = nil, nil
	switch {
	case err != nil && wait:
		return 0, err
	case err != nil, rerr == unix.EAGAIN:
		return 0, nil
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("recvfrom", rerr)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// rawWrite is the state of one write through a RawConn: a connection's
// (rawIO) or one taken from rawWrites for a single write (writeRC).
type rawWrite struct {
	rc  syscall.RawConn
	p   []byte
	n   int
	err error
	fn  func(uintptr) bool // call, bound once
}

var rawWrites = sync.Pool{New: func() any {
	w := &rawWrite{}
	w.fn = w.call
	return w
}}

// writeRC writes all of p to the socket of rc, waiting in Go's poller when
// it is full (under the socket's write deadline), with writeNonblock's raw
// calls: what net.TCPConn's Write does.
func writeRC(rc syscall.RawConn, p []byte) (int, error) {
	w := rawWrites.Get().(*rawWrite)
	w.rc = rc
	n, err := w.write(p)
	w.rc = nil
	rawWrites.Put(w)
	return n, err
}

// newRawIO returns the raw reader and writer of c, or nil when c has no
// descriptor to reach (the caller then uses c's own Read and Write).
func newRawIO(c net.Conn) *rawIO {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawIO{}
	r.r.rc = rc
	r.w.rc, r.w.fn = rc, r.w.call
	return r
}

func (r *rawIO) read(p []byte) (int, error) { return r.r.read(p) }

func (r *rawIO) write(p []byte) (int, error) { return r.w.write(p) }

func (w *rawWrite) call(fd uintptr) bool {
	n, err := writeNonblock(fd, w.p[w.n:])
	w.n += n
	if err != nil {
		w.err = err
		return true
	}
	return w.n == len(w.p) // else wait until writable
}

func (w *rawWrite) write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	w.p, w.n, w.err = p, 0, nil
	err := w.rc.Write(w.fn)
	n, werr := w.n, w.err
	w.p, w.err = nil, nil
	switch {
	case werr != nil:
		return n, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("sendto", werr)}
	case err != nil:
		return n, err
	}
	return n, nil
}

// spliceNonblock is one splice(2) of up to n bytes from rfd to wfd without
// blocking (EAGAIN: nothing to move, or no room), raw as readNonblock.
func spliceNonblock(rfd, wfd uintptr, n int) (int64, error) {
	m, _, e := unix.RawSyscall6(unix.SYS_SPLICE, rfd, 0, wfd, 0, uintptr(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	if e != 0 {
		return 0, e
	}
	return int64(m), nil
}

// queuedNonblock is how many bytes fd's receive queue holds (SIOCINQ), 0 on
// an error, raw as readNonblock.
func queuedNonblock(fd uintptr) int {
	var q int32
	if _, _, e := unix.RawSyscall(unix.SYS_IOCTL, fd, unix.SIOCINQ, uintptr(unsafe.Pointer(&q))); e != 0 {
		return 0
	}
	return int(q)
}
