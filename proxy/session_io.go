package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"halb/proxy/balance"
)

const refused503 = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nService Unavailable\n"

// refuseHTTP answers 503 without reading the request, then lingers briefly
// so that the unread request does not turn the close into a reset.
func refuseHTTP(c *net.TCPConn, timeout time.Duration) {
	c.SetDeadline(time.Now().Add(min(timeout, time.Second)))
	if _, err := io.WriteString(c, refused503); err != nil {
		return
	}
	c.CloseWrite()
	io.CopyN(io.Discard, c, 64<<10)
}

// readProxyHeader reads a PROXY header from a trusted source and keeps any
// bytes read past it in se.prefix.
func (s *Server) readProxyHeader(se *session) error {
	if !inPrefixes(se.src.Addr(), se.svc.spec.TrustedProxies) {
		return fmt.Errorf("proxy: accept-proxy: %v is not a trusted proxy", se.src.Addr())
	}
	c := se.client
	c.SetReadDeadline(time.Now().Add(se.svc.to.HTTPRequest))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		h, hn, perr := ParseProxyHeader(buf)
		if perr == nil {
			if !h.Local {
				se.src = netip.AddrPortFrom(h.Src.Addr().Unmap(), h.Src.Port())
				dst := netip.AddrPortFrom(h.Dst.Addr().Unmap(), h.Dst.Port())
				se.ppDst = &dst
			}
			se.prefix = append(se.prefix, buf[hn:]...)
			return nil
		}
		if !errors.Is(perr, ErrProxyIncomplete) {
			return fmt.Errorf("proxy: accept-proxy: %w", perr)
		}
		if err != nil {
			return fmt.Errorf("proxy: accept-proxy: read: %w", err)
		}
	}
}

// logSession writes the one line per TCP/TLS session.
func (svc *service) logSession(se *session, b *balance.Backend, in, out int64, cause string, err error, extra ...zap.Field) {
	if !svc.srv.shouldLog(svc.log, err != nil) {
		return
	}
	backend := "-"
	if b != nil {
		backend = b.Name()
	}
	fields := append([]zap.Field{
		zap.String("client", se.src.String()),
		zap.String("backend", backend),
		zap.Int64("bytes_in", in),
		zap.Int64("bytes_out", out),
		zap.Duration("duration", time.Since(time.Unix(0, se.start))),
		zap.String("termination", cause),
	}, extra...)
	if err != nil {
		svc.log.Warn("session", append(fields, zap.Error(err))...)
		return
	}
	svc.log.Info("session", fields...)
}
