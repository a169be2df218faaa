package proxy

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// BenchmarkHTTPProxy64K: keep-alive GETs of a 64 KiB response (the body is spliced past spliceMin).
func BenchmarkHTTPProxy64K(b *testing.B) {
	be := fastBackend(b, make([]byte, 64<<10))
	s := NewServer(zap.NewNop(), Global{LogSample: 1000})
	if err := s.Apply([]ServiceSpec{{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be)}}); err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(b.Context())
	c := &fasthttp.HostClient{Addr: s.Addr("h").String(), MaxConns: 512, ReadBufferSize: 128 << 10,
		Dial: func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }}
	defer c.CloseIdleConnections()
	b.SetBytes(64 << 10)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://bench/")
		for pb.Next() {
			if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Errorf("%v %d", err, resp.StatusCode())
				return
			}
		}
	})
}
