package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logger adapts GoBGP's log/slog output to zap and remembers, per neighbor, the last warning or
// error GoBGP logged about it: that is the "last error" `halb ctl show bgp` shows. GoBGP gets it
// as a *slog.Logger (slog() below), whose handler passes every record to log.
type logger struct {
	z   *zap.Logger
	now func() time.Time
	// level is handed to GoBGP with the logger (its SetLogLevel API changes it; halb does not
	// call it). It stays at Debug: GoBGP logs failed connects only at that level, and they are
	// the last error of a neighbor that does not answer. zap drops what its level does not want.
	level *slog.LevelVar

	// quiet is how long the same record about the same neighbor is not repeated at INFO or
	// WARN: DefaultIdleHold, the back-off between two sessions of a bad neighbor. GoBGP v4 tries
	// an outgoing connection again 1.5-2 s after it failed before the neighbor's OPEN (garbage,
	// a NOTIFICATION instead of an OPEN), with no idle hold, and logs the failure each time: the
	// repeats go to DEBUG, so that a bad neighbor is logged at most once per idle hold.
	quiet time.Duration

	mu      sync.Mutex
	last    map[string]lastError // neighbor address -> last error
	seen    map[string]time.Time // neighbor address and record text -> when last logged above DEBUG
	changed map[string]time.Time // neighbor address -> its session's last state change
}

type lastError struct {
	msg string
	at  time.Time
}

// fields are the attributes of one GoBGP record: those of the logger (GoBGP's per-neighbor
// loggers carry "Topic" and "Key", the neighbor's address) and those of the call.
type fields map[string]any

func newLogger(z *zap.Logger, now func() time.Time) *logger {
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelDebug)
	return &logger{z: z, now: now, level: lv, quiet: DefaultIdleHold,
		last: map[string]lastError{}, seen: map[string]time.Time{}, changed: map[string]time.Time{}}
}

// slog returns the logger and level to give GoBGP (server.LoggerOption).
func (l *logger) slog() (*slog.Logger, *slog.LevelVar) {
	return l.slogOff(nil)
}

// slogOff is slog whose records are dropped once off is set: GoBGP's Stop does not wait for all
// of its goroutines (a connect loop may log after it returns), and a stopped server's late
// records would otherwise reach a logger whose owner is gone (a finished test's).
func (l *logger) slogOff(off *atomic.Bool) (*slog.Logger, *slog.LevelVar) {
	return slog.New(&handler{l: l, off: off}), l.level
}

// fields turns f into zap fields, sorted by key.
func (l *logger) fields(f fields) []zap.Field {
	out := make([]zap.Field, 0, len(f))
	for _, k := range slices.Sorted(maps.Keys(f)) {
		out = append(out, zap.Any(k, f[k]))
	}
	return out
}

