package health

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// PingChecker is keepalived's PING_CHECK: an ICMP (or ICMPv6) echo to Addr
// must be answered within the attempt's deadline.
//
// It opens a privileged raw socket ("ip4:icmp", "ip6:ipv6-icmp"); when that
// is refused (not root, no CAP_NET_RAW) it falls back to the unprivileged
// datagram ICMP sockets ("udp4", "udp6"; net.ipv4.ping_group_range must
// include the process's group). Replies are matched by source, sequence and
// a random payload token (and identifier on raw sockets).
type PingChecker struct {
	Addr netip.Addr
	// Source is the local address to send from (bindto); zero: any.
	Source netip.Addr
	// Unprivileged skips the raw socket and uses the datagram socket.
	Unprivileged bool
	// ConnectTimeout is this checker's connect_timeout (the wait for the
	// reply); zero: the target's.
	ConnectTimeout time.Duration
}

// OwnConnectTimeout implements connectTimeouter.
func (c *PingChecker) OwnConnectTimeout() time.Duration { return c.ConnectTimeout }

const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// Check implements Checker.
func (c *PingChecker) Check(ctx context.Context) Result {
	start := time.Now()
	budget := ctxTimeout(ctx, start)
	addr := c.Addr.Unmap()
	if !addr.IsValid() {
		return fail(start, "ping: no address")
	}
	v6 := addr.Is6()
	conn, udp, err := c.listen(v6)
	if err != nil {
		return fail(start, err.Error())
	}
	defer conn.Close()
	defer deadlineFromContext(ctx, conn)()

	var rnd [20]byte
	_, _ = rand.Read(rnd[:])
	id := int(binary.BigEndian.Uint16(rnd[0:2]))
	seq := int(binary.BigEndian.Uint16(rnd[2:4]))
	token := rnd[4:20]
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: token}}
	wb, err := msg.Marshal(nil) // the kernel fills the ICMPv6 checksum
	if err != nil {
		return fail(start, "ping: marshal: "+err.Error())
	}
	var dst net.Addr = &net.IPAddr{IP: addr.AsSlice()}
	if udp {
		dst = &net.UDPAddr{IP: addr.AsSlice()}
	}
	if _, err := conn.WriteTo(wb, dst); err != nil {
		return fail(start, netReason("send echo", err, budget))
	}
	buf := make([]byte, 1500)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			if isTimeout(err) {
				return fail(start, fmt.Sprintf("timeout after %s (no echo reply)", budget))
			}
			return fail(start, netReason("read echo reply", err, budget))
		}
		if from := peerAddr(peer); from != addr {
			continue
		}
		matchID := id
		if udp {
			matchID = -1 // the kernel rewrites the identifier
		}
		switch verdict := judgeEchoReply(buf[:n], v6, matchID, seq, token); verdict {
		case "":
			return pass(start)
		case errNotOurs:
			continue
		default:
			return fail(start, verdict)
		}
	}
}

func (c *PingChecker) listen(v6 bool) (*icmp.PacketConn, bool, error) {
	raw, dgram, any := "ip4:icmp", "udp4", "0.0.0.0"
	if v6 {
		raw, dgram, any = "ip6:ipv6-icmp", "udp6", "::"
	}
	local := any
	if c.Source.IsValid() {
		local = c.Source.Unmap().String()
	}
	if !c.Unprivileged {
		conn, err := icmp.ListenPacket(raw, local)
		if err == nil {
			return conn, false, nil
		}
		if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) {
			return nil, false, fmt.Errorf("ping: open raw socket: %w", err)
		}
	}
	conn, err := icmp.ListenPacket(dgram, local)
	if err != nil {
		return nil, true, fmt.Errorf("ping: open datagram ICMP socket (raw refused; see net.ipv4.ping_group_range): %w", err)
	}
	return conn, true, nil
}

func peerAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.IPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// errNotOurs marks an ICMP message that is not the answer to our echo.
const errNotOurs = "\x00not ours"

// judgeEchoReply parses an ICMP message (without IP header) and says whether
// it answers our echo (""), is someone else's (errNotOurs), or reports an
// error about our echo (a reason). id < 0 skips the identifier check. This
// is the package's parser of untrusted ICMP bytes (FuzzJudgeEchoReply).
func judgeEchoReply(b []byte, v6 bool, id, seq int, token []byte) string {
	proto := protoICMP
	if v6 {
		proto = protoICMPv6
	}
	m, err := icmp.ParseMessage(proto, b)
	if err != nil {
		return errNotOurs
	}
	switch body := m.Body.(type) {
	case *icmp.Echo:
		if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
			return errNotOurs
		}
		if body.Seq != seq || (id >= 0 && body.ID != id) || !bytes.Equal(body.Data, token) {
			return errNotOurs
		}
		return ""
	case *icmp.DstUnreach:
		if !quotesOurEcho(body.Data, v6, id, seq) {
			return errNotOurs
		}
		return fmt.Sprintf("destination unreachable (ICMP code %d)", m.Code)
	case *icmp.TimeExceeded:
		if !quotesOurEcho(body.Data, v6, id, seq) {
			return errNotOurs
		}
		return "time exceeded (TTL)"
	}
	return errNotOurs
}

// quotesOurEcho reports whether the quoted datagram of an ICMP error is our
// echo request: IP header, then type, code, checksum, id, seq.
func quotesOurEcho(d []byte, v6 bool, id, seq int) bool {
	var hl int
	if v6 {
		hl = ipv6.HeaderLen
	} else {
		if len(d) < 1 {
			return false
		}
		hl = int(d[0]&0x0f) * 4
	}
	if hl < 20 || len(d) < hl+8 {
		return false
	}
	e := d[hl:]
	gotID := int(binary.BigEndian.Uint16(e[4:6]))
	gotSeq := int(binary.BigEndian.Uint16(e[6:8]))
	return gotSeq == seq && (id < 0 || gotID == id)
}

func (c *PingChecker) String() string { return "PING_CHECK " + c.Addr.String() }

func (c *PingChecker) sameConfig(o Checker) bool {
	oc, ok := o.(*PingChecker)
	return ok && *oc == *c
}
