package proxy

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// corkConn gathers the writes of an HTTP/2 connection into fewer system
// calls. x/net/http2 flushes its frames whenever its write queue is empty,
// which with many streams answered one after the other is once or twice per
// response: a write(2) each, most of the proxy's time on loopback. Corked,
// a write only appends to a buffer and starts a flush, which yields once so
// that the other streams' goroutines ready to run add their frames first,
// then writes everything in one call. Nothing waits for a timer: an idle
// connection's bytes go out as soon as the writer's goroutine lets go.
//
// Until cork is called (during the TLS handshake, and for HTTP/1.1) writes
// go straight through. Corked, the flush owns the write deadline (idle: no
// progress for that long ends the connection); deadlines set by the caller
// apply to reads only.
type corkConn struct {
	net.Conn
	corked bool
	idle   time.Duration

	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte
	flushing bool
	err      error
}

const (
	corkMax    = 256 << 10 // a writer waits while this much is pending
	corkBuf    = 32 << 10
	corkDirect = 8 << 10 // a write this long with nothing pending goes out at once
)

var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, corkBuf); return &b }}

func newCorkConn(c net.Conn) *corkConn {
	cc := &corkConn{Conn: c}
	cc.cond.L = &cc.mu
	return cc
}

// cork starts gathering writes; call it before any other goroutine writes.
func (c *corkConn) cork(idle time.Duration) {
	c.corked, c.idle = true, idle
}

func (c *corkConn) Write(p []byte) (int, error) {
	if !c.corked {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && len(c.buf) >= corkMax {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if !c.flushing && len(p) >= corkDirect {
		// A large write (bodies) gains nothing from waiting, and copying it
		// would cost: it goes out from the caller's goroutine, while others
		// gather behind it.
		c.flushing = true
		c.mu.Unlock()
		err := c.send(p)
		c.mu.Lock()
		c.sent(err)
		if len(c.buf) > 0 && c.err == nil {
			go c.flush()
		} else {
			c.flushing = false
		}
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if c.buf == nil {
		c.buf = (*corkBufs.Get().(*[]byte))[:0]
	}
	c.buf = append(c.buf, p...)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	return len(p), nil
}

// flush writes what is pending until nothing is.
func (c *corkConn) flush() {
	runtime.Gosched() // the goroutines ready to write go first
	c.mu.Lock()
	for len(c.buf) > 0 && c.err == nil {
		b := c.buf
		c.buf = nil
		c.mu.Unlock()
		err := c.send(b)
		if cap(b) <= 2*corkMax {
			b = b[:0]
			corkBufs.Put(&b)
		}
		c.mu.Lock()
		c.sent(err)
	}
	c.flushing = false
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *corkConn) send(b []byte) error {
	c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	_, err := c.Conn.Write(b)
	return err
}

// sent records a write's result; c.mu is held.
func (c *corkConn) sent(err error) {
	if err != nil && c.err == nil {
		c.err = err
		c.Conn.Close() // the reader sees it too
	}
	c.cond.Broadcast()
}

func (c *corkConn) SetDeadline(t time.Time) error {
	if c.corked {
		return c.Conn.SetReadDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

func (c *corkConn) SetWriteDeadline(t time.Time) error {
	if c.corked {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// Close writes what is pending (bounded by the idle timeout), then closes.
func (c *corkConn) Close() error {
	if c.corked {
		c.mu.Lock()
		for c.flushing && c.err == nil {
			c.cond.Wait()
		}
		c.mu.Unlock()
	}
	return c.Conn.Close()
}
