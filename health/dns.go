package health

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSChecker is keepalived's DNS_CHECK: one query (Type, Name; default SOA
// for ".") over UDP to Addr. The server passes when a reply with the
// query's ID, the QR bit, RCODE NOERROR, the same question and at least one
// answer arrives within the attempt's deadline (keepalived's check_dns.c).
// Datagrams from elsewhere or with another ID are ignored, as a resolver
// would; a malformed reply fails the attempt.
type DNSChecker struct {
	Addr   netip.AddrPort
	BindTo netip.AddrPort
	Type   string // A, NS, CNAME, SOA, MX, TXT, AAAA
	Name   string
	// ConnectTimeout is this checker's connect_timeout; zero: the target's.
	ConnectTimeout time.Duration
}

// OwnConnectTimeout implements connectTimeouter.
func (c *DNSChecker) OwnConnectTimeout() time.Duration { return c.ConnectTimeout }

var dnsTypes = map[string]dnsmessage.Type{
	"A": dnsmessage.TypeA, "NS": dnsmessage.TypeNS, "CNAME": dnsmessage.TypeCNAME, "SOA": dnsmessage.TypeSOA,
	"MX": dnsmessage.TypeMX, "TXT": dnsmessage.TypeTXT, "AAAA": dnsmessage.TypeAAAA,
}

// dnsQuery builds the query datagram with id.
func dnsQuery(id uint16, typ, name string) ([]byte, dnsmessage.Question, error) {
	t, ok := dnsTypes[strings.ToUpper(typ)]
	if typ == "" {
		t, ok = dnsmessage.TypeSOA, true
	}
	if !ok {
		return nil, dnsmessage.Question{}, fmt.Errorf("unknown query type %q", typ)
	}
	if name == "" {
		name = "."
	}
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	n, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, dnsmessage.Question{}, fmt.Errorf("query name %q: %w", name, err)
	}
	q := dnsmessage.Question{Name: n, Type: t, Class: dnsmessage.ClassINET}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, q, err
	}
	if err := b.Question(q); err != nil {
		return nil, q, err
	}
	msg, err := b.Finish()
	return msg, q, err
}

// errForeignReply marks a datagram that answers some other query: it is
// skipped, not judged.
var errForeignReply = errors.New("not a reply to this query")

// judgeDNSReply judges one datagram against the query (id, q). It returns
// errForeignReply for a datagram that is not a reply to it, nil for a
// passing reply, else the reason.
func judgeDNSReply(msg []byte, id uint16, q dnsmessage.Question) error {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		if len(msg) >= 2 && binary.BigEndian.Uint16(msg) != id {
			return errForeignReply
		}
		return fmt.Errorf("malformed reply: %w", err)
	}
	if h.ID != id || !h.Response {
		return errForeignReply
	}
	if h.RCode != dnsmessage.RCodeSuccess {
		return fmt.Errorf("rcode %s", strings.TrimPrefix(h.RCode.String(), "RCode"))
	}
	rq, err := p.Question()
	if err != nil {
		return fmt.Errorf("malformed reply: question: %w", err)
	}
	if rq.Type != q.Type || rq.Class != q.Class || !strings.EqualFold(rq.Name.String(), q.Name.String()) {
		return errForeignReply
	}
	if err := p.SkipAllQuestions(); err != nil {
		return fmt.Errorf("malformed reply: questions: %w", err)
	}
	if _, err := p.AnswerHeader(); err != nil {
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return errors.New("no answer")
		}
		return fmt.Errorf("malformed reply: answer: %w", err)
	}
	return nil
}

// Check implements Checker.
func (c *DNSChecker) Check(ctx context.Context) Result {
	start := time.Now()
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	query, q, err := dnsQuery(id, c.Type, c.Name)
	if err != nil {
		return fail(start, err.Error())
	}
	conn, err := dialUDP(ctx, c.Addr, c.BindTo)
	if err != nil {
		return fail(start, netReason("connect", err, ctxTimeout(ctx, start)))
	}
	defer conn.Close()
	defer deadlineFromContext(ctx, conn)()
	if _, err := conn.Write(query); err != nil {
		return fail(start, netReason("send query", err, ctxTimeout(ctx, start)))
	}
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return fail(start, netReason("read reply", err, ctxTimeout(ctx, start)))
		}
		switch err := judgeDNSReply(buf[:n], id, q); {
		case errors.Is(err, errForeignReply):
			continue
		case err != nil:
			return fail(start, err.Error())
		}
		return pass(start)
	}
}

func (c *DNSChecker) String() string {
	return fmt.Sprintf("DNS_CHECK %s %s %s", c.Addr, c.typ(), c.name())
}

func (c *DNSChecker) typ() string {
	if c.Type == "" {
		return "SOA"
	}
	return strings.ToUpper(c.Type)
}

func (c *DNSChecker) name() string {
	if c.Name == "" {
		return "."
	}
	return c.Name
}

func (c *DNSChecker) sameConfig(o Checker) bool {
	oc, ok := o.(*DNSChecker)
	return ok && *oc == *c
}

// dialUDP opens a connected UDP socket to addr (from bind when set): a
// connected socket receives only addr's datagrams and the ICMP errors about
// them (ECONNREFUSED on read for "port unreachable").
func dialUDP(ctx context.Context, addr, bind netip.AddrPort) (*net.UDPConn, error) {
	if !addr.IsValid() {
		return nil, errors.New("no address configured")
	}
	d := net.Dialer{}
	if bind.IsValid() {
		d.LocalAddr = net.UDPAddrFromAddrPort(bind)
	}
	c, err := d.DialContext(ctx, "udp", addr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}
