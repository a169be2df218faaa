package bgp

import (
	"fmt"
	"sort"
	"sync"
	"time"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logger adapts zap to GoBGP's logger and remembers, per neighbor, the last warning or error
// GoBGP logged about it: that is the "last error" `halb ctl show bgp` shows.
type logger struct {
	z   *zap.Logger
	now func() time.Time

	mu   sync.Mutex
	last map[string]lastError // neighbor address -> last error
}

type lastError struct {
	msg string
	at  time.Time
}

func newLogger(z *zap.Logger, now func() time.Time) *logger {
	return &logger{z: z, now: now, last: map[string]lastError{}}
}

func (l *logger) fields(f gobgplog.Fields) []zap.Field {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]zap.Field, 0, len(keys))
	for _, k := range keys {
		out = append(out, zap.Any(k, f[k]))
	}
	return out
}

// note remembers msg as the last error of the neighbor f["Key"]; it reports whether the text
// differs from the previous one.
func (l *logger) note(msg string, f gobgplog.Fields) bool {
	key, ok := f["Key"].(string)
	if !ok || key == "" {
		return false
	}
	detail := msg
	for _, k := range []string{"Reason", "Error", "Data"} {
		if v, ok := f[k]; ok && v != nil {
			detail += fmt.Sprintf(": %v", v)
			break
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := l.last[key].msg != detail
	l.last[key] = lastError{msg: detail, at: l.now()}
	return changed
}

func (l *logger) lastError(addr string) lastError {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last[addr]
}

func (l *logger) Panic(msg string, f gobgplog.Fields) { l.z.Error(msg, l.fields(f)...) }
func (l *logger) Fatal(msg string, f gobgplog.Fields) { l.z.Error(msg, l.fields(f)...) }
func (l *logger) Error(msg string, f gobgplog.Fields) {
	if msg == "failed to close existing tcp connection" {
		// GoBGP closing a connection that the retry loop already closed, on every neighbor
		// removal and stop: not an error of the session.
		l.z.Debug(msg, l.fields(f)...)
		return
	}
	l.note(msg, f)
	l.z.Error(msg, l.fields(f)...)
}
func (l *logger) Warn(msg string, f gobgplog.Fields) {
	l.note(msg, f)
	l.z.Warn(msg, l.fields(f)...)
}

// Info carries GoBGP's session changes ("Peer Up", "Peer Down" with its reason); a session that
// went down is remembered as the neighbor's last error.
func (l *logger) Info(msg string, f gobgplog.Fields) {
	if msg == "Peer Down" {
		l.note(msg, f)
	}
	l.z.Info(msg, l.fields(f)...)
}

// Debug carries GoBGP's failed connection attempts, remembered as the neighbor's last error.
func (l *logger) Debug(msg string, f gobgplog.Fields) {
	switch msg {
	case "failed to connect":
		// Every connect retry fails the same way while a neighbor is down: warn on a change only.
		if l.note(msg, f) {
			l.z.Warn("neighbor unreachable; retrying", l.fields(f)...)
		}
	case "state changed":
		// A session torn down before it was up (a refused OPEN, a NOTIFICATION in OpenConfirm,
		// garbage instead of a BGP header) is logged only here; GoBGP keeps no more detail than
		// the reason's kind. GoBGP retries after its idle hold time (the back-off), so this warns
		// at most once per neighbor per idle hold time.
		if f["new"] == "BGP_FSM_IDLE" && f["old"] != "BGP_FSM_ESTABLISHED" && f["old"] != "BGP_FSM_ACTIVE" {
			m := fmt.Sprintf("session reset in %v", f["old"])
			l.note(m, gobgplog.Fields{"Key": f["Key"], "Reason": f["reason"]})
			l.z.Warn(m+"; retrying after the idle hold time", l.fields(f)...)
		}
	}
	if l.z.Core().Enabled(zapcore.DebugLevel) {
		l.z.Debug(msg, l.fields(f)...)
	}
}
func (l *logger) SetLevel(gobgplog.LogLevel) {}

// GetLevel is always Debug: GoBGP logs failed connects only at that level, and they are the
// last error of a neighbor that does not answer. zap drops what its level does not want.
func (l *logger) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }
