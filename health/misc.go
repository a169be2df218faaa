package health

import (
	"context"
	"fmt"
	"time"
)

// MiscChecker is keepalived's MISC_CHECK: run Command (misc_path) and judge
// its exit status. Exit 0 passes, any other status fails; with Dynamic
// (misc_dynamic), exit 1 fails and 2-255 pass with the weight set to
// status-2 (keepalived's check_misc.c; effective range 0..253). A script
// still running at Timeout (misc_timeout; default: the target's delay_loop,
// as keepalived) is killed with its whole process group and fails.
type MiscChecker struct {
	Command string
	Timeout time.Duration
	Dynamic bool
	Script  ScriptOptions
}

// Check implements Checker.
func (c *MiscChecker) Check(ctx context.Context) Result {
	start := time.Now()
	run := runScript(ctx, c.Command, c.Script)
	switch {
	case run.err != nil:
		return fail(start, run.err.Error())
	case run.timedOut:
		return fail(start, fmt.Sprintf("script timeout after %s (killed)", ctxTimeout(ctx, start)))
	case run.signal != 0:
		return fail(start, fmt.Sprintf("script killed by signal %s", run.signal))
	}
	code := run.exitCode
	switch {
	case code == 0:
		return pass(start)
	case c.Dynamic && code >= 2 && code <= 255:
		r := pass(start)
		r.Weight, r.HasWeight = code-2, true
		return r
	}
	reason := fmt.Sprintf("script exit %d", code)
	if l := firstLine(run.output); l != "" {
		reason += ": " + l
	}
	return fail(start, reason)
}

// AttemptTimeout is misc_timeout; zero lets the scheduler use delay_loop.
func (c *MiscChecker) AttemptTimeout() time.Duration { return c.Timeout }

func (c *MiscChecker) String() string { return "MISC_CHECK " + c.Command }

func (c *MiscChecker) sameConfig(o Checker) bool {
	oc, ok := o.(*MiscChecker)
	return ok && *oc == *c
}
