package health

import (
	"context"
	"fmt"
	"net/netip"
	"net/textproto"
	"time"
)

// DefaultHeloName is SMTP_CHECK's HELO name when helo_name is not given (keepalived's).
const DefaultHeloName = "smtpchecker.keepalived.org"

// SMTPChecker is keepalived's SMTP_CHECK: connect to Addr, read the 220
// greeting, send HELO HeloName and expect 250, send QUIT and expect 221 —
// all within the attempt's deadline.
type SMTPChecker struct {
	Addr     netip.AddrPort
	BindTo   netip.AddrPort
	HeloName string // "": DefaultHeloName
	// ConnectTimeout is this checker's connect_timeout; zero: the target's.
	ConnectTimeout time.Duration
}

// OwnConnectTimeout implements connectTimeouter.
func (c *SMTPChecker) OwnConnectTimeout() time.Duration { return c.ConnectTimeout }

// Check implements Checker.
func (c *SMTPChecker) Check(ctx context.Context) Result {
	start := time.Now()
	conn, err := dial(ctx, c.Addr, c.BindTo)
	if err != nil {
		return fail(start, netReason("connect", err, ctxTimeout(ctx, start)))
	}
	defer conn.Close()
	defer deadlineFromContext(ctx, conn)()
	tp := textproto.NewConn(conn)
	helo := c.HeloName
	if helo == "" {
		helo = DefaultHeloName
	}
	steps := []struct {
		send, phase string
		want        int
	}{
		{"", "greeting", 220},
		{"HELO " + helo, "HELO", 250},
		{"QUIT", "QUIT", 221},
	}
	for _, s := range steps {
		if s.send != "" {
			if err := tp.PrintfLine("%s", s.send); err != nil {
				return fail(start, netReason("send "+s.phase, err, ctxTimeout(ctx, start)))
			}
		}
		code, msg, err := tp.ReadResponse(s.want)
		if err != nil {
			if code != 0 {
				return fail(start, fmt.Sprintf("%s: reply %d %s", s.phase, code, firstLine(msg)))
			}
			return fail(start, netReason("read "+s.phase+" reply", err, ctxTimeout(ctx, start)))
		}
	}
	return pass(start)
}

func (c *SMTPChecker) String() string { return "SMTP_CHECK " + c.Addr.String() }

func (c *SMTPChecker) sameConfig(o Checker) bool {
	oc, ok := o.(*SMTPChecker)
	return ok && *oc == *c
}
