package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestRawIO: rawIO reads and writes as net.TCPConn does: whole writes larger
// than the socket buffers (waiting for room), reads that wait for data,
// io.EOF at the peer's end, the read deadline's timeout, and EPIPE (not
// SIGPIPE) or a reset writing to a closed peer.
func TestRawIO(t *testing.T) {
	a, b := tcpPair(t)
	ra, rb := newRawIO(a), newRawIO(b)
	if ra == nil || rb == nil {
		t.Fatal("no rawIO for a TCP connection")
	}
	if newRawIO(nopConn{}) != nil {
		t.Fatal("rawIO for a connection without a descriptor")
	}

	// 8 MiB: far beyond both sockets' buffers, so write must wait for
	// room while the other side reads.
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	done := make(chan error, 1)
	go func() {
		n, err := ra.write(want)
		if err == nil && n != len(want) {
			err = errors.New("short write")
		}
		done <- err
	}()
	b.SetReadDeadline(time.Now().Add(10 * time.Second)) // a short write fails, not hangs
	got := make([]byte, 0, len(want))
	buf := make([]byte, 64<<10)
	for len(got) < len(want) {
		n, err := rb.read(buf)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes read differ from bytes written")
	}

	// A read waits: nothing is there, the deadline ends it with a timeout.
	b.SetReadDeadline(time.Time{})
	b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := rb.read(buf); n != 0 || !isTimeout(err) {
		t.Fatalf("read past the deadline: %d, %v; want a timeout", n, err)
	}
	b.SetReadDeadline(time.Time{})

	// The peer's end reads as io.EOF.
	a.CloseWrite()
	if n, err := rb.read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read at the peer's end: %d, %v; want io.EOF", n, err)
	}

	// Writing to a peer that closed: an error (EPIPE or ECONNRESET), the
	// process lives on.
	a.Close()
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = rb.write([]byte("after close"))
	}
	if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Fatalf("write to a closed peer: %v; want EPIPE or ECONNRESET", werr)
	}
	if n, err := rb.write(nil); n != 0 || err != nil {
		t.Fatalf("empty write: %d, %v", n, err)
	}
}

// nopConn is a net.Conn without a descriptor.
type nopConn struct{ net.Conn }
