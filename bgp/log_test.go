package bgp

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fakeClock is a settable time for the logger.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestLogger returns the adapter on an observer at level, its slog.Logger as GoBGP gets it
// and the per-neighbor logger GoBGP makes for 198.18.0.11.
func newTestLogger(level zapcore.Level) (*logger, *observer.ObservedLogs, *slog.Logger, *fakeClock) {
	core, logs := observer.New(level)
	clk := &fakeClock{t: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	l := newLogger(zap.New(core), clk.now)
	sl, lv := l.slog()
	if lv.Level() != slog.LevelDebug {
		panic("GoBGP must log at debug: failed connects come at that level")
	}
	return l, logs, sl.With(slog.String("Topic", "Peer"), slog.String("Key", "198.18.0.11")), clk
}

// entries lists the logged entries as "LEVEL message" lines.
func entries(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.TakeAll() {
		out = append(out, e.Level.CapitalString()+" "+e.Message)
	}
	return out
}

func TestLoggerFieldsFromWithAndRecord(t *testing.T) {
	_, logs, peer, _ := newTestLogger(zapcore.DebugLevel)
	peer.WithGroup("g").Info("Add a peer configuration", slog.Int("n", 3), slog.Group("sub", slog.String("x", "y")))
	all := logs.All()
	if len(all) != 1 {
		t.Fatalf("logged %d entries, want 1", len(all))
	}
	got := fmt.Sprint(all[0].ContextMap())
	if want := "map[Key:198.18.0.11 Topic:Peer g.n:3 g.sub.x:y]"; got != want {
		t.Errorf("fields %s, want %s", got, want)
	}
}

func TestLoggerLastErrorAndLevels(t *testing.T) {
	l, logs, peer, clk := newTestLogger(zapcore.InfoLevel)

	// A neighbor that does not answer: the first failed connect warns, the same failure again
	// does not, another one does.
	peer.Debug("failed to connect", slog.String("Error", "dial tcp: connection refused"))
	peer.Debug("failed to connect", slog.String("Error", "dial tcp: connection refused"))
	peer.Debug("failed to connect", slog.String("Error", "dial tcp: i/o timeout"))
	if got := strings.Join(entries(logs), "; "); got != "WARN neighbor unreachable; retrying; WARN neighbor unreachable; retrying" {
		t.Errorf("failed connects logged as %q", got)
	}
	if le := l.lastError("198.18.0.11"); le.msg != "failed to connect: dial tcp: i/o timeout" || !le.at.Equal(clk.now()) {
		t.Errorf("last error %+v", le)
	}

	// A session reset before it was up: a warning and the last error; Active -> Idle is not one.
	peer.Debug("state changed", slog.String("old", "BGP_FSM_OPENCONFIRM"), slog.String("new", "BGP_FSM_IDLE"), slog.String("reason", "invalid-msg"))
	peer.Debug("state changed", slog.String("old", "BGP_FSM_ACTIVE"), slog.String("new", "BGP_FSM_IDLE"), slog.String("reason", "admin-down"))
	if got := strings.Join(entries(logs), "; "); got != "WARN session reset in BGP_FSM_OPENCONFIRM; retrying after the idle hold time" {
		t.Errorf("state changes logged as %q", got)
	}
	if le := l.lastError("198.18.0.11"); le.msg != "session reset in BGP_FSM_OPENCONFIRM: invalid-msg" {
		t.Errorf("last error %q", le.msg)
	}

	// Peer Down is info and the last error; a warning is the last error with its Error.
	peer.Info("Peer Down", slog.String("State", "BGP_FSM_ESTABLISHED"), slog.String("Reason", "hold-timer-expired"))
	if le := l.lastError("198.18.0.11"); le.msg != "Peer Down: hold-timer-expired" {
		t.Errorf("last error %q", le.msg)
	}
	peer.Warn("Session will be reset due to malformed BGP Header", slog.String("Error", "marker is not all ones"))
	if le := l.lastError("198.18.0.11"); le.msg != "Session will be reset due to malformed BGP Header: marker is not all ones" {
		t.Errorf("last error %q", le.msg)
	}
	peer.Error("code logic bug")
	if got := strings.Join(entries(logs), "; "); got != "INFO Peer Down; WARN Session will be reset due to malformed BGP Header; ERROR code logic bug" {
		t.Errorf("logged %q", got)
	}
	if le := l.lastError("198.18.0.12"); le.msg != "" {
		t.Errorf("another neighbor has a last error: %q", le.msg)
	}
}

// TestLoggerRepeatsOncePerIdleHold: GoBGP v4 retries a neighbor that sends garbage every 1.5-2 s
// and warns each time; halb logs the same warning about the same neighbor at most once per idle
// hold time, the repeats at DEBUG. Session changes are never held back.
func TestLoggerRepeatsOncePerIdleHold(t *testing.T) {
	l, logs, peer, clk := newTestLogger(zapcore.InfoLevel)
	garbage := func() {
		// What GoBGP logs for one try; the state differs between tries.
		peer.Warn("Session will be reset due to malformed BGP Header", slog.String("State", "BGP_FSM_ACTIVE"), slog.String("Error", "marker is not all ones"))
		peer.Info("sent notification", slog.Int("Code", 1), slog.Int("Subcode", 1), slog.String("State", "BGP_FSM_OPENSENT"))
	}
	var got []string
	for range 6 { // 6 tries 2 s apart: at 0, 2, 4 s held back, then at 6, 8, 10 s
		garbage()
		got = append(got, strings.Join(entries(logs), "; "))
		clk.add(2 * time.Second)
	}
	once := "WARN Session will be reset due to malformed BGP Header; INFO sent notification"
	if want := []string{once, "", "", once, "", ""}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logged per try %q, want %q", got, want)
	}
	if le := l.lastError("198.18.0.11"); le.msg != "Session will be reset due to malformed BGP Header: marker is not all ones" || !le.at.Equal(clk.now().Add(-2*time.Second)) {
		t.Errorf("last error %+v: every try must update it", le)
	}

	// Another text, or another neighbor, is not a repeat.
	peer.Warn("Session will be reset due to malformed BGP message", slog.String("Error", "unknown message type"))
	peer.With(slog.String("Key", "198.18.0.12")).Warn("Session will be reset due to malformed BGP Header", slog.String("Error", "marker is not all ones"))
	if got := entries(logs); len(got) != 2 {
		t.Errorf("logged %q, want both warnings", got)
	}

	// A flapping session shows every change.
	for range 3 {
		peer.Info("Peer Up")
		peer.Info("Peer Down", slog.String("Reason", "hold-timer-expired"))
	}
	if got := entries(logs); len(got) != 6 {
		t.Errorf("session changes logged %q, want all 6", got)
	}

	// The repeats are at DEBUG for who wants them.
	_, logs, peer, _ = newTestLogger(zapcore.DebugLevel)
	for range 2 {
		peer.Warn("Session will be reset due to malformed BGP Header", slog.String("Error", "marker is not all ones"))
	}
	if got := strings.Join(entries(logs), "; "); got != "WARN Session will be reset due to malformed BGP Header; DEBUG Session will be reset due to malformed BGP Header (repeated)" {
		t.Errorf("at debug: %q", got)
	}
}

