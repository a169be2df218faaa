package proxy

import (
	"context"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http2"
)

// HTTP/2 to clients: a TLS connection that negotiated "h2" by ALPN is served by
// golang.org/x/net/http2's server, each stream handed to an H2Forwarder, which the HTTP/1
// backend engine implements (the request goes to a real server over a kept-alive HTTP/1.1
// connection). h2c (cleartext HTTP/2) is not offered.
//
// Protections: x/net v0.62.0 (go.mod) has the HTTP/2 rapid-reset fix (CVE-2023-44487, since
// v0.17.0: a connection's handlers are bounded by MaxConcurrentStreams, excess streams queue and
// a client resetting faster than handlers finish is disconnected) and the CONTINUATION-flood fix
// (CVE-2023-45288, since v0.23.0: header frames past the header list limit end the connection
// instead of being decoded). On top of them halb sets every limit explicitly (H2Limits).

// H2Forwarder serves one HTTP/2 stream: r is the client's request (r.Body streams its body), w
// the response. It runs on its own goroutine, one per stream.
type H2Forwarder interface {
	ForwardH2(w http.ResponseWriter, r *http.Request)
}

// H2Limits bound what one client connection may ask; zero fields take the defaults below.
type H2Limits struct {
	MaxConcurrentStreams      uint32        // streams open at once (SETTINGS_MAX_CONCURRENT_STREAMS)
	MaxHeaderListSize         int           // decoded header bytes of a request (SETTINGS_MAX_HEADER_LIST_SIZE)
	MaxDecoderHeaderTableSize uint32        // HPACK dynamic table for the client's headers
	MaxReadFrameSize          uint32        // largest frame accepted (SETTINGS_MAX_FRAME_SIZE)
	MaxUploadBufferPerStream  int32         // flow-control window per stream (request body buffered)
	MaxUploadBufferPerConn    int32         // flow-control window per connection
	IdleTimeout               time.Duration // no open stream for this long: GOAWAY and close
	WriteTimeout              time.Duration // a write to the client making no progress for this long: close
	CountError                func(kind string)
}

// HTTP/2 defaults (HAProxy's h2 defaults where it has one).
const (
	DefaultH2MaxConcurrentStreams = 100
	DefaultH2HeaderTableSize      = 4096
	DefaultH2MaxReadFrameSize     = 16 << 10
	DefaultH2StreamWindow         = 256 << 10
	DefaultH2ConnWindow           = 1 << 20
)

func (l H2Limits) withDefaults() H2Limits {
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = DefaultH2MaxConcurrentStreams
	}
	if l.MaxHeaderListSize <= 0 {
		l.MaxHeaderListSize = DefaultMaxHeaderSize
	}
	if l.MaxDecoderHeaderTableSize == 0 {
		l.MaxDecoderHeaderTableSize = DefaultH2HeaderTableSize
	}
	if l.MaxReadFrameSize == 0 {
		l.MaxReadFrameSize = DefaultH2MaxReadFrameSize
	}
	if l.MaxUploadBufferPerStream <= 0 {
		l.MaxUploadBufferPerStream = DefaultH2StreamWindow
	}
	if l.MaxUploadBufferPerConn <= 0 {
		l.MaxUploadBufferPerConn = DefaultH2ConnWindow
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultHTTPKeepAliveTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultClientTimeout
	}
	return l
}

// H2Server serves HTTP/2 client connections of one service.
type H2Server struct {
	srv  *http2.Server
	base *http.Server
}

// NewH2Server returns a server handing every stream to fwd.
func NewH2Server(log *zap.Logger, l H2Limits, fwd H2Forwarder) *H2Server {
	l = l.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	srv := &http2.Server{
		MaxHandlers:                  int(l.MaxConcurrentStreams),
		MaxConcurrentStreams:         l.MaxConcurrentStreams,
		MaxDecoderHeaderTableSize:    l.MaxDecoderHeaderTableSize,
		MaxEncoderHeaderTableSize:    DefaultH2HeaderTableSize,
		MaxReadFrameSize:             l.MaxReadFrameSize,
		IdleTimeout:                  l.IdleTimeout,
		WriteByteTimeout:             l.WriteTimeout,
		MaxUploadBufferPerConnection: l.MaxUploadBufferPerConn,
		MaxUploadBufferPerStream:     l.MaxUploadBufferPerStream,
		CountError:                   l.CountError,
	}
	base := &http.Server{
		Handler:        http.HandlerFunc(fwd.ForwardH2),
		MaxHeaderBytes: l.MaxHeaderListSize,
		ErrorLog:       zap.NewStdLog(log.Named("h2")),
	}
	// Registers srv's graceful shutdown (GOAWAY to every connection) with base.Shutdown.
	if err := http2.ConfigureServer(base, srv); err != nil {
		log.Warn("h2: configure", zap.Error(err)) // only fails on a TLS config we do not set
	}
	return &H2Server{srv: srv, base: base}
}

// ServeConn serves c, a TLS connection whose negotiated protocol is "h2", until the client goes
// or the connection fails. ctx is the parent of every stream's request context; when the
// connection ends, forwarders still running see their request's context cancelled.
func (s *H2Server) ServeConn(ctx context.Context, c net.Conn) {
	s.srv.ServeConn(c, &http2.ServeConnOpts{Context: ctx, BaseConfig: s.base, Handler: s.base.Handler})
}

// Shutdown sends GOAWAY on every connection being served: clients finish their streams and open
// no new one. It does not wait for the connections to end (their ServeConn calls return then).
func (s *H2Server) Shutdown(ctx context.Context) error { return s.base.Shutdown(ctx) }
