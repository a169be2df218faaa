package health

import (
	"context"
	"time"
)

// Result is the outcome of one check attempt.
type Result struct {
	OK bool
	// Reason says why a check failed (or, rarely, a note on a pass): short
	// and precise, without the server's address (the target ID says which
	// server): "connection refused", "timeout after 2s", "status 503 (GET /)",
	// "TLS: certificate expired", "script exit 1".
	Reason string
	// Weight is the dynamic weight reported by a MISC_CHECK with
	// misc_dynamic; it is meaningful only when HasWeight is set.
	Weight    int
	HasWeight bool
	// Duration is how long the attempt took. The Monitor uses it to find
	// the attempt's start, which anchors the next check (fixed rate).
	Duration time.Duration
}

// Checker runs one check attempt against one real server. Check must return
// when ctx is done (the scheduler gives each attempt a deadline) and must not
// keep goroutines or descriptors after it returns. String describes the
// checker for logs ("HTTP_GET 198.18.1.10:80 /health").
type Checker interface {
	Check(ctx context.Context) Result
	String() string
}

// timeouter is implemented by checkers that have their own attempt timeout
// (MISC_CHECK's misc_timeout) instead of the target's connect_timeout.
type timeouter interface {
	AttemptTimeout() time.Duration
}

// connectTimeouter is implemented by checkers that carry their own
// connect_timeout: keepalived times each checker of a server alone.
type connectTimeouter interface {
	OwnConnectTimeout() time.Duration
}

// configEqualer is implemented by the package's checkers: it reports whether
// two checkers have the same configuration, so a reload keeps the state of
// unchanged targets.
type configEqualer interface {
	sameConfig(other Checker) bool
}

func pass(start time.Time) Result {
	return Result{OK: true, Duration: time.Since(start)}
}

func fail(start time.Time, reason string) Result {
	return Result{Reason: reason, Duration: time.Since(start)}
}
