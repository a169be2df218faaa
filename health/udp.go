package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"
)

// UDPChecker is keepalived's UDP_CHECK: send Payload (may be empty) to Addr.
// Without RequireReply the server passes unless an ICMP error (port
// unreachable) comes back before the attempt's deadline; the deadline
// passing is a pass. With RequireReply a reply must come: at least MinLen
// and at most MaxLen bytes (MaxLen 0: no bound) and, when Reply is set,
// starting with Reply.
type UDPChecker struct {
	Addr         netip.AddrPort
	BindTo       netip.AddrPort
	Payload      []byte
	RequireReply bool
	Reply        []byte
	MinLen       int
	MaxLen       int
	// ConnectTimeout is this checker's connect_timeout; zero: the target's.
	ConnectTimeout time.Duration
}

// OwnConnectTimeout implements connectTimeouter.
func (c *UDPChecker) OwnConnectTimeout() time.Duration { return c.ConnectTimeout }

// Check implements Checker.
func (c *UDPChecker) Check(ctx context.Context) Result {
	start := time.Now()
	conn, err := dialUDP(ctx, c.Addr, c.BindTo)
	if err != nil {
		return fail(start, netReason("connect", err, ctxTimeout(ctx, start)))
	}
	defer conn.Close()
	defer deadlineFromContext(ctx, conn)()
	if _, err := conn.Write(c.Payload); err != nil {
		return fail(start, netReason("send", err, ctxTimeout(ctx, start)))
	}
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	switch {
	case err == nil:
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail(start, "port unreachable")
	case !c.RequireReply && isTimeout(err) && ctx.Err() != context.Canceled:
		return pass(start) // silence is consent: no ICMP error within the deadline
	default:
		return fail(start, netReason("read reply", err, ctxTimeout(ctx, start)))
	}
	if !c.RequireReply {
		return pass(start)
	}
	if reason := judgeUDPReply(buf[:n], c.Reply, c.MinLen, c.MaxLen); reason != "" {
		return fail(start, reason)
	}
	return pass(start)
}

// judgeUDPReply returns why reply fails the check, or "".
func judgeUDPReply(reply, want []byte, minLen, maxLen int) string {
	switch {
	case len(reply) < minLen:
		return fmt.Sprintf("reply of %d bytes, want at least %d", len(reply), minLen)
	case maxLen > 0 && len(reply) > maxLen:
		return fmt.Sprintf("reply of %d bytes, want at most %d", len(reply), maxLen)
	case len(want) > 0 && !bytes.HasPrefix(reply, want):
		return "reply does not match require_reply"
	}
	return ""
}

func (c *UDPChecker) String() string { return "UDP_CHECK " + c.Addr.String() }

func (c *UDPChecker) sameConfig(o Checker) bool {
	oc, ok := o.(*UDPChecker)
	return ok && oc.Addr == c.Addr && oc.BindTo == c.BindTo && bytes.Equal(oc.Payload, c.Payload) &&
		oc.RequireReply == c.RequireReply && bytes.Equal(oc.Reply, c.Reply) && oc.MinLen == c.MinLen &&
		oc.MaxLen == c.MaxLen && oc.ConnectTimeout == c.ConnectTimeout
}
