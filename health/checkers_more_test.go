package health

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"halb/internal/testkit"
)

// udpServer answers every datagram on 127.0.0.1 with reply(query) (nil: no answer).
func udpServer(t testing.TB, reply func([]byte) [][]byte) netip.AddrPort {
	a, _ := testkit.UDPServer(t, reply)
	return a
}

// dnsAnswer builds a reply to query with rcode and n A answers.
func dnsAnswer(t testing.TB, query []byte, rcode dnsmessage.RCode, n int, id uint16) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		t.Error(err)
		return nil
	}
	q, err := p.Question()
	if err != nil {
		t.Error(err)
		return nil
	}
	if id == 0 {
		id = h.ID
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, RCode: rcode})
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	for range n {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{198, 18, 0, 1}})
	}
	msg, err := b.Finish()
	if err != nil {
		t.Error(err)
	}
	return msg
}

func attempt(c Checker, d time.Duration) Result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.Check(ctx)
}

func TestDNSCheck(t *testing.T) {
	var mu sync.Mutex
	var gotType dnsmessage.Type
	var gotName string
	ok := udpServer(t, func(q []byte) [][]byte {
		var p dnsmessage.Parser
		if _, err := p.Start(q); err == nil {
			if qq, err := p.Question(); err == nil {
				mu.Lock()
				gotType, gotName = qq.Type, qq.Name.String()
				mu.Unlock()
			}
		}
		// a stray datagram with another ID first: it must be skipped, not judged
		return [][]byte{dnsAnswer(t, q, dnsmessage.RCodeNameError, 0, 1), dnsAnswer(t, q, dnsmessage.RCodeSuccess, 1, 0)}
	})
	c := &DNSChecker{Addr: ok, Type: "A", Name: "www.example.com"}
	if r := attempt(c, 2*time.Second); !r.OK {
		t.Fatalf("good server failed: %s", r.Reason)
	}
	mu.Lock()
	if gotType != dnsmessage.TypeA || gotName != "www.example.com." {
		t.Errorf("query sent: %v %q", gotType, gotName)
	}
	mu.Unlock()
	if r := attempt(&DNSChecker{Addr: ok}, 2*time.Second); !r.OK {
		t.Fatalf("default query (SOA .) failed: %s", r.Reason)
	}
	mu.Lock()
	if gotType != dnsmessage.TypeSOA || gotName != "." {
		t.Errorf("default query: %v %q", gotType, gotName)
	}
	mu.Unlock()

	nx := udpServer(t, func(q []byte) [][]byte { return [][]byte{dnsAnswer(t, q, dnsmessage.RCodeNameError, 0, 0)} })
	if r := attempt(&DNSChecker{Addr: nx, Type: "A", Name: "x.example."}, 2*time.Second); r.OK || !strings.Contains(r.Reason, "rcode NameError") {
		t.Errorf("NXDOMAIN: %+v", r)
	}
	empty := udpServer(t, func(q []byte) [][]byte { return [][]byte{dnsAnswer(t, q, dnsmessage.RCodeSuccess, 0, 0)} })
	if r := attempt(&DNSChecker{Addr: empty}, 2*time.Second); r.OK || r.Reason != "no answer" {
		t.Errorf("no answer: %+v", r)
	}
	garbage := udpServer(t, func(q []byte) [][]byte { return [][]byte{append(q[:2:2], 0x80, 0, 0, 1)} })
	if r := attempt(&DNSChecker{Addr: garbage}, 2*time.Second); r.OK || !strings.Contains(r.Reason, "malformed") {
		t.Errorf("malformed: %+v", r)
	}
	silent := udpServer(t, func([]byte) [][]byte { return nil })
	if r := attempt(&DNSChecker{Addr: silent}, 200*time.Millisecond); r.OK || !strings.Contains(r.Reason, "timeout") {
		t.Errorf("silent: %+v", r)
	}
	if r := attempt(&DNSChecker{Addr: closedUDPPort(t)}, 2*time.Second); r.OK || r.Reason != "read reply: connection refused" && r.Reason != "connection refused" {
		t.Errorf("closed port: %+v", r)
	}
	if r := attempt(&DNSChecker{Addr: ok, Type: "PTR"}, time.Second); r.OK {
		t.Error("unknown type passed")
	}
}

// closedUDPPort is a loopback UDP port nobody listens on.
func closedUDPPort(t testing.TB) netip.AddrPort {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return a
}

// smtpSink speaks the server side of an SMTP dialog; greeting and helo are the replies sent.
func smtpSink(t testing.TB, greeting, helo string, gotHelo chan<- string) netip.AddrPort {
	s := newRawServer(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		_, _ = c.Write([]byte(greeting))
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			l = strings.TrimRight(l, "\r\n")
			switch {
			case strings.HasPrefix(l, "HELO "):
				if gotHelo != nil {
					gotHelo <- strings.TrimPrefix(l, "HELO ")
				}
				_, _ = c.Write([]byte(helo))
			case l == "QUIT":
				_, _ = c.Write([]byte("221 bye\r\n"))
				return
			default:
				_, _ = c.Write([]byte("500 what\r\n"))
			}
		}
	})
	return s.addr()
}

