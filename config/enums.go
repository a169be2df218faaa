package config

import (
	"strconv"
	"strings"
)

// Enumerations used by the model. Each has String() and MarshalText() so that the JSON dump
// prints names, and a lookup used by the parser.

func enumName(i int, names []string, typ string) string {
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return typ + "(" + strconv.Itoa(i) + ")"
}

// lookupEnum finds s in names, ignoring case.
func lookupEnum(s string, names []string) (int, bool) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return i, true
		}
	}
	return 0, false
}

// InitialState is a vrrp_instance's state keyword.
type InitialState uint8

// Initial states.
const (
	StateBackup InitialState = iota
	StateMaster
)

func initialStateNames() []string { return []string{"BACKUP", "MASTER"} }

func (s InitialState) String() string { return enumName(int(s), initialStateNames(), "InitialState") }

// MarshalText implements encoding.TextMarshaler.
func (s InitialState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// AuthType is the VRRP authentication type (VRRPv2 only).
type AuthType uint8

// Authentication types.
const (
	AuthNone AuthType = iota
	AuthPass
	AuthAH
)

func authTypeNames() []string { return []string{"NONE", "PASS", "AH"} }

func (a AuthType) String() string { return enumName(int(a), authTypeNames(), "AuthType") }

// MarshalText implements encoding.TextMarshaler.
func (a AuthType) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// TrackMode says what a tracked object's failure does to a vrrp_instance.
type TrackMode uint8

// Track modes.
const (
	// TrackWeight: tracked objects with a weight change the priority, those without put the instance in FAULT.
	TrackWeight TrackMode = iota
	// TrackFault: any tracked object failing puts the instance in FAULT, weights are ignored.
	TrackFault
)

func trackModeNames() []string { return []string{"weight", "fault"} }

func (m TrackMode) String() string { return enumName(int(m), trackModeNames(), "TrackMode") }

// MarshalText implements encoding.TextMarshaler.
func (m TrackMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// VSKind says how a virtual_server is identified.
type VSKind uint8

// Virtual server kinds.
const (
	VSAddr     VSKind = iota // virtual_server ADDR PORT
	VSFwmark                 // virtual_server fwmark N
	VSGroupRef               // virtual_server group NAME
)

func vsKindNames() []string { return []string{"addr", "fwmark", "group"} }

func (k VSKind) String() string { return enumName(int(k), vsKindNames(), "VSKind") }

// MarshalText implements encoding.TextMarshaler.
func (k VSKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// LBAlgo is the scheduler (lb_algo, alias lvs_sched).
type LBAlgo uint8

// Schedulers, named as IPVS names them.
const (
	AlgoRR LBAlgo = iota
	AlgoWRR
	AlgoLC
	AlgoWLC
	AlgoLBLC
	AlgoLBLCR
	AlgoSH
	AlgoDH
	AlgoMH
	AlgoSED
	AlgoNQ
	AlgoFO
	AlgoOVF
)

func lbAlgoNames() []string {
	return []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "mh", "sed", "nq", "fo", "ovf"}
}

func (a LBAlgo) String() string { return enumName(int(a), lbAlgoNames(), "LBAlgo") }

// MarshalText implements encoding.TextMarshaler.
func (a LBAlgo) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// LBKind is the forwarding method (lb_kind, alias lvs_method).
type LBKind uint8

// Forwarding methods.
const (
	LBKindNAT LBKind = iota
	LBKindDR
	LBKindTUN
)

func lbKindNames() []string { return []string{"NAT", "DR", "TUN"} }

func (k LBKind) String() string { return enumName(int(k), lbKindNames(), "LBKind") }

// MarshalText implements encoding.TextMarshaler.
func (k LBKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Protocol is a virtual_server's transport protocol.
type Protocol uint8

// Protocols.
const (
	ProtoTCP Protocol = iota
	ProtoUDP
	ProtoSCTP
)

func protocolNames() []string { return []string{"TCP", "UDP", "SCTP"} }

func (p Protocol) String() string { return enumName(int(p), protocolNames(), "Protocol") }

// MarshalText implements encoding.TextMarshaler.
func (p Protocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// ProxyMode is how the userspace proxy serves a virtual_server (halb's proxy_mode).
type ProxyMode uint8

// Proxy modes.
const (
	ProxyTCP  ProxyMode = iota // layer 4 splice
	ProxyHTTP                  // layer 7 HTTP
	ProxyTLS                   // TLS passthrough, routed by SNI
)

func proxyModeNames() []string { return []string{"tcp", "http", "tls"} }

func (m ProxyMode) String() string { return enumName(int(m), proxyModeNames(), "ProxyMode") }

// MarshalText implements encoding.TextMarshaler.
func (m ProxyMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// ProxyProtocol is the PROXY protocol version sent to real servers (send_proxy).
type ProxyProtocol uint8

// PROXY protocol versions.
const (
	ProxyProtoNone ProxyProtocol = iota
	ProxyProtoV1
	ProxyProtoV2
)

func proxyProtocolNames() []string { return []string{"none", "v1", "v2"} }

func (p ProxyProtocol) String() string {
	return enumName(int(p), proxyProtocolNames(), "ProxyProtocol")
}

// MarshalText implements encoding.TextMarshaler.
func (p ProxyProtocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// CheckerKind is the type of a health checker.
type CheckerKind uint8

// Checker kinds, named by their keepalived block keyword.
const (
	CheckTCP CheckerKind = iota
	CheckHTTP
	CheckSSL
	CheckMisc
	CheckPing
	CheckDNS
	CheckSMTP
	CheckUDP
	CheckFile
	numCheckerKinds
)

func checkerKindNames() []string {
	return []string{"TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK", "PING_CHECK", "DNS_CHECK", "SMTP_CHECK", "UDP_CHECK", "FILE_CHECK"}
}

func (k CheckerKind) String() string { return enumName(int(k), checkerKindNames(), "CheckerKind") }

// MarshalText implements encoding.TextMarshaler.
func (k CheckerKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// LogLevel is halb's log_level.
type LogLevel uint8

// Log levels.
const (
	LogInfo LogLevel = iota
	LogDebug
	LogWarn
	LogError
)

func logLevelNames() []string { return []string{"info", "debug", "warn", "error"} }

func (l LogLevel) String() string { return enumName(int(l), logLevelNames(), "LogLevel") }

// MarshalText implements encoding.TextMarshaler.
func (l LogLevel) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// FileMode is a unix permission mode, printed in octal ("0600").
type FileMode uint32

func (m FileMode) String() string { return "0" + strconv.FormatUint(uint64(m), 8) }

// MarshalText implements encoding.TextMarshaler.
func (m FileMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }
