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
	rc syscall.RawConn

	rp   []byte
	rn   int
	rerr error
	rfn  func(uintptr) bool

	w rawWrite
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
	r := &rawIO{rc: rc}
	r.rfn = r.readCall
	r.w.rc, r.w.fn = rc, r.w.call
	return r
}

func (r *rawIO) readCall(fd uintptr) bool {
	n, err := readNonblock(fd, r.rp)
	if err == unix.EAGAIN {
		return false // wait until readable
	}
	r.rn, r.rerr = n, err
	return true
}

func (r *rawIO) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rp, r.rn, r.rerr = p, 0, nil
	err := r.rc.Read(r.rfn)
	n, rerr := r.rn, r.rerr
	r.rp, r.rerr = nil, nil
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("recvfrom", rerr)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

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
