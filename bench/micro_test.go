package bench

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"
)

// The load generator's per-request costs: they must stay far below a proxy's.

func BenchmarkReadResponse(b *testing.B) {
	for _, tc := range []struct{ name, resp string }{
		{"length-128", "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/octet-stream\r\nContent-Length: 128\r\nConnection: keep-alive\r\n\r\n" + strings.Repeat("a", 128)},
		{"chunked-128", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n" + strings.Repeat("a", 128) + "\r\n0\r\n\r\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			in := []byte(strings.Repeat(tc.resp, 64))
			r := bytes.NewReader(in)
			br := bufio.NewReaderSize(r, 16<<10)
			b.SetBytes(int64(len(tc.resp)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if n == 64 {
					r.Reset(in)
					br.Reset(r)
					n = 0
				}
				if _, err := readResponse(br); err != nil {
					b.Fatal(err)
				}
				n++
			}
		})
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	b.ReportAllocs()
	d := time.Duration(0)
	for b.Loop() {
		d += 7919
		h.Record(d % (200 * time.Millisecond))
	}
}