// TestLoggerOutgoingConnection: GoBGP v4 runs the OPEN exchange of a connection halb opened
// apart from the session's state machine (which stays in Active); its failures there are
// warnings and last errors all the same, in the words of a reset in OpenSent.
func TestLoggerOutgoingConnection(t *testing.T) {
	l, logs, peer, clk := newTestLogger(zapcore.InfoLevel)
	for _, tc := range []struct {
		log      func()
		warn     bool
		lastErr  string
		describe string
	}{
		{func() { peer.Debug("outgoing connection IO error", slog.String("reason", "read-failed")) }, true,
			"session reset in BGP_FSM_OPENSENT: read-failed", "closed before its OPEN"},
		{func() {
			peer.Info("sent notification", slog.String("State", "BGP_FSM_ACTIVE"), slog.Int("Code", 2), slog.Int("Subcode", 2), slog.Any("Data", []byte(nil)))
		}, true, "session reset in BGP_FSM_OPENSENT: notification-sent code 2(open) subcode 2(bad peer as)", "OPEN refused"},
		{func() {
			peer.Info("sent notification", slog.String("State", "BGP_FSM_ACTIVE"), slog.Int("Code", 5), slog.Int("Subcode", 1), slog.Any("Data", []byte(nil)))
		}, true, "session reset in BGP_FSM_OPENSENT: notification-sent code 5(fsm) subcode 1(receive unexpected message in opensent state)", "not an OPEN"},
		// A malformed message has GoBGP's warning already; Cease is halb closing; a NOTIFICATION in
		// another state comes with a state change.
		{func() {
			peer.Info("sent notification", slog.String("State", "BGP_FSM_ACTIVE"), slog.Int("Code", 1), slog.Int("Subcode", 1), slog.Any("Data", []byte(nil)))
		}, false, "", "malformed"},
		{func() {
			peer.Info("sent notification", slog.String("State", "BGP_FSM_ACTIVE"), slog.Int("Code", 6), slog.Int("Subcode", 3), slog.Any("Data", []byte(nil)))
		}, false, "", "cease"},
		{func() {
			peer.Info("sent notification", slog.String("State", "BGP_FSM_OPENSENT"), slog.Int("Code", 2), slog.Int("Subcode", 2), slog.Any("Data", []byte(nil)))
		}, false, "", "in OpenSent"},
	} {
		l.last = map[string]lastError{}
		clk.add(time.Minute) // no repeats
		tc.log()
		var warned bool
		for _, e := range logs.TakeAll() {
			warned = warned || e.Level == zapcore.WarnLevel && strings.HasPrefix(e.Message, "session reset in BGP_FSM_OPENSENT; retrying")
		}
		if warned != tc.warn {
			t.Errorf("%s: warned %v, want %v", tc.describe, warned, tc.warn)
		}
		if le := l.lastError("198.18.0.11"); le.msg != tc.lastErr {
			t.Errorf("%s: last error %q, want %q", tc.describe, le.msg, tc.lastErr)
		}
	}
}

func TestLoggerStateSince(t *testing.T) {
	l, _, peer, clk := newTestLogger(zapcore.InfoLevel)
	if got := l.stateSince("198.18.0.11"); !got.IsZero() {
		t.Fatalf("state since %v before any change", got)
	}
	peer.Debug("state changed", slog.String("old", "BGP_FSM_IDLE"), slog.String("new", "BGP_FSM_ACTIVE"), slog.String("reason", "idle-hold-timer-expired"))
	at := clk.now()
	clk.add(3 * time.Second)
	peer.Info("sent notification", slog.String("State", "BGP_FSM_ACTIVE"), slog.Int("Code", 2), slog.Int("Subcode", 2))
	if got := l.stateSince("198.18.0.11"); !got.Equal(at) {
		t.Errorf("state since %v, want %v (the last state change)", got, at)
	}
	peer.Info("Delete a peer configuration")
	if got := l.stateSince("198.18.0.11"); !got.IsZero() {
		t.Errorf("state since %v after the neighbor's removal", got)
	}
}
