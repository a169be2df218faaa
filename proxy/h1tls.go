package proxy

import (
	"bufio"
	"context"
	"halb/proxy/balance"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// TLS termination (tls_certificate) and HTTP/2 to clients (alpn h2).
//
// A TLS connection is served by the same HTTP/1 engine over the *tls.Conn,
// with the same checks, routes and rules; it keeps its goroutine while open
// (crypto/tls reads through a net.Conn and buffers what it decrypted, so the
// descriptor's readiness says nothing), and bodies go through a buffer
// (no splice through TLS).
//
// An HTTP/2 connection is served by x/net/http2 (l7_h2.go). Each stream is
// handed to the HTTP/1 engine through an in-memory pipe as one HTTP/1.1
// request with Connection: close, so that every rule of the engine (framing
// checks, routes, header rules, private server connections, the retry rule)
// applies to HTTP/2 requests unchanged; the response comes back the same way
// and is written to the stream.

// serveTLSTerminated handshakes, then serves HTTP/1.1 or HTTP/2.
func (svc *service) serveTLSTerminated(h *h1conn, l7 *L7Spec) {
	se := h.se
	tc, err := Handshake(context.Background(), se.client, l7.TLS.Config(), svc.to.HTTPRequest)
	if err != nil {
		se.shard.errs.Add(1)
		se.client.Close()
		svc.logSession(se, nil, 0, 0, "TLS handshake failed", err)
		se.end()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" && svc.h2 != nil {
		conns := &h2conns{}
		svc.h2.ServeConn(context.WithValue(context.Background(), h2connsKey{}, conns), tc)
		conns.close()
		tc.Close()
		se.end()
		return
	}
	h.nc, h.tls = tc, true
	h.firstWait = true
	h.run()
}

// h2bridge hands HTTP/2 streams to the HTTP/1 engine (H2Forwarder).
type h2bridge struct{ svc *service }

func (b h2bridge) ForwardH2(w http.ResponseWriter, r *http.Request) {
	svc := b.svc
	client, engine := net.Pipe()
	defer client.Close()
	src, _ := netip.ParseAddrPort(r.RemoteAddr)
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	vse := &session{svc: svc, start: time.Now(), src: src, shard: &svc.st.shards[0], onEnd: func(*session) {}}
	h := &h1conn{se: vse, svc: svc, nc: engine, tls: true, firstWait: true}
	h.shared, _ = r.Context().Value(h2connsKey{}).(*h2conns)
	h.wakeF, h.expireF = h.wake, h.expire
	go h.run()

	// The request, as HTTP/1.1: no default User-Agent, one request per pipe.
	if _, ok := r.Header["User-Agent"]; !ok {
		r.Header["User-Agent"] = []string{""}
	}
	r.Close = true
	werr := make(chan error, 1)
	go func() { werr <- r.Write(client) }()
	br := bufio.NewReader(client)
	var resp *http.Response
	var err error
	for {
		client.SetReadDeadline(time.Now().Add(svc.to.Server + svc.to.Connect))
		resp, err = http.ReadResponse(br, r)
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == 101 {
			break
		}
		copyHeader(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode) // 1xx (103 Early Hints) go to the client as such
	}
	if err != nil {
		svc.log.Debug("h2 stream: no response from the engine", zap.Error(err))
		http.Error(w, "Bad Gateway", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	copyHeader(w.Header(), resp.Header)
	for k := range resp.Trailer {
		w.Header().Add("Trailer", k)
	}
	w.WriteHeader(resp.StatusCode)
	client.SetReadDeadline(time.Time{})
	io.Copy(w, resp.Body)
	for k, vs := range resp.Trailer {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	<-werr
}

// copyHeader copies a response's fields to an HTTP/2 stream, without the
// connection-specific ones HTTP/2 forbids (RFC 9113 §8.2.2).
func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		switch strings.ToLower(k) {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer":
			continue
		}
		dst[k] = append(dst[k][:0], vs...)
	}
}

// h2conns are the idle server connections of one HTTP/2 client connection,
// shared by its streams: one client, so nothing one stream's server sends can
// reach another client; without them every stream dialled its server.
type h2conns struct {
	mu     sync.Mutex
	idle   []*beConn
	closed bool
}

type h2connsKey struct{}

const maxH2Idle = 32

// take returns an idle connection to b, or nil.
func (p *h2conns) take(b *balance.Backend) *beConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.idle) - 1; i >= 0; i-- {
		if be := p.idle[i]; be.b == b {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return be
		}
	}
	return nil
}

// put keeps be for a later stream; false: full or closed (the caller closes it).
func (p *h2conns) put(be *beConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= maxH2Idle {
		return false
	}
	p.idle = append(p.idle, be)
	return true
}

// close closes every idle connection; later puts are refused.
func (p *h2conns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, be := range p.idle {
		be.close()
	}
	p.idle = nil
}
