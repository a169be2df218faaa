package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"
)

// maxBodySize bounds what the built-in backend will generate for GET /N.
const maxBodySize = 64 << 20

// builtinBackend is the fallback HTTP/1.1 backend when nginx is not installed: GET /N answers
// N bytes of 'a' with a Content-Length (N ≤ 64 MiB), anything else 404. Bodies are built once
// per size and shared.
type builtinBackend struct {
	mu     sync.Mutex
	bodies map[int][]byte
	srv    *fasthttp.Server
}

func newBuiltinBackend() *builtinBackend {
	b := &builtinBackend{bodies: make(map[int][]byte)}
	b.srv = &fasthttp.Server{
		Handler:                       b.handle,
		Name:                          "halb-bench-backend",
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: true,
		Concurrency:                   1 << 20,
	}
	return b
}

func (b *builtinBackend) body(n int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	body, ok := b.bodies[n]
	if !ok {
		body = bytes.Repeat([]byte{'a'}, n)
		b.bodies[n] = body
	}
	return body
}

func (b *builtinBackend) handle(ctx *fasthttp.RequestCtx) {
	p := ctx.Path()
	n, err := strconv.Atoi(string(bytes.TrimPrefix(p, []byte("/"))))
	if len(p) < 2 || err != nil || n < 0 || n > maxBodySize {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	ctx.Response.Header.SetContentTypeBytes([]byte("application/octet-stream"))
	ctx.Response.SetBodyRaw(b.body(n))
}

// serve answers on ln until ctx is done.
func (b *builtinBackend) serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- b.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("bench: backend: %w", err)
	case <-ctx.Done():
		err := b.srv.Shutdown()
		<-errc
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("bench: backend shutdown: %w", err)
		}
		return nil
	}
}

// ServeBackend runs the built-in backend on addr (which must be a 127.0.0.1 or ::1 address)
// until ctx is done. `halb bench --serve ADDR` runs it as a separate process.
func ServeBackend(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bench: backend listen: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("bench: backend listen: %q is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bench: backend listen: %w", err)
	}
	return newBuiltinBackend().serve(ctx, ln)
}
