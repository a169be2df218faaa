// Package admin is halb's operator surface: a runtime API on a unix socket
// (HAProxy-style text commands, JSON replies), the `halb ctl` client, an HTML
// stats page and Prometheus /metrics.
//
// It imports nothing of the project. The daemon implements Source (read-only
// views, called on every request or scrape) and Controller (the few writes an
// operator may make at run time); admin never keeps state of its own about
// services, backends or VRRP.
package admin

import "time"

// Backend states as they appear in views.
const (
	StateUp    = "up"
	StateDown  = "down"
	StateDrain = "drain"
	StateMaint = "maint"
)

// Administrative states accepted by Controller.SetBackendState.
const (
	AdminReady = "ready"
	AdminDrain = "drain"
	AdminMaint = "maint"
)

// MaxWeight is the highest weight `set weight` accepts (HAProxy's runtime
// range 0..256; 0 stops new traffic like drain).
const MaxWeight = 256

// Info describes the daemon process itself.
type Info struct {
	Version    string        `json:"version"`
	GoVersion  string        `json:"go_version"`
	StartedAt  time.Time     `json:"started_at"`
	Uptime     time.Duration `json:"uptime"` // nanoseconds in JSON
	ConfigFile string        `json:"config_file"`
	ConfigHash string        `json:"config_hash"`
	LastReload Reload        `json:"last_reload"`
	LogLevel   string        `json:"log_level"`
	PID        int           `json:"pid"`
}

// Reload is the outcome of the latest reload attempt. A zero At means no
// reload was attempted since start.
type Reload struct {
	At    time.Time `json:"at"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	Hash  string    `json:"hash,omitempty"` // hash of the file that was tried
}

// Service is one virtual service (listener + pool).
type Service struct {
	Name     string    `json:"name"`
	Listen   string    `json:"listen"`
	Mode     string    `json:"mode"`  // "tcp", "http", "ipvs-dr", ...
	State    string    `json:"state"` // "up" or "down" by quorum
	Active   int64     `json:"active"`
	Total    uint64    `json:"total"`
	Queued   int64     `json:"queued"`
	Refused  uint64    `json:"refused"`
	BytesIn  uint64    `json:"bytes_in"`
	BytesOut uint64    `json:"bytes_out"`
	Requests [5]uint64 `json:"requests"` // responses by class: 1xx, 2xx, 3xx, 4xx, 5xx
	Errors   uint64    `json:"errors"`
	Backends []Backend `json:"backends"`
}

// Backend is one real server of a service.
type Backend struct {
	Name             string    `json:"name"`
	Addr             string    `json:"addr"`
	State            string    `json:"state"` // StateUp, StateDown, StateDrain, StateMaint
	Weight           int       `json:"weight"`
	ConfiguredWeight int       `json:"configured_weight"`
	Active           int64     `json:"active"`
	Total            uint64    `json:"total"`
	BytesIn          uint64    `json:"bytes_in"`
	BytesOut         uint64    `json:"bytes_out"`
	LastCheck        Check     `json:"last_check"`
	Since            time.Time `json:"since"` // when the backend entered State
	Backup           bool      `json:"backup"`
	Sorry            bool      `json:"sorry"` // the sorry server, used when no other backend is up
	// CheckFailures counts failed health checks by reason ("timeout",
	// "refused", "status 503", ...). Optional.
	CheckFailures map[string]uint64 `json:"check_failures,omitempty"`
}

// Check is the latest health check of a backend. A zero At means none ran yet.
type Check struct {
	At       time.Time     `json:"at"`
	OK       bool          `json:"ok"`
	Reason   string        `json:"reason,omitempty"`
	Duration time.Duration `json:"duration"` // nanoseconds in JSON
}

// VRRPInstance is one VRRP instance of the speaker.
type VRRPInstance struct {
	Name              string            `json:"name"`
	Interface         string            `json:"interface"`
	VRID              int               `json:"vrid"`
	State             string            `json:"state"` // "init", "backup", "master", "fault"
	Priority          int               `json:"priority"`
	EffectivePriority int               `json:"effective_priority"`
	Contributions     []Contribution    `json:"contributions,omitempty"`
	MasterAddr        string            `json:"master_addr,omitempty"`
	LastTransition    Transition        `json:"last_transition"`
	AdvertsSent       uint64            `json:"adverts_sent"`
	AdvertsReceived   uint64            `json:"adverts_received"`
	Dropped           map[string]uint64 `json:"dropped,omitempty"` // dropped adverts by reason
	Transitions       uint64            `json:"transitions"`
}

// Contribution is one tracked object's effect on a VRRP priority.
type Contribution struct {
	Name   string `json:"name"`
	Weight int    `json:"weight"`
	Fault  bool   `json:"fault"`
	Reason string `json:"reason,omitempty"`
}

// Transition is a VRRP state change.
type Transition struct {
	At    time.Time `json:"at"`
	From  string    `json:"from"`
	To    string    `json:"to"`
	Cause string    `json:"cause,omitempty"`
}

// ServiceBackend is a row of `show backends`: a backend with its service.
type ServiceBackend struct {
	Service string `json:"service"`
	Backend
}

// Source gives read-only views of the running daemon. It is called on every
// request and scrape, from many goroutines; it must be safe for concurrent use
// and return copies the caller may keep.
type Source interface {
	Info() Info
	Services() []Service
	VRRP() []VRRPInstance
	// IPVS returns a text dump of the kernel tables (like ipvsadm -Ln), or an
	// error when IPVS is not in use.
	IPVS() (string, error)
}

// Controller applies the runtime changes an operator may make. Errors are
// shown to the operator as they are: name the service/backend in them.
type Controller interface {
	// SetBackendState sets the administrative state: AdminReady, AdminDrain
	// or AdminMaint.
	SetBackendState(service, backend string, state string) error
	// SetWeight sets the backend's weight, 0..MaxWeight.
	SetWeight(service, backend string, w int) error
	// Reload re-reads the configuration file; on error (the validation
	// errors of a refused file) the running configuration is kept.
	Reload() error
	// SetLogLevel changes the log level: debug, info, warn or error.
	SetLogLevel(level string) error
}
