package health

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// printable reports whether a reason is short printable ASCII, as reasons
// end up in logs, the stats page and notify scripts.
func printable(s string) bool {
	if len(s) > 400 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// FuzzJudgeResponse feeds arbitrary server bytes to the HTTP response
// judge: it must not panic, must give a short printable reason, and must
// pass only a response whose status is 2xx.
func FuzzJudgeResponse(f *testing.F) {
	f.Add([]byte(okResp), true)
	f.Add([]byte(okResp), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"), true)
	f.Add([]byte("HTTP/1.0 503 Service Unavailable\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.1 301 Moved\r\nLocation: /\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\nabc"), true)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Le"), false)
	f.Add([]byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28}, false)
	f.Add([]byte("\x00\xff\xfe garbage\r\n\r\n"), false)
	f.Add([]byte(""), false)
	f.Fuzz(func(t *testing.T, data []byte, digest bool) {
		u := &URL{Path: "/"}
		if digest {
			u.Digest = helloMD5
		}
		reason := judgeResponse(bytes.NewReader(data), u, 4096, time.Second)
		if !printable(reason) {
			t.Fatalf("reason not short printable ASCII: %q", reason)
		}
		if reason == "" && !bytes.HasPrefix(data, []byte("HTTP/")) {
			t.Fatalf("passed a response that is not HTTP: %q", data)
		}
		if reason == "" && len(data) >= 12 && data[9] != '2' {
			t.Fatalf("passed a non-2xx status: %q", data)
		}
	})
}

// FuzzJudgeEchoReply feeds arbitrary ICMP messages to the echo matcher: it
// must not panic and must accept only an echo reply carrying our
// identifier, sequence and token.
func FuzzJudgeEchoReply(f *testing.F) {
	token := []byte("0123456789abcdef")
	for _, v6 := range []bool{false, true} {
		var typ icmp.Type = ipv4.ICMPTypeEchoReply
		if v6 {
			typ = ipv6.ICMPTypeEchoReply
		}
		b, _ := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: 7, Seq: 9, Data: token}}).Marshal(nil)
		f.Add(b, v6)
		b, _ = (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: 7, Seq: 10, Data: token}}).Marshal(nil)
		f.Add(b, v6)
	}
	quoted := make([]byte, 28)
	quoted[0] = 0x45
	binary.BigEndian.PutUint16(quoted[24:], 7)
	binary.BigEndian.PutUint16(quoted[26:], 9)
	b, _ := (&icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 1, Body: &icmp.DstUnreach{Data: quoted}}).Marshal(nil)
	f.Add(b, false)
	f.Add([]byte{}, false)
	f.Add([]byte{0, 0}, true)
	f.Fuzz(func(t *testing.T, data []byte, v6 bool) {
		verdict := judgeEchoReply(data, v6, 7, 9, token)
		if verdict != errNotOurs && !printable(verdict) {
			t.Fatalf("verdict not printable: %q", verdict)
		}
		if verdict != "" {
			return
		}
		proto := protoICMP
		if v6 {
			proto = protoICMPv6
		}
		m, err := icmp.ParseMessage(proto, data)
		if err != nil {
			t.Fatalf("accepted an unparsable message: %v", err)
		}
		e, ok := m.Body.(*icmp.Echo)
		if !ok || e.ID != 7 || e.Seq != 9 || !bytes.Equal(e.Data, token) {
			t.Fatalf("accepted a message that is not our echo reply: %+v", m)
		}
	})
}

// FuzzParseCommand checks the command-line splitter: no panic, and words
// quoted back round-trip to the same words.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"/usr/bin/check", `/bin/x "a b" 'c d' e"f g"h`, `/bin/x "say \"hi\""`, `a | b`,
		`</dev/tcp/127.0.0.1/80`, `"unterminated`, "", "\t \t", `x ""`, `x '\'`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, _, err := ParseCommand(line)
		if err != nil {
			return
		}
		if len(words) == 0 {
			t.Fatal("no error and no words")
		}
		var b strings.Builder
		for _, w := range words {
			b.WriteString(`"`)
			for _, r := range w {
				if r == '"' || r == '\\' {
					b.WriteByte('\\')
				}
				b.WriteRune(r)
			}
			b.WriteString(`" `)
		}
		again, shell, err := ParseCommand(b.String())
		if err != nil || shell || !slices.Equal(again, words) {
			t.Fatalf("round trip of %q: %q -> %q (shell %v, err %v)", line, words, again, shell, err)
		}
	})
}
