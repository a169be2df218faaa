package proxy

import (
	"halb/proxy/balance"
	"strings"
)

// L7Spec is what a proxy_mode http service does at layer 7 beyond forwarding to its default
// pool. The daemon builds it from the configuration (daemon/l7.go); every part is read-only
// once built and shared by the service's connections. The zero value is plain HTTP/1.1 with
// no rule.
type L7Spec struct {
	TLS *CertStore // nil: plain HTTP; else terminate TLS with it (ALPN in its Config)
	H2  bool       // ALPN offers h2: serve h2 connections with an H2Server

	// Pools are the route targets (RouteTarget.Pool indexes them), named for logs and stats.
	Pools     []*balance.Pool
	PoolNames []string
	Router    *Router // routes in order; no match: the service's default pool, or 404

	Request, Response HeaderRules        // http_request / http_response
	Cookie            *CookiePersistence // nil: none
	ErrorPages        ErrorPages         // by status code; nil: built-in texts
	MaxBodySize       int64              // 0: unlimited; see BodyTooLarge, BodyLimit
	RequestID         string             // header name; "" off
	RequestIDs        *RequestIDs        // generator when RequestID is set
	SchemeRedirect    *SchemeRedirect    // answer every request with this redirect
}

// forwardedNames are the fields halb sets on every request (setForwarded).
var forwardedNames = [...]string{"X-Forwarded-For", "X-Forwarded-Proto", "Forwarded"}

// NamesForwarded reports whether a route, a request rule or the request id
// names one of the fields halb sets on every request: then they are set in
// the request head before routes and rules run, which see and may change
// them; else they are written after the head (setForwarded).
func (l *L7Spec) NamesForwarded() bool {
	if l == nil {
		return false
	}
	for _, n := range forwardedNames {
		if strings.EqualFold(l.RequestID, n) || l.Request.Names(n) || l.Router.NamesHeader(n) {
			return true
		}
	}
	return false
}
