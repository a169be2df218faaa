package proxy

import (
	"errors"
	"net"
	"net/netip"
	"sync"
)

// session is one accepted client connection, from accept to close. It is
// owned by at most one goroutine at a time: the one serving it, or none
// while it is parked (park.go).
type session struct {
	svc      *service
	client   *net.TCPConn    // nil while an idle HTTP connection is detached (h1conn.detach); written under mu
	start    int64           // unix nanos of its accept
	src      netip.AddrPort  // the client (from the PROXY header when accepted)
	ppDst    *netip.AddrPort // the address the client connected to, from its PROXY header; nil: the socket's (dstAddr)
	prefix   []byte          // client bytes read ahead and not yet forwarded
	shard    *svcShard       // this connection's counters (per accept loop)
	endOnce  sync.Once
	loop     int32 // the accept loop's index
	admitted bool  // holds a service and a global slot
	closed   bool  // guarded by mu

	mu      sync.Mutex
	backend net.Conn // tcp, tls and tunnels: for a forced close
	h1      *h1conn  // http: for drain and forced close
	pipe    *pipe    // tcp, tls and tunnels: parked directions
}

// dstAddr is the address the client connected to.
func (se *session) dstAddr() netip.AddrPort {
	if se.ppDst != nil {
		return *se.ppDst
	}
	return addrPortOf(se.client.LocalAddr())
}

// close aborts the session (forced shutdown).
func (se *session) close() {
	se.mu.Lock()
	se.closed = true
	h, p := se.h1, se.pipe
	if se.client != nil { // nil: a detached idle HTTP connection, which h.abort closes
		se.client.Close()
	}
	if se.backend != nil {
		se.backend.Close()
	}
	se.mu.Unlock()
	if p != nil {
		p.abort(errAborted)
	}
	if h != nil {
		h.abort()
	}
}

// drain closes an HTTP connection that is idle; busy ones close after their response.
func (se *session) drain() {
	se.mu.Lock()
	h := se.h1
	se.mu.Unlock()
	if h != nil {
		h.drain()
	}
}

// setBackend registers the backend connection for forced close; false if the session is already closed.
func (se *session) setBackend(c net.Conn) bool {
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.closed {
		return false
	}
	se.backend = c
	return true
}

// setPipe registers a relay for a forced close; false if the session is already closed.
func (se *session) setPipe(p *pipe, backend net.Conn) bool {
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.closed {
		return false
	}
	se.pipe, se.backend = p, backend
	return true
}

func (se *session) isClosed() bool {
	se.mu.Lock()
	defer se.mu.Unlock()
	return se.closed
}

var errAborted = errors.New("aborted")

// end is the one exit of a session: its slots are released and the server
// forgets it. The client connection must be closed by then.
func (se *session) end() {
	se.endOnce.Do(func() {
		if se.admitted {
			se.svc.srv.release(se.svc)
		}
		se.svc.srv.forget(se)
	})
}

// serve admits a new connection and hands it to its mode. The handlers own
// the session from then on and end it.
func (s *Server) serve(se *session) {
	svc := se.svc
	c := se.client
	se.shard.total.Add(1)
	se.src = addrPortOf(c.RemoteAddr())
	if !s.admit(svc) {
		se.shard.refused.Add(1)
		if svc.spec.Mode == ModeHTTP {
			se.shard.req[5].Add(1)
			refuseHTTP(c, svc.to.Client)
		}
		c.Close()
		svc.logSession(se, nil, 0, 0, "refused: maxconn and queue full or queue timeout", errors.New("refused"))
		se.end()
		return
	}
	se.admitted = true
	if svc.spec.AcceptProxy {
		if err := s.readProxyHeader(se); err != nil {
			se.shard.refused.Add(1)
			c.Close()
			svc.logSession(se, nil, 0, 0, "bad or missing PROXY header", err)
			se.end()
			return
		}
	}
	switch svc.spec.Mode {
	case ModeTCP:
		svc.serveTCP(se, svc.spec.Pool, "")
	case ModeTLS:
		svc.serveTLS(se)
	case ModeHTTP:
		svc.serveHTTP(se)
	}
}
