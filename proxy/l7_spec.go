package proxy

import (
	"halb/proxy/balance"
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
