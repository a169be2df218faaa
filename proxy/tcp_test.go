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
