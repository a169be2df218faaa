// Package proxy is halb's data plane: a userspace full proxy with listeners
// bound with IP_FREEBIND (one SO_REUSEPORT socket and accept loop per core),
// a TCP relay that splices bulk data, an HTTP/1.1 engine (request heads parsed
// by fasthttp after strict checks, responses by its own strict parser, large
// bodies spliced), TLS passthrough routed by SNI, the PROXY protocol (v1, v2)
// both ways, connection limits with a bounded queue, retries with redispatch
// and passive health.
//
// A connection with nothing in flight parks: it holds no goroutine and no
// buffer, only its socket and a small record, while an epoll set of its core
// waits for its next bytes (park.go). docs/dataplane.md draws the states.
//
// # Timeouts
//
// A zero field of Timeouts takes its default:
//
//	Connect     5s   dialing a backend (each attempt)
//	Client      60s  client inactivity: waiting for client data or for the client to accept ours
//	Server      60s  backend inactivity, the same for the backend side
//	HTTPRequest 10s  receiving a complete HTTP request head (slowloris guard); also the
//	                 limit for a PROXY header and a TLS ClientHello to arrive, and for
//	                 the first request of a connection to start
//	HTTPKeepAlive 10s an idle keep-alive connection waiting for its next request
//	Tunnel      1h   inactivity of an upgraded HTTP connection (WebSocket); in TCP and TLS
//	                 mode only when set explicitly, where it replaces Client and Server
//	Queue       = Connect  time a connection may wait in the queue for a free slot
//
// Inactivity counts traffic in both directions of a connection: a one-way
// transfer does not time out because the other direction is silent. On the
// splice path a silent connection ends between 1 and 1.25 times its timeout.
//
// # Limits
//
// A new connection needs a slot of Global.MaxConn and of its service's
// MaxConn; without one it waits in the service's queue (at most MaxQueue
// waiting, each up to Timeouts.Queue), else it is refused (HTTP: 503). A
// backend's maxconn (balance.Member.MaxConn) is taken per TCP connection or
// per HTTP request; a full backend is passed over, and when all are full the
// connection or request waits in the same bounded queue.
//
// # HTTP
//
// Requests are checked strictly before any backend is contacted (framing,
// header syntax, version; 400, 414, 431, 501, 505), hop-by-hop headers are
// removed both ways, X-Forwarded-For, X-Forwarded-Proto and Forwarded are set,
// and bodies stream both ways with bounded memory. Backend connections belong
// to the client connection that opened them and are reused only by its later
// requests; one framing decision says when one may be reused, one rule when a
// request may be resent, and only a 101 answering an Upgrade request makes a
// tunnel.
package proxy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"halb/proxy/balance"
)

// Mode is a service's proxy mode.
type Mode uint8

const (
	ModeTCP  Mode = iota // layer 4 full proxy (splice)
	ModeHTTP             // HTTP/1.x reverse proxy
	ModeTLS              // TLS passthrough, backend chosen by SNI
)

func (m Mode) String() string {
	switch m {
	case ModeTCP:
		return "tcp"
	case ModeHTTP:
		return "http"
	case ModeTLS:
		return "tls"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses "tcp", "http" or "tls".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return ModeTCP, nil
	case "http":
		return ModeHTTP, nil
	case "tls":
		return ModeTLS, nil
	}
	return 0, fmt.Errorf("proxy: unknown mode %q (want tcp, http or tls)", s)
}

// Timeouts of a service; zero fields take the defaults in the package documentation.
type Timeouts struct {
	Connect, Client, Server, HTTPRequest, HTTPKeepAlive, Tunnel, Queue time.Duration
}

// Default timeouts.
const (
	DefaultConnectTimeout       = 5 * time.Second
	DefaultClientTimeout        = 60 * time.Second
	DefaultServerTimeout        = 60 * time.Second
	DefaultHTTPRequestTimeout   = 10 * time.Second
	DefaultHTTPKeepAliveTimeout = 10 * time.Second
	DefaultTunnelTimeout        = time.Hour
)

// Default HTTP limits.
const (
	DefaultMaxHeaderSize = 16 << 10 // a request head longer than this gets 431 (414 for its request line)
	DefaultMaxURISize    = 8 << 10  // a longer request target gets 414
)

// withDefaults fills zero fields. tunnelSet reports whether Tunnel was given.
func (t Timeouts) withDefaults() (out Timeouts, tunnelSet bool) {
	tunnelSet = t.Tunnel > 0
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, DefaultConnectTimeout)
	def(&t.Client, DefaultClientTimeout)
	def(&t.Server, DefaultServerTimeout)
	def(&t.HTTPRequest, DefaultHTTPRequestTimeout)
	def(&t.HTTPKeepAlive, DefaultHTTPKeepAliveTimeout)
	def(&t.Tunnel, DefaultTunnelTimeout)
	def(&t.Queue, t.Connect)
	return t, tunnelSet
}

