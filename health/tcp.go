package health

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"
)

// TCPChecker is keepalived's TCP_CHECK: the server passes when a TCP
// connection to Addr (connect_ip/connect_port) opens within the attempt's
// deadline. The connection is closed at once.
type TCPChecker struct {
	Addr netip.AddrPort
	// BindTo is the local source address (bindto, bind_port); zero: any.
	BindTo netip.AddrPort
	// ConnectTimeout is this checker's connect_timeout; zero: the target's.
	ConnectTimeout time.Duration
}

// OwnConnectTimeout implements connectTimeouter.
func (c *TCPChecker) OwnConnectTimeout() time.Duration { return c.ConnectTimeout }

// Check implements Checker.
func (c *TCPChecker) Check(ctx context.Context) Result {
	start := time.Now()
	conn, err := dial(ctx, c.Addr, c.BindTo)
	if err != nil {
		return fail(start, netReason("connect", err, ctxTimeout(ctx, start)))
	}
	_ = conn.Close()
	return pass(start)
}

func (c *TCPChecker) String() string {
	s := "TCP_CHECK " + c.Addr.String()
	if c.BindTo.IsValid() {
		s += " bindto " + c.BindTo.String()
	}
	return s
}

func (c *TCPChecker) sameConfig(o Checker) bool {
	oc, ok := o.(*TCPChecker)
	return ok && *oc == *c
}

func dial(ctx context.Context, addr, bind netip.AddrPort) (net.Conn, error) {
	if !addr.IsValid() {
		return nil, errors.New("no address configured")
	}
	d := net.Dialer{}
	if bind.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(bind)
	}
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, err
	}
	// Close with RST, as HAProxy does for its checks: a check connection
	// has nothing left to say when we close it, and thousands of checks a
	// second must not fill the port space with TIME_WAIT.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c, nil
}

// budgetKey carries an attempt's nominal timeout in its context, so that
// reasons quote the configured value ("timeout after 3s") and not the
// slightly smaller time left when the checker started.
type budgetKey struct{}

func withBudget(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, budgetKey{}, d)
}

// ctxTimeout is the attempt's total budget, for reasons.
func ctxTimeout(ctx context.Context, start time.Time) time.Duration {
	if d, ok := ctx.Value(budgetKey{}).(time.Duration); ok {
		return d
	}
	if dl, ok := ctx.Deadline(); ok {
		return dl.Sub(start).Round(time.Millisecond)
	}
	return time.Since(start).Round(time.Millisecond)
}
