package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTCPEcho(t *testing.T) {
	for _, fam := range []struct{ network, addr, listen string }{
		{"tcp4", "127.0.0.1:0", "127.0.0.1:0"},
		{"tcp6", "[::1]:0", "[::1]:0"},
	} {
		t.Run(fam.network, func(t *testing.T) {
			e := newEcho(t, fam.network, fam.addr)
			s := startServer(t, Global{}, ServiceSpec{Name: "t", Listen: mustAP(fam.listen), Mode: ModeTCP, Pool: pool(e.ln.Addr())})
			c := dial(t, s.Addr("t"))
			data := make([]byte, 1<<20)
			rand.Read(data)
			go func() {
				c.Write(data)
				c.CloseWrite() // half-close must reach the backend, whose echo then ends
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("echo mismatch: got %d bytes", len(got))
			}
			st := s.Stats()[0]
			if st.Total != 1 || st.BytesIn != uint64(len(data)) || st.BytesOut != uint64(len(data)) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestTCPExchanges: request/response rounds of sizes around the burst buffer
// (smallCopy) arrive whole and in order, through both the buffered and the
// spliced part of a burst.
func TestTCPExchanges(t *testing.T) {
	e := newEcho(t, "tcp4", "127.0.0.1:0")
	s := startServer(t, Global{}, ServiceSpec{Name: "t", Listen: lo4, Mode: ModeTCP, Pool: pool(e.ln.Addr())})
	c := dial(t, s.Addr("t"))
	var sent uint64
	for i, size := range []int{1, 100, smallCopy - 1, smallCopy, smallCopy + 1, 3*smallCopy + 7, 5, spliceChunk + 3, 64} {
		data := make([]byte, size)
		rand.Read(data)
		go c.Write(data)
		got := make([]byte, size)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("round %d (%d bytes): %v", i, size, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("round %d (%d bytes): echo mismatch", i, size)
		}
		sent += uint64(size)
	}
	c.CloseWrite()
	if n, _ := io.Copy(io.Discard, c); n != 0 {
		t.Fatalf("%d bytes after the last round", n)
	}
	eventually(t, "session stats", func() bool {
		st := s.Stats()[0]
		return st.BytesIn == sent && st.BytesOut == sent
	})
}

// TestTCPBackpressure: small writes towards a server that does not read fill
// every buffer on the way, so the relay's non-blocking writes (short bursts
// are written from inside the wait, pipe.go) find the socket full and go on
// with waiting writes; once the server reads, every byte arrives once and in
// order.
func TestTCPBackpressure(t *testing.T) {
	// A small receive buffer on the listener, so that accepted connections
	// start with a small window (shrinking it after the handshake stalls
	// the sender on retransmission timers instead).
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
		return nil
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	start := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		<-start
		b, _ := io.ReadAll(c)
		got <- b
	}()
	s := startServer(t, Global{}, ServiceSpec{Name: "t", Listen: lo4, Mode: ModeTCP, Pool: pool(ln.Addr())})
	c := dial(t, s.Addr("t"))
	c.SetWriteBuffer(4096)
	data := make([]byte, 8<<20) // every buffer on the way holds far less
	rand.Read(data)
	const chunk = 1500 // a short burst each
	blocked := false
	for off := 0; off < len(data); {
		wait := 100 * time.Millisecond // nothing moved for this long: blocked
		if blocked {
			wait = 10 * time.Second
		}
		c.SetWriteDeadline(time.Now().Add(wait))
		n, err := c.Write(data[off:min(off+chunk, len(data))])
		off += n
		switch {
		case err == nil:
		case isTimeout(err) && !blocked:
			blocked = true // every buffer is full: let the server read
			close(start)
		default:
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	if !blocked {
		close(start)
		t.Fatalf("%d bytes written without the server reading and nothing blocked", len(data))
	}
	c.CloseWrite()
	b := <-got
	if !bytes.Equal(b, data) {
		t.Fatalf("the server got %d bytes, not the %d sent, in order", len(b), len(data))
	}
}