func TestSMTPCheck(t *testing.T) {
	got := make(chan string, 1)
	ok := smtpSink(t, "220-mx.example.com ESMTP\r\n220 ready\r\n", "250 hello\r\n", got)
	if r := attempt(&SMTPChecker{Addr: ok, HeloName: "lb1.example.com"}, 2*time.Second); !r.OK {
		t.Fatalf("good server: %s", r.Reason)
	}
	if h := <-got; h != "lb1.example.com" {
		t.Errorf("HELO %q", h)
	}
	if r := attempt(&SMTPChecker{Addr: ok}, 2*time.Second); !r.OK || <-got != DefaultHeloName {
		t.Errorf("default HELO: %+v", r)
	}
	busy := smtpSink(t, "421 too busy\r\n", "250 hello\r\n", nil)
	if r := attempt(&SMTPChecker{Addr: busy}, 2*time.Second); r.OK || !strings.Contains(r.Reason, "greeting: reply 421") {
		t.Errorf("421 greeting: %+v", r)
	}
	refuse := smtpSink(t, "220 ready\r\n", "550 go away\r\n", nil)
	if r := attempt(&SMTPChecker{Addr: refuse}, 2*time.Second); r.OK || !strings.Contains(r.Reason, "HELO: reply 550") {
		t.Errorf("HELO refused: %+v", r)
	}
	mute := newRawServer(t, func(c net.Conn) { _, _ = c.Read(make([]byte, 1)) })
	if r := attempt(&SMTPChecker{Addr: mute.addr()}, 200*time.Millisecond); r.OK || !strings.Contains(r.Reason, "timeout") {
		t.Errorf("mute server: %+v", r)
	}
	if r := attempt(&SMTPChecker{Addr: closedPort(t)}, time.Second); r.OK || r.Reason != "connection refused" {
		t.Errorf("closed: %+v", r)
	}
}

func TestUDPCheck(t *testing.T) {
	echo := udpServer(t, func(q []byte) [][]byte { return [][]byte{append([]byte{0xab}, q...)} })
	silent := udpServer(t, func([]byte) [][]byte { return nil })
	closed := closedUDPPort(t)
	cases := []struct {
		name string
		c    UDPChecker
		d    time.Duration
		ok   bool
		why  string
	}{
		{"reply any", UDPChecker{Addr: echo, Payload: []byte{1, 2}, RequireReply: true}, 2 * time.Second, true, ""},
		{"reply prefix", UDPChecker{Addr: echo, Payload: []byte{1}, RequireReply: true, Reply: []byte{0xab, 1}}, 2 * time.Second, true, ""},
		{"reply mismatch", UDPChecker{Addr: echo, Payload: []byte{1}, RequireReply: true, Reply: []byte{0xcd}}, 2 * time.Second, false, "does not match"},
		{"reply too short", UDPChecker{Addr: echo, Payload: []byte{1}, RequireReply: true, MinLen: 5}, 2 * time.Second, false, "at least 5"},
		{"reply too long", UDPChecker{Addr: echo, Payload: []byte{1, 2, 3}, RequireReply: true, MaxLen: 2}, 2 * time.Second, false, "at most 2"},
		{"silent, reply required", UDPChecker{Addr: silent, RequireReply: true}, 200 * time.Millisecond, false, "timeout"},
		{"silent, no reply required", UDPChecker{Addr: silent, Payload: []byte{1}}, 200 * time.Millisecond, true, ""},
		{"port unreachable", UDPChecker{Addr: closed, Payload: []byte{1}}, 2 * time.Second, false, "port unreachable"},
	}
	for _, tc := range cases {
		r := attempt(&tc.c, tc.d)
		if r.OK != tc.ok || !strings.Contains(r.Reason, tc.why) {
			t.Errorf("%s: %+v", tc.name, r)
		}
	}
}

func TestFileCheck(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	write := func(s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		content string
		c       FileChecker
		ok      bool
		weight  int
	}{
		{"", FileChecker{Weight: 1}, true, 0},
		{"0\n", FileChecker{Weight: 0}, true, 0},
		{"1\n", FileChecker{Weight: 0}, false, 0},
		{"-254\n", FileChecker{Weight: 1}, false, 0},
		{"-253\n", FileChecker{Weight: 1}, true, 0},
		{"127", FileChecker{Weight: -2}, false, 0},
		{"127", FileChecker{Weight: 2, Reverse: true}, false, 0},
		{"  +5 junk", FileChecker{Weight: 2, Dynamic: true, BaseWeight: 10}, true, 20},
		{"-3", FileChecker{Weight: 5, Dynamic: true, BaseWeight: 10}, true, 0},
		{"99999999999999999999", FileChecker{Weight: -3}, false, 0},
		{"x", FileChecker{Weight: 1, Dynamic: true, BaseWeight: 7}, true, 7},
	}
	for _, tc := range cases {
		write(tc.content)
		tc.c.Path = p
		r := attempt(&tc.c, time.Second)
		if r.OK != tc.ok || tc.c.Dynamic && r.Weight != tc.weight {
			t.Errorf("%q with %+v: %+v", tc.content, tc.c, r)
		}
	}
	if r := attempt(&FileChecker{Path: filepath.Join(dir, "missing"), Weight: 1}, time.Second); !r.OK {
		t.Errorf("missing file reads as 0: %+v", r)
	}
}