// note remembers msg as the last error of the neighbor f["Key"]; it reports whether the text
// differs from the previous one.
func (l *logger) note(msg string, f fields) bool {
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

// stateSince returns when the session of the neighbor addr last changed state (zero if unknown).
// GoBGP v4 keeps the time only of the last Established and of leaving it; v3 also kept that of
// every other change, which halb shows for a session that is not up.
func (l *logger) stateSince(addr string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed[addr]
}

// repeated reports whether the same record (msg and its fields but "State", which GoBGP varies
// between tries) about the neighbor f["Key"] was logged above DEBUG less than quiet ago; if not,
// it counts this one as logged. Records about no neighbor are never repeats.
func (l *logger) repeated(msg string, f fields) bool {
	key, ok := f["Key"].(string)
	if !ok || key == "" {
		return false
	}
	text := key + "\x00" + msg
	for _, k := range slices.Sorted(maps.Keys(f)) {
		if k != "State" {
			text += fmt.Sprintf("\x00%s=%v", k, f[k])
		}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if at, ok := l.seen[text]; ok && now.Sub(at) < l.quiet {
		return true
	}
	if len(l.seen) >= 64 {
		for k, at := range l.seen {
			if now.Sub(at) >= l.quiet {
				delete(l.seen, k)
			}
		}
	}
	l.seen[text] = now
	return false
}

// limited logs at level, or at DEBUG if the record is a repeat (see repeated).
func (l *logger) limited(level zapcore.Level, msg string, f fields) {
	if l.repeated(msg, f) {
		level = zapcore.DebugLevel
		msg += " (repeated)"
	}
	if ce := l.z.Check(level, msg); ce != nil {
		ce.Write(l.fields(f)...)
	}
}

// log takes one GoBGP record.
func (l *logger) log(level slog.Level, msg string, f fields) {
	switch {
	case level >= slog.LevelError:
		l.note(msg, f)
		l.z.Error(msg, l.fields(f)...)
	case level >= slog.LevelWarn:
		l.note(msg, f)
		l.limited(zapcore.WarnLevel, msg, f)
	case level >= slog.LevelInfo:
		l.info(msg, f)
	default:
		l.debug(msg, f)
	}
}

// info carries GoBGP's session changes ("Peer Up", "Peer Down" with its reason), each logged; a
// session that went down is remembered as the neighbor's last error. The rest ("sent
// notification" on every failed try, ...) is limited like the warnings.
func (l *logger) info(msg string, f fields) {
	switch msg {
	case "Peer Down":
		l.note(msg, f)
		fallthrough
	case "Peer Up":
		l.z.Info(msg, l.fields(f)...)
		return
	case "Delete a peer configuration":
		if key, ok := f["Key"].(string); ok {
			l.mu.Lock()
			delete(l.changed, key)
			l.mu.Unlock()
		}
	case "sent notification":
		// A NOTIFICATION sent while the session is Active went on a connection halb opened,
		// before the neighbor's OPEN was taken (see outgoingReset): an OPEN refused (code 2: bad
		// peer AS, ...), another message in its place (5), no OPEN in time (4). Malformed
		// messages (1) have GoBGP's own warning; Cease (6) is halb closing the session.
		code, sub := uintField(f["Code"]), uintField(f["Subcode"])
		if f["State"] == "BGP_FSM_ACTIVE" && code != 1 && code != 6 {
			l.outgoingReset("notification-sent "+gbgp.NewNotificationErrorCode(code, sub).String(), f)
		}
	}
	l.limited(zapcore.InfoLevel, msg, f)
}

// outgoingReset reports a connection halb opened that failed before the neighbor's OPEN was
// taken. GoBGP v4 runs that part (its OpenSent) apart from the session's state machine, which
// stays in Active: no "state changed" comes, so the warning and the neighbor's last error are
// made here, in the words GoBGP v3 used for the same failure (its state machine went through
// OpenSent then). GoBGP opens the next connection 1.5-2 s later; the warning is limited to
// once per idle hold time.
func (l *logger) outgoingReset(reason string, f fields) {
	const m = "session reset in BGP_FSM_OPENSENT"
	l.note(m, fields{"Key": f["Key"], "Reason": reason})
	w := maps.Clone(f)
	w["reason"] = reason
	l.limited(zapcore.WarnLevel, m+"; retrying", w)
}

// uintField is a GoBGP integer attribute as a uint8 (0 if it is none).
func uintField(v any) uint8 {
	switch v := v.(type) {
	case int64:
		return uint8(v)
	case uint64:
		return uint8(v)
	}
	return 0
}

// debug carries GoBGP's failed connection attempts, remembered as the neighbor's last error.
func (l *logger) debug(msg string, f fields) {
	switch msg {
	case "failed to connect":
		// Every connect retry fails the same way while a neighbor is down: warn on a change only.
		if l.note(msg, f) {
			l.z.Warn("neighbor unreachable; retrying", l.fields(f)...)
		}
	case "outgoing connection IO error":
		// The neighbor closed (or reset) a connection halb opened before it sent its OPEN: a
		// router that refuses the session at once, as BIRD does while it waits after an error.
		l.outgoingReset(fmt.Sprint(f["reason"]), f)
	case "state changed":
		if key, ok := f["Key"].(string); ok && key != "" {
			now := l.now()
			l.mu.Lock()
			l.changed[key] = now
			l.mu.Unlock()
		}
		// A session torn down before it was up (a refused OPEN, a NOTIFICATION in OpenConfirm)
		// is logged only here; GoBGP keeps no more detail than the reason's kind. GoBGP retries
		// after its idle hold time (the back-off), so this warns at most once per neighbor per
		// idle hold time.
		if f["new"] == "BGP_FSM_IDLE" && f["old"] != "BGP_FSM_ESTABLISHED" && f["old"] != "BGP_FSM_ACTIVE" {
			m := fmt.Sprintf("session reset in %v", f["old"])
			l.note(m, fields{"Key": f["Key"], "Reason": f["reason"]})
			l.limited(zapcore.WarnLevel, m+"; retrying after the idle hold time", f)
		}
	}
	if ce := l.z.Check(zapcore.DebugLevel, msg); ce != nil {
		ce.Write(l.fields(f)...)
	}
}

// handler is the slog.Handler behind the logger GoBGP gets. GoBGP makes a logger per neighbor
// with With("Topic", "Peer", "Key", address): those attributes stay in attrs.
type handler struct {
	l      *logger
	off    *atomic.Bool // set: drop every record
	attrs  []slog.Attr  // qualified by their groups already
	prefix string       // the open groups, "a.b."
}

func (h *handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.l.level.Level() && (h.off == nil || !h.off.Load())
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	if h.off != nil && h.off.Load() {
		return nil
	}
	f := make(fields, len(h.attrs)+r.NumAttrs())
	for _, a := range h.attrs {
		addAttr(f, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		addAttr(f, h.prefix, a)
		return true
	})
	h.l.log(r.Level, r.Message, f)
	return nil
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	n := *h
	n.attrs = make([]slog.Attr, 0, len(h.attrs)+len(as))
	n.attrs = append(n.attrs, h.attrs...)
	for _, a := range as {
		if h.prefix != "" {
			a.Key = h.prefix + a.Key
		}
		n.attrs = append(n.attrs, a)
	}
	return &n
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

// addAttr puts a into f as a plain Go value, under prefix+key; a group's members go under
// "group.key" (slog's rules: an empty attribute is dropped, a group without a key is inlined).
func addAttr(f fields, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, m := range a.Value.Group() {
			addAttr(f, prefix, m)
		}
		return
	}
	f[prefix+a.Key] = a.Value.Any()
}
