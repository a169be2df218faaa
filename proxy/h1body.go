package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Message bodies, both ways: a body of known length goes from the reader's
// buffer first, then what remains moves socket to socket by splice(2) when
// it is at least spliceMin long (HAProxy's splice-auto; no copy through user
// space), else through the buffer. A chunked body is checked chunk by chunk
// as it passes (or unchunked for an HTTP/1.0 client); the data of large
// chunks is spliced too.

var errBadChunk = errors.New("malformed chunked coding")
var errBodyTooLarge = errors.New("request body over max_body_size")

// srcError is a failure on the side a body is read from (for a request
// body: the client's fault; errBadChunk included).
type srcError struct{ err error }

func (e *srcError) Error() string { return e.err.Error() }
func (e *srcError) Unwrap() error { return e.err }

// bodyBufs are the buffers a body bound for a TLS or HTTP/2 client is read
// into once the reader's buffer is empty: up to 64 KiB per read and per write
// (four TLS records in one sendto(2)), where the reader's 16 KiB buffer took
// four of each. Taken for the body, given back after it.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copyBody moves n bytes (n < 0: until src ends) from br, then src, to dst.
// Splice needs two TCP sockets; a TLS side goes through br, or once br is
// empty, through a body buffer (bodyBufs).
func copyBody(pp *pipePool, dst net.Conn, br *bufio.Reader, src net.Conn, n int64, rIdle, wIdle time.Duration, ctr *atomic.Uint64) (int64, error) {
	var done int64
	k := br.Buffered()
	if n >= 0 {
		k = int(min(int64(k), n))
	}
	if k > 0 {
		p, _ := br.Peek(k)
		if err := writeAll(dst, p, wIdle, nil); err != nil {
			return 0, err
		}
		br.Discard(k)
		done = int64(k)
		addCount(ctr, k)
	}
	dt, ok1 := dst.(*net.TCPConn)
	st, ok2 := src.(*net.TCPConn)
	var big *[]byte
	defer func() {
		if big != nil {
			bodyBufs.Put(big)
		}
	}()
	for n < 0 || done < n {
		rest := n - done
		if ok1 && ok2 && (n < 0 || rest >= spliceMin) {
			m, err := spliceN(pp, dt, st, rest, rIdle, wIdle)
			done += m
			addCount(ctr, int(m))
			return done, err
		}
		if !ok1 && br.Buffered() == 0 && (n < 0 || rest > int64(br.Size())) {
			// Past the reader's buffer, which bufio.Reader.Read skips for
			// a read at least its size.
			if big == nil {
				big = bodyBufs.Get().(*[]byte)
			}
			p := *big
			if n >= 0 && rest < int64(len(p)) {
				p = p[:rest]
			}
			m, err := br.Read(p)
			if m > 0 {
				if err := writeAll(dst, p[:m], wIdle, nil); err != nil {
					return done, err
				}
				done += int64(m)
				addCount(ctr, m)
			}
			if err != nil {
				if n >= 0 && done == n {
					break // whole: the connection's state is checked before reuse
				}
				if err == io.EOF {
					if n < 0 {
						return done, nil
					}
					err = io.ErrUnexpectedEOF
				}
				return done, &srcError{err}
			}
			if m > 0 {
				continue
			}
			// Nothing and no error: the reader below counts such reads.
		}
		// Through the reader's buffer.
		p, err := br.Peek(1)
		if len(p) == 0 {
			if err == io.EOF {
				if n < 0 {
					return done, nil
				}
				err = io.ErrUnexpectedEOF
			}
			return done, &srcError{err}
		}
		k := br.Buffered()
		if n >= 0 {
			k = int(min(int64(k), rest))
		}
		p, _ = br.Peek(k)
		if err := writeAll(dst, p, wIdle, nil); err != nil {
			return done, err
		}
		br.Discard(k)
		done += int64(k)
		addCount(ctr, k)
	}
	return done, nil
}

// relayConns copies both ways between a and b until both directions end
// (each half-closes the other side), with an inactivity timeout per read.
// It is the tunnel of a TLS-terminated connection, where splice can't help.
func relayConns(a, b net.Conn, idle time.Duration) (in, out int64, err error) {
	var wg sync.WaitGroup
	var errIn error
	wg.Add(1)
	go func() {
		defer wg.Done()
		in, errIn = copyIdle(b, a, idle)
	}()
	out, err = copyIdle(a, b, idle)
	wg.Wait()
	a.Close()
	b.Close()
	return in, out, errors.Join(errIn, err)
}

func copyIdle(dst, src net.Conn, idle time.Duration) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	var n int64
	for {
		src.SetReadDeadline(time.Now().Add(idle))
		k, err := src.Read(*bp)
		if k > 0 {
			if werr := writeAll(dst, (*bp)[:k], idle, nil); werr != nil {
				src.Close()
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			return n, nil
		}
		if err != nil {
			dst.Close()
			return n, err
		}
	}
}

