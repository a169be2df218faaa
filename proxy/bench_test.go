package proxy

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// fastBackend answers every request on a keep-alive connection with a fixed
// response; a minimal backend so that the proxy dominates the profile.
func fastBackend(b *testing.B, body []byte) net.Addr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	resp := append([]byte("HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"), body...)
	acceptLoop(b, ln, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReaderSize(c, 16<<10)
		for {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) <= 2 {
					break
				}
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
	return ln.Addr()
}

// BenchmarkHTTPProxy: keep-alive GETs of a 1 KiB response through the proxy
// on loopback, from parallel clients.
func BenchmarkHTTPProxy(b *testing.B) {
	be := fastBackend(b, make([]byte, 1024))
	s := NewServer(zap.NewNop(), Global{LogSample: 1000})
	if err := s.Apply([]ServiceSpec{{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be)}}); err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(b.Context())
	c := &fasthttp.HostClient{Addr: s.Addr("h").String(), MaxConns: 512,
		Dial: func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }}
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://bench/")
		for pb.Next() {
			if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 || len(resp.Body()) != 1024 {
				b.Errorf("%v %d", err, resp.StatusCode())
				return
			}
		}
	})
}

// BenchmarkTCPProxy: bulk transfer through the splice path (bytes/s).
func BenchmarkTCPProxy(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	acceptLoop(b, ln, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
	s := NewServer(zap.NewNop(), Global{})
	if err := s.Apply([]ServiceSpec{{Name: "t", Listen: lo4, Mode: ModeTCP, Pool: pool(ln.Addr())}}); err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(b.Context())
	c, err := net.Dial("tcp", s.Addr("t").String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResponseHead: nginx's answer to a static file, parsed and its
// fields listed for the client, as each answer is.
func BenchmarkResponseHead(b *testing.B) {
	raw := []byte("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 18:45:00 GMT\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Length: 128\r\nLast-Modified: Mon, 07 Dec 2026 17:00:00 GMT\r\n" +
		"Connection: keep-alive\r\nETag: \"6756a0a0-80\"\r\nAccept-Ranges: bytes\r\n\r\n")
	h := &h1conn{svc: &service{spec: ServiceSpec{}}, req: &h1req{}}
	r := h.req.respHead()
	b.ReportAllocs()
	for b.Loop() {
		if err := parseResponseHead(raw, r); err != nil {
			b.Fatal(err)
		}
		if fs := h.responseFields(r, false, false); len(fs) != 7 {
			b.Fatalf("%d fields", len(fs))
		}
	}
}
