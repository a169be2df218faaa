package health

import (
	"errors"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzJudgeDNSReply feeds arbitrary datagrams to DNS_CHECK's reply judge: no
// panic, a short printable reason, and a pass only for a reply that parses
// with the query's ID, NOERROR, the question and an answer.
func FuzzJudgeDNSReply(f *testing.F) {
	query, q, err := dnsQuery(0x1234, "A", "www.example.com")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(query)
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x1234, Response: true})
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET}, dnsmessage.AResource{A: [4]byte{198, 18, 0, 1}})
	good, _ := b.Finish()
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte{0x12, 0x34, 0x80, 0x03, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		err := judgeDNSReply(msg, 0x1234, q)
		if err != nil && !errors.Is(err, errForeignReply) && !printable(err.Error()) {
			t.Fatalf("reason not printable: %q", err.Error())
		}
		if err == nil {
			var p dnsmessage.Parser
			h, perr := p.Start(msg)
			if perr != nil || h.ID != 0x1234 || !h.Response || h.RCode != dnsmessage.RCodeSuccess {
				t.Fatalf("passed a bad reply: %x", msg)
			}
		}
	})
}

// FuzzFileStatus: FILE_CHECK's arithmetic stays in keepalived's bounds for
// any value and weight.
func FuzzFileStatus(f *testing.F) {
	f.Add(int64(1), 0, false)
	f.Add(int64(-254), 1, false)
	f.Add(int64(1<<31), -2147483647, true)
	f.Fuzz(func(t *testing.T, v int64, w int, rev bool) {
		v = min(max(v, -(1<<31)), 1<<31)
		w = min(max(w, -2147483647), 2147483647)
		down, s := fileStatus(v, w, rev)
		if s < -254 || s > 253 {
			t.Fatalf("status %d out of bounds", s)
		}
		if w != 0 && down != (s == -254) {
			t.Fatalf("down %v with status %d", down, s)
		}
		if w == 0 && down != (v != 0) {
			t.Fatalf("weight 0: down %v for value %d", down, v)
		}
	})
}
