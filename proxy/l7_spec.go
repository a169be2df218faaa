package proxy

import (
	"halb/proxy/balance"
	"slices"
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

// FieldNames returns, in lower case, the request fields a route, a request
// rule or the request id names: the ones layer 7 reads or changes in the
// request head. An HTTP/2 request's other fields go to the server as they
// came, without passing through the head (requestFromH2).
func (l *L7Spec) FieldNames() []string {
	if l == nil {
		return nil
	}
	var names []string
	add := func(n string) {
		n = strings.ToLower(n)
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	add(l.RequestID)
	for _, r := range l.Request.rules {
		add(r.Name)
	}
	if l.Router != nil {
		for i := range l.Router.routes {
			for _, h := range l.Router.routes[i].headers {
				add(h.Name)
			}
		}
	}
	return names
}

// forwardedNames are the fields halb sets on every request (setForwarded), in lower case.
var forwardedNames = [...]string{"x-forwarded-for", "x-forwarded-proto", "forwarded"}

// NamesForwarded reports whether a route, a request rule or the request id
// names one of the fields halb sets on every request: then they are set in
// the request head before routes and rules run, which see and may change
// them; else they are written after the head (setForwarded).
func (l *L7Spec) NamesForwarded() bool {
	names := l.FieldNames()
	for _, n := range forwardedNames {
		if slices.Contains(names, n) {
			return true
		}
	}
	return false
}
