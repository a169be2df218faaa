package proxy

import (
	"io"
	"net"
	"os"
	"syscall"

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

	wp   []byte
	wn   int
	werr error
	wfn  func(uintptr) bool
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
	r.rfn, r.wfn = r.readCall, r.writeCall
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

func (r *rawIO) writeCall(fd uintptr) bool {
	n, err := writeNonblock(fd, r.wp[r.wn:])
	r.wn += n
	if err != nil {
		r.werr = err
		return true
	}
	return r.wn == len(r.wp) // else wait until writable
}

func (r *rawIO) write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.wp, r.wn, r.werr = p, 0, nil
	err := r.rc.Write(r.wfn)
	n, werr := r.wn, r.werr
	r.wp, r.werr = nil, nil
	switch {
	case werr != nil:
		return n, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("sendto", werr)}
	case err != nil:
		return n, err
	}
	return n, nil
}
