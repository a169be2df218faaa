package config

import (
	"net/netip"
	"strconv"
	"time"
)

// Pool is a top-level pool block: a named set of real servers (HAProxy's backend), health-checked
// and balanced like a virtual_server's, that routes of proxy_mode http services send requests to.
// Its real servers and checkers are parsed exactly as a virtual_server's.
type Pool struct {
	Pos                    Pos           `json:"pos"`
	Name                   string        `json:"name"`
	LBAlgo                 LBAlgo        `json:"lb_algo"`
	DelayLoop              time.Duration `json:"delay_loop"`
	PersistenceTimeout     time.Duration `json:"persistence_timeout"` // 0 = no source persistence
	PersistenceGranularity netip.Addr    `json:"persistence_granularity"`
	Quorum                 int           `json:"quorum"`
	Hysteresis             int           `json:"hysteresis"`
	Alpha                  bool          `json:"alpha"`
	Omega                  bool          `json:"omega"`
	InhibitOnFailure       bool          `json:"inhibit_on_failure"`
	Rise                   int           `json:"rise"`
	Fall                   int           `json:"fall"`
	RealServers            []*RealServer `json:"real_servers"`
}

// L7 holds a proxy_mode http service's layer-7 keywords: TLS termination, routes, header rules,
// cookie persistence, error pages and limits. The zero value is plain HTTP/1.1 with no rule.
type L7 struct {
	Certificates      []TLSCertificate   `json:"tls_certificate"` // the first is the default (no SNI match)
	TLSMinVersion     TLSVersion         `json:"tls_min_version"` // default 1.2
	ALPN              []string           `json:"alpn"`            // default with certificates: http/1.1
	Routes            []*Route           `json:"routes"`
	RequestRules      []HeaderRule       `json:"http_request"`
	ResponseRules     []HeaderRule       `json:"http_response"`
	PersistenceCookie *PersistenceCookie `json:"persistence_cookie,omitempty"`
	ErrorPages        []ErrorPage        `json:"error_page"`
	MaxBodySize       int64              `json:"max_body_size"` // bytes, 0 = unlimited
	RequestID         string             `json:"request_id"`    // header name, "" = off
	RedirectScheme    *SchemeRedirect    `json:"redirect_scheme,omitempty"`
}

// Terminates reports whether the service terminates TLS.
func (l *L7) Terminates() bool { return len(l.Certificates) > 0 }

// TLSCertificate is one tls_certificate line: a PEM with the chain and the key (Key empty), or
// the chain and the key in two files. Paths are absolute (a relative path is resolved against
// the directory of the file that names it).
type TLSCertificate struct {
	Pos  Pos    `json:"pos"`
	Cert string `json:"cert"`
	Key  string `json:"key"` // "" = in Cert
}

// TLSVersion is a TLS protocol version for tls_min_version.
type TLSVersion uint8

// TLS versions.
const (
	TLS12 TLSVersion = iota
	TLS13
)

func tlsVersionNames() []string { return []string{"1.2", "1.3"} }

func (v TLSVersion) String() string { return enumName(int(v), tlsVersionNames(), "TLSVersion") }

// MarshalText implements encoding.TextMarshaler.
func (v TLSVersion) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// Route is a route block: conditions, all of which must hold (a condition with several values
// holds when one value matches), and one action: a pool or a redirect.
type Route struct {
	Pos        Pos            `json:"pos"`
	Hosts      []string       `json:"host"`        // exact or "*.example.com", lowercased
	PathPrefix string         `json:"path_prefix"` //
	PathExact  string         `json:"path_exact"`  //
	PathRegex  string         `json:"path_regex"`  // RE2 syntax, checked at load
	Methods    []string       `json:"method"`      // uppercased
	Headers    []HeaderMatch  `json:"header"`      // every one must match
	Sources    []netip.Prefix `json:"src"`         // the client address is in one of them
	Pool       string         `json:"pool"`        // a top-level pool's name
	Redirect   *Redirect      `json:"redirect,omitempty"`
}

// HeaderMatch is a route's "header NAME VALUE": the request has NAME with exactly VALUE.
type HeaderMatch struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Redirect is a route's "redirect CODE LOCATION".
type Redirect struct {
	Code     int    `json:"code"`
	Location string `json:"location"`
}

// HeaderAction is what a header rule does.
type HeaderAction uint8

// Header actions.
const (
	HeaderSet HeaderAction = iota // replace every value by one
	HeaderAdd                     // append one more
	HeaderDel                     // remove every value
)

func headerActionNames() []string { return []string{"set_header", "add_header", "del_header"} }

func (a HeaderAction) String() string { return enumName(int(a), headerActionNames(), "HeaderAction") }

// MarshalText implements encoding.TextMarshaler.
func (a HeaderAction) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// HeaderRule is one line of http_request or http_response, applied in order.
type HeaderRule struct {
	Pos    Pos          `json:"pos"`
	Action HeaderAction `json:"action"`
	Name   string       `json:"name"`
	Value  string       `json:"value"` // "" for del_header
}

// CookieMode is persistence_cookie's mode, as HAProxy's cookie modes.
type CookieMode uint8

// Cookie modes.
const (
	CookieInsert  CookieMode = iota // halb sets NAME=SERVERID; the server never sees the cookie
	CookieRewrite                   // the server sets NAME; halb replaces its value by SERVERID
	CookiePrefix                    // the server sets NAME=V; halb sends NAME=SERVERID~V and strips it back
)

func cookieModeNames() []string { return []string{"insert", "rewrite", "prefix"} }

func (m CookieMode) String() string { return enumName(int(m), cookieModeNames(), "CookieMode") }

// MarshalText implements encoding.TextMarshaler.
func (m CookieMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// PersistenceCookie is "persistence_cookie NAME MODE".
type PersistenceCookie struct {
	Pos  Pos        `json:"pos"`
	Name string     `json:"name"`
	Mode CookieMode `json:"mode"`
}

// ErrorPage is "error_page CODE FILE": the file's bytes are the body of that status's answers.
type ErrorPage struct {
	Pos  Pos    `json:"pos"`
	Code int    `json:"code"`
	File string `json:"file"` // absolute, as tls_certificate's
}

// SchemeRedirect is "redirect_scheme https [CODE]": every request is answered with a redirect
// to the same host and URI under the scheme.
type SchemeRedirect struct {
	Pos    Pos    `json:"pos"`
	Scheme string `json:"scheme"`
	Code   int    `json:"code"`
}

// String returns "CODE LOCATION".
func (r Redirect) String() string { return strconv.Itoa(r.Code) + " " + r.Location }