func addCount(ctr *atomic.Uint64, n int) {
	if ctr != nil && n > 0 {
		ctr.Add(uint64(n))
	}
}

// spliceN moves n bytes (n < 0: until src ends) from src to dst through a
// pipe, without copying them to user space. Errors reading src are
// srcErrors.
func spliceN(pp *pipePool, dst, src *net.TCPConn, n int64, rIdle, wIdle time.Duration) (int64, error) {
	p, err := pp.get()
	if err != nil {
		return copyPlain(dst, src, n, rIdle, wIdle)
	}
	src.SetReadDeadline(time.Now().Add(rIdle))
	srcRC, err1 := src.SyscallConn()
	dstRC, err2 := dst.SyscallConn()
	if err1 != nil || err2 != nil {
		pp.put(p, true)
		return 0, errors.Join(err1, err2)
	}
	var moved int64
	inPipe := 0
	clean := true
	defer func() { pp.put(p, clean && inPipe == 0) }()
	var rdl, wdl time.Time
	for n < 0 || moved < n {
		now := time.Now()
		if rdl.Sub(now) < rIdle-rIdle/8 {
			rdl = now.Add(rIdle)
			src.SetReadDeadline(rdl)
		}
		want := int64(pipeCap)
		if n >= 0 {
			want = min(want, n-moved)
		}
		var k int
		var serr error
		rerr := srcRC.Read(func(fd uintptr) bool {
			for {
				var m int64
				m, serr = spliceNonblock(fd, uintptr(p[1]), int(want))
				k = int(m)
				if serr != unix.EINTR {
					return serr != unix.EAGAIN
				}
			}
		})
		switch {
		case rerr != nil:
			return moved, &srcError{rerr}
		case serr != nil:
			clean = false
			return moved, &srcError{serr}
		case k == 0:
			if n < 0 {
				return moved, nil
			}
			return moved, &srcError{io.ErrUnexpectedEOF}
		}
		inPipe = k
		if wdl.Sub(now) < wIdle-wIdle/8 {
			wdl = now.Add(wIdle)
			dst.SetWriteDeadline(wdl)
		}
		var werrno error
		werr := dstRC.Write(func(fd uintptr) bool {
			for inPipe > 0 {
				m, err := spliceNonblock(uintptr(p[0]), fd, inPipe)
				switch err {
				case nil:
					inPipe -= int(m)
					moved += m
				case unix.EINTR:
				case unix.EAGAIN:
					return false
				default:
					werrno = err
					return true
				}
			}
			return true
		})
		if werr == nil {
			werr = werrno
		}
		if werr != nil {
			clean = false
			return moved, werr
		}
	}
	return moved, nil
}

// copyPlain is spliceN without a pipe.
func copyPlain(dst, src *net.TCPConn, n int64, rIdle, wIdle time.Duration) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	var moved int64
	for n < 0 || moved < n {
		b := *bp
		if n >= 0 && int64(len(b)) > n-moved {
			b = b[:n-moved]
		}
		src.SetReadDeadline(time.Now().Add(rIdle))
		k, err := src.Read(b)
		if k > 0 {
			if werr := writeAll(dst, b[:k], wIdle, nil); werr != nil {
				return moved, werr
			}
			moved += int64(k)
		}
		if err == io.EOF && n < 0 {
			return moved, nil
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return moved, &srcError{err}
		}
	}
	return moved, nil
}

// pipeCap is the most one splice round moves (the kernel's default pipe size).
const pipeCap = 64 << 10

// pipePool keeps spare splice pipes; a bounded number, the rest are closed.
type pipePool struct {
	mu   sync.Mutex
	free [][2]int
}

const maxSparePipes = 64

func (pp *pipePool) get() ([2]int, error) {
	pp.mu.Lock()
	if n := len(pp.free); n > 0 {
		p := pp.free[n-1]
		pp.free = pp.free[:n-1]
		pp.mu.Unlock()
		return p, nil
	}
	pp.mu.Unlock()
	var p [2]int
	err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC)
	return p, err
}

// put keeps an empty pipe, or closes it.
func (pp *pipePool) put(p [2]int, empty bool) {
	if empty {
		pp.mu.Lock()
		if len(pp.free) < maxSparePipes {
			pp.free = append(pp.free, p)
			pp.mu.Unlock()
			return
		}
		pp.mu.Unlock()
	}
	unix.Close(p[0])
	unix.Close(p[1])
}

// close closes the spare pipes (Server.Shutdown).
func (pp *pipePool) close() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for _, p := range pp.free {
		unix.Close(p[0])
		unix.Close(p[1])
	}
	pp.free = nil
}

// chunkWriters buffer the small writes of a chunked relay.
var chunkWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

// deadlineWriter writes with an inactivity deadline.
type deadlineWriter struct {
	c    net.Conn
	idle time.Duration
	n    int64
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(w.idle))
	n, err := w.c.Write(p)
	w.n += int64(n)
	return n, err
}

