package balance

import (
	"fmt"
	"strings"
)

// Algo is a scheduling algorithm.
type Algo uint8

// Schedulers, named after keepalived's lb_algo values.
const (
	RR  Algo = iota // round robin
	WRR             // smooth weighted round robin
	LC              // least connections
	WLC             // weighted least connections
	SH              // source hashing (Maglev)
	DH              // destination hashing (Maglev over the client address with another seed)
	MH              // Maglev hashing (same as SH)
)

var algoNames = [...]string{RR: "rr", WRR: "wrr", LC: "lc", WLC: "wlc", SH: "sh", DH: "dh", MH: "mh"}

// String returns the lb_algo name ("rr", "wrr", ...).
func (a Algo) String() string {
	if int(a) < len(algoNames) {
		return algoNames[a]
	}
	return fmt.Sprintf("Algo(%d)", uint8(a))
}

// ParseAlgo parses a keepalived lb_algo name, case-insensitively. The
// kernel-only schedulers are mapped without error (see the package doc):
// lblc, lblcr, sed, nq → wlc; fo, ovf → wrr.
func ParseAlgo(s string) (Algo, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "rr":
		return RR, nil
	case "wrr", "fo", "ovf":
		return WRR, nil
	case "lc":
		return LC, nil
	case "wlc", "lblc", "lblcr", "sed", "nq":
		return WLC, nil
	case "sh":
		return SH, nil
	case "dh":
		return DH, nil
	case "mh":
		return MH, nil
	}
	return 0, fmt.Errorf("balance: parse algo %q: unknown scheduler (want rr, wrr, lc, wlc, sh, dh, mh, lblc, lblcr, sed, nq, fo or ovf)", s)
}

// AdminState is the operator's state of a member.
type AdminState uint8

const (
	// Ready takes new connections (if up and weight > 0).
	Ready AdminState = iota
	// Drain takes no new connections; existing ones finish and persistent
	// clients still go to it.
	Drain
	// Maint takes nothing, persistent clients are moved.
	Maint
)

var adminNames = [...]string{Ready: "ready", Drain: "drain", Maint: "maint"}

// String returns "ready", "drain" or "maint".
func (s AdminState) String() string {
	if int(s) < len(adminNames) {
		return adminNames[s]
	}
	return fmt.Sprintf("AdminState(%d)", uint8(s))
}

// ParseAdminState parses "ready", "drain" or "maint" (case-insensitively).
func ParseAdminState(s string) (AdminState, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "ready":
		return Ready, nil
	case "drain":
		return Drain, nil
	case "maint":
		return Maint, nil
	}
	return 0, fmt.Errorf("balance: parse admin state %q: want ready, drain or maint", s)
}