// SNIRoute sends TLS connections whose server name matches Names to Pool.
// A name is exact ("www.example.com") or a one-label wildcard ("*.example.com"
// matches "a.example.com", not "a.b.example.com" nor "example.com").
type SNIRoute struct {
	Names []string
	Pool  *balance.Pool
}

// BackendOpts are per-real-server overrides. The integrator stores a
// *BackendOpts in balance.Member.Data; nil means the service defaults.
type BackendOpts struct {
	SendProxy ProxyProto
}

// ServiceSpec describes one listener and what it serves.
type ServiceSpec struct {
	Name             string // e.g. "198.18.0.10:80"
	Listen           netip.AddrPort
	Mode             Mode
	Pool             *balance.Pool // default backend set (TLS: servers without sni; may be nil)
	SNI              []SNIRoute    // TLS mode only
	Timeouts         Timeouts
	MaxConn          int     // per service, 0 = unlimited
	MaxQueue         int     // bounded wait queue when MaxConn (service or global) is reached, or every backend is at its maxconn; beyond it: refuse (HTTP: 503)
	Retries          int     // connect retries on another backend (redispatch)
	MaxHeaderSize    int     // HTTP: request head limit in bytes (0: DefaultMaxHeaderSize)
	MaxURISize       int     // HTTP: request target limit in bytes (0: DefaultMaxURISize)
	L7               *L7Spec // HTTP: routes, rules, TLS termination (nil: plain HTTP/1.1 to Pool)
	SendProxy        ProxyProto
	AcceptProxy      bool // expect a PROXY v1/v2 header from TrustedProxies (others: close)
	TrustedProxies   []netip.Prefix
	TrustedUpstreams []netip.Prefix // HTTP: append to their X-Forwarded-For/Forwarded; others' are replaced
	PassiveFail      int            // consecutive connect failures on live traffic → OnPassiveFail(backend) (0 = off)
	OnPassiveFail    func(b *balance.Backend)
}

// Global holds process-wide limits.
type Global struct {
	MaxConn   int // all services together, 0 = unlimited
	LogSample int // log 1 in LogSample successful sessions/requests (0 or 1: all); errors always
}

// ServiceStats is a snapshot of a service's counters. Counters survive Apply
// as long as the service keeps its Name.
type ServiceStats struct {
	Name     string
	Listen   netip.AddrPort
	Mode     Mode
	Active   int64     // connections being served (queued ones excluded)
	Total    uint64    // connections accepted
	Queued   int64     // connections waiting for a slot now
	Refused  uint64    // connections refused by limits (queue full or queue timeout) or by AcceptProxy
	BytesIn  uint64    // from clients
	BytesOut uint64    // to clients
	Requests [6]uint64 // HTTP responses by status class: [1] 1xx … [5] 5xx ([0] unused)
	Errors   uint64    // failed sessions/requests: no backend, connect failures, timeouts, bad requests
	Backends []balance.BackendView
}

func validateSpecs(specs []ServiceSpec) error {
	seenName := make(map[string]bool, len(specs))
	seenAddr := make(map[netip.AddrPort]bool, len(specs))
	for i := range specs {
		s := &specs[i]
		if s.Name == "" {
			return fmt.Errorf("proxy: service #%d (%v): empty name", i, s.Listen)
		}
		if seenName[s.Name] {
			return fmt.Errorf("proxy: service %q: duplicate name", s.Name)
		}
		seenName[s.Name] = true
		if !s.Listen.Addr().IsValid() {
			return fmt.Errorf("proxy: service %q: invalid listen address", s.Name)
		}
		if seenAddr[s.Listen] && s.Listen.Port() != 0 {
			return fmt.Errorf("proxy: service %q: listen address %v used twice", s.Name, s.Listen)
		}
		seenAddr[s.Listen] = true
		if s.Mode > ModeTLS {
			return fmt.Errorf("proxy: service %q: bad mode %v", s.Name, s.Mode)
		}
		if len(s.SNI) > 0 && s.Mode != ModeTLS {
			return fmt.Errorf("proxy: service %q: SNI routes need mode tls", s.Name)
		}
		for _, r := range s.SNI {
			for _, n := range r.Names {
				if w, ok := strings.CutPrefix(n, "*."); ok {
					n = w
				}
				if !validSNI([]byte(n)) {
					return fmt.Errorf("proxy: service %q: bad SNI name %q", s.Name, n)
				}
			}
		}
		if s.SendProxy > ProxyV2 {
			return fmt.Errorf("proxy: service %q: bad send-proxy %v", s.Name, s.SendProxy)
		}
		if s.MaxConn < 0 || s.MaxQueue < 0 || s.Retries < 0 || s.PassiveFail < 0 {
			return fmt.Errorf("proxy: service %q: negative limit", s.Name)
		}
	}
	return nil
}