const maxTrailer = 16 << 10

// trailerSink takes the trailer fields of a body relayed without its chunked
// coding (an HTTP/2 stream, which sends them as trailers).
type trailerSink interface {
	trailer(name, value []byte)
}

// relayChunked relays a chunked body from br (reading more from its
// connection) to dst, checking its syntax, up to and including the
// trailer section; with dechunk, only the data goes out (for an HTTP/1.0
// client; trailers are dropped). It returns the bytes written. With limit
// above 0, a body whose data goes past limit bytes ends the relay with
// errBodyTooLarge, without writing what is buffered: dst never gets a whole
// body.
func relayChunked(dst net.Conn, br *bufio.Reader, dechunk bool, wIdle time.Duration, limit int64) (int64, error) {
	dw := &deadlineWriter{c: dst, idle: wIdle}
	w := chunkWriters.Get().(*bufio.Writer)
	w.Reset(dw)
	defer func() {
		w.Reset(nil)
		chunkWriters.Put(w)
	}()
	fail := func(err error) (int64, error) {
		w.Flush()
		return dw.n, err
	}
	var data int64
	for {
		line, err := readChunkLine(br)
		if err != nil {
			return fail(err)
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return fail(&srcError{errBadChunk})
		}
		if !dechunk {
			w.Write(line)
		}
		if size == 0 {
			break
		}
		if data += size; limit > 0 && data > limit {
			return dw.n, &srcError{errBodyTooLarge}
		}
		for rest := size; rest > 0; {
			if br.Buffered() == 0 {
				if _, err := br.Peek(1); err != nil {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					return fail(&srcError{err})
				}
			}
			k := int(min(int64(br.Buffered()), rest))
			p, _ := br.Peek(k)
			if _, err := w.Write(p); err != nil {
				return fail(err)
			}
			br.Discard(k)
			rest -= int64(k)
		}
		crlf, err := br.Peek(2)
		if err != nil {
			return fail(&srcError{err})
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return fail(&srcError{errBadChunk})
		}
		if !dechunk {
			w.Write(crlf)
		}
		br.Discard(2)
	}
	// Trailer section, up to the empty line.
	total := 0
	for {
		line, err := readChunkLine(br)
		if err != nil {
			return fail(err)
		}
		total += len(line)
		if total > maxTrailer {
			return fail(&srcError{errBadChunk})
		}
		if len(line) > 2 && !validFieldLine(line[:len(line)-2]) {
			return fail(&srcError{errBadChunk})
		}
		switch ts, ok := dst.(trailerSink); {
		case !dechunk:
			w.Write(line)
		case ok && len(line) > 2:
			name, value, _ := bytes.Cut(line[:len(line)-2], []byte(":"))
			ts.trailer(name, trimOWS(value))
		}
		if len(line) == 2 {
			break
		}
	}
	if err := w.Flush(); err != nil {
		return dw.n, err
	}
	return dw.n, nil
}

// readChunkLine returns the next line with its CRLF (only valid until br is
// read again). A bare LF or an overlong line is errBadChunk.
func readChunkLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, &srcError{errBadChunk}
	case err == io.EOF:
		return nil, &srcError{io.ErrUnexpectedEOF}
	case err != nil:
		return nil, &srcError{err}
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, &srcError{errBadChunk}
	}
	return line, nil
}

// peekChunkLine checks the first chunk line without consuming it.
func peekChunkLine(br *bufio.Reader) error {
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			if i == 0 || buf[i-1] != '\r' {
				return &srcError{errBadChunk}
			}
			if _, ok := parseChunkSize(buf[:i+1]); !ok {
				return &srcError{errBadChunk}
			}
			return nil
		}
		if len(buf) > 4096 {
			return &srcError{errBadChunk}
		}
		if _, err := br.Peek(len(buf) + 1); err != nil && br.Buffered() == len(buf) {
			if err == bufio.ErrBufferFull {
				return &srcError{errBadChunk}
			}
			return &srcError{err}
		}
	}
}

// parseChunkSize parses "HEX[;ext...]\r\n" (RFC 9112 §7.1): 1 to 15 hex
// digits, extensions without control characters.
func parseChunkSize(line []byte) (int64, bool) {
	line = line[:len(line)-2]
	i := 0
	var n int64
	for ; i < len(line); i++ {
		c := line[i]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, false
		}
		n = n<<4 | int64(v)
	}
ext:
	if i == 0 {
		return 0, false
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, false
	}
	for _, c := range rest {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return 0, false
		}
	}
	return n, true
}

// validFieldLine checks one "name: value" line (without CRLF).
func validFieldLine(l []byte) bool {
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 {
		return false
	}
	for _, c := range l[:colon] {
		if !isTchar(c) {
			return false
		}
	}
	for _, c := range l[colon+1:] {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
