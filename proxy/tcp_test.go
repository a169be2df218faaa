package proxy

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"
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
