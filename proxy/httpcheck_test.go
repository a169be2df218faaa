package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestCheckRequestHeaders(t *testing.T) {
	cases := []struct {
		raw    string
		http11 bool
		status int
	}{
		{"Host: a\r\n\r\n", true, 0},
		{"Host: a\r\nContent-Length: 5\r\n\r\n", true, 0},
		{"Host: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", true, 0},
		{"Host: a\nX: y\n\n", true, 0},
		{"X: y\r\n\r\n", false, 0},
		{"X: y\r\n\r\n", true, 400}, // no Host
		{"Host: a\r\nHost: b\r\n\r\n", true, 400},
		{"Host: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", true, 400},
		{"Host: a\r\nContent-Length: 5, 5\r\n\r\n", true, 400},
		{"Host: a\r\nContent-Length: +5\r\n\r\n", true, 400},
		{"Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", true, 400},
		{"Host: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", true, 400},
		{"Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", true, 400},
		{"Host: a\r\nTransfer-Encoding: gzip\r\n\r\n", true, 400},
		{"Host: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n", true, 501},
		{"Host: a\r\nTransfer-Encoding: chunked\r\n\r\n", false, 400},
		{"Host: a\r\nX: a\r\n b\r\n\r\n", true, 400},
		{"Host: a\r\n\tX: b\r\n\r\n", true, 400},
		{"Host: a\r\nX Y: b\r\n\r\n", true, 400},
		{"Host: a\r\nX : b\r\n\r\n", true, 400},
		{"Host: a\r\n: b\r\n\r\n", true, 400},
		{"Host: a\r\nX: a\x00b\r\n\r\n", true, 400},
		{"Host: a\r\nX: a\rb\r\n\r\n", true, 400},
		{"Host: a\r\nX: a\x7fb\r\n\r\n", true, 400},
		{"Host: a\r\nNoColon\r\n\r\n", true, 400},
		{"Host: a\r\nX: caf\xc3\xa9\r\n\r\n", true, 0}, // obs-text is allowed
	}
	for _, c := range cases {
		if got := checkRequestHeaders([]byte(c.raw), c.http11, nil); got.status != c.status {
			t.Errorf("%q http11=%v: got %d (%s) want %d", c.raw, c.http11, got.status, got.reason, c.status)
		}
	}
}

func TestCheckRequestTarget(t *testing.T) {
	for _, c := range []struct {
		m, u string
		ok   bool
	}{
		{"GET", "/", true}, {"GET", "/a?b=c%20", true}, {"M-SEARCH", "*", true},
		{"GET", "/a b", false}, {"GET", "/a\x00", false}, {"G(T", "/", false}, {"GET", "", false}, {"GET", "/\x80", false},
	} {
		if got := checkRequestTarget([]byte(c.m), []byte(c.u)); (got.status == 0) != c.ok {
			t.Errorf("%q %q: %+v", c.m, c.u, got)
		}
	}
}

func FuzzCheckRequestHeaders(f *testing.F) {
	f.Add([]byte("Host: a\r\nContent-Length: 5\r\n\r\n"), true)
	f.Add([]byte("Host: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), true)
	f.Add([]byte("Host: a\r\nX: a\r\n b\r\n\r\n"), false)
	f.Add([]byte("Host: a\r\nconnection: keep-alive, x\r\nKeep-Alive: 1\r\nproxy-connection: x\r\nTe: trailers\r\n"+
		"UPGRADE: h2c\r\nexpect: 100-continue\r\nx-forwarded-for: 1\r\nX-Forwarded-Proto: http\r\nforwarded: for=1\r\n"+
		"X_Forwarded_For: 2\r\n\r\n"), true)
	f.Add([]byte("Host: a\r\nConnection: close\r\nX-Forwarded-Forx: 1\r\nForwarde: 1\r\n\r\n"), false)
	f.Fuzz(func(t *testing.T, raw []byte, http11 bool) {
		var info headInfo
		r := checkRequestHeaders(raw, http11, &info)
		if r.status != 0 && r.status != 400 && r.status != 501 {
			t.Fatalf("status %d", r.status)
		}
		if r.status != 0 {
			return
		}
		// Accepted heads never carry control characters other than HTAB in a line.
		for i, c := range raw {
			if c == 0 || (c == '\r' && i+1 < len(raw) && raw[i+1] != '\n') {
				t.Fatalf("accepted %q", raw)
			}
		}
		// What fasthttp parses from the head, as the proxy reads it, has
		// no field that info.has leaves out: a delete skipped for that
		// reason would let the field through.
		line := "GET / HTTP/1.0\r\n"
		if http11 {
			line = "GET / HTTP/1.1\r\n"
		}
		var hd fasthttp.RequestHeader
		if hd.Read(bufio.NewReader(bytes.NewReader(append([]byte(line), raw...)))) != nil {
			return
		}
		// removeRequestHop resets fasthttp's close flag whatever the set
		// says (an HTTP/1.0 head has one with no field behind it).
		hd.ResetConnectionClose()
		for k := range hd.All() {
			if want := fieldBit(k); info.has&want != want {
				t.Fatalf("fasthttp has %q, the check's set %b lacks %b", k, info.has, want)
			}
		}
		for _, f := range fieldBits {
			if hd.Peek(f.name) != nil && info.has&f.bit == 0 {
				t.Fatalf("fasthttp has %s, the check's set %b does not", f.name, info.has)
			}
		}
	})
}

// fieldBit knows every name of fieldBits in any case, and no other name.
func TestFieldBit(t *testing.T) {
	for _, f := range fieldBits {
		for _, n := range []string{f.name, strings.ToLower(f.name), strings.ToUpper(f.name)} {
			if got := fieldBit([]byte(n)); got != f.bit {
				t.Errorf("fieldBit(%q) = %b, want %b", n, got, f.bit)
			}
		}
		if got := fieldBit([]byte(f.name + "x")); got != 0 {
			t.Errorf("fieldBit(%q) = %b, want 0", f.name+"x", got)
		}
	}
	if got := fieldBit([]byte("x_forwarded_for")); got != hasUnderscore {
		t.Errorf("fieldBit(x_forwarded_for) = %b, want hasUnderscore", got)
	}
}
