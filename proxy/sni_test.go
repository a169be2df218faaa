package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
)

// clientHello returns the first flight of a crypto/tls client for serverName.
func clientHello(t testing.TB, serverName string, alpn ...string) []byte {
	t.Helper()
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		cfg := &tls.Config{ServerName: serverName, NextProtos: alpn, InsecureSkipVerify: serverName == ""} //nolint:gosec // test
		_ = tls.Client(c, cfg).Handshake()
	}()
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		n, err := s.Read(tmp)
		if err != nil {
			t.Fatalf("read hello: %v", err)
		}
		buf = append(buf, tmp[:n]...)
		if _, err := ParseClientHello(buf); !errors.Is(err, ErrHelloIncomplete) {
			break
		}
	}
	s.Close()
	c.Close()
	<-done
	return buf
}

func TestParseClientHelloReal(t *testing.T) {
	for _, name := range []string{"www.example.com", "A.Example.ORG", ""} {
		b := clientHello(t, name, "h2", "http/1.1")
		got, err := ParseClientHello(b)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		want := map[string]string{"www.example.com": "www.example.com", "A.Example.ORG": "a.example.org", "": ""}[name]
		if got != want {
			t.Fatalf("got %q want %q", got, want)
		}
		for i := range len(b) - 1 {
			if _, err := ParseClientHello(b[:i]); !errors.Is(err, ErrHelloIncomplete) {
				t.Fatalf("prefix %d: %v", i, err)
			}
		}
	}
}

// The same hello split across several records reassembles.
func TestParseClientHelloFragmented(t *testing.T) {
	b := clientHello(t, "split.example.com")
	msg := b[5:]
	var rec []byte
	for len(msg) > 0 {
		n := min(len(msg), 50)
		rec = append(rec, 22, 3, 1, byte(n>>8), byte(n))
		rec = append(rec, msg[:n]...)
		msg = msg[n:]
	}
	got, err := ParseClientHello(rec)
	if err != nil || got != "split.example.com" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestParseClientHelloRejects(t *testing.T) {
	good := clientHello(t, "www.example.com")
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"not tls":        []byte("GET / HTTP/1.1\r\n\r\n"),
		"alert record":   mut(func(b []byte) []byte { b[0] = 21; return b }),
		"bad version":    mut(func(b []byte) []byte { b[1] = 2; return b }),
		"zero record":    {22, 3, 1, 0, 0},
		"huge record":    {22, 3, 1, 0x40, 0x01},
		"server hello":   mut(func(b []byte) []byte { b[5] = 2; return b }),
		"short msg len":  mut(func(b []byte) []byte { b[8]--; return b }),
		"long sid":       mut(func(b []byte) []byte { b[5+4+34] = 33; return b }),
		"trailing bytes": mut(func(b []byte) []byte { b[4]++; b[8]++; return append(b, 0) }),
	}
	for name, b := range cases {
		if _, err := ParseClientHello(b); err == nil || errors.Is(err, ErrHelloIncomplete) {
			t.Errorf("%s: got %v, want rejection", name, err)
		}
	}
}

func TestValidSNI(t *testing.T) {
	for s, ok := range map[string]bool{
		"a.b": true, "x-y_z.example.com": true, "a": true,
		"": false, ".a": false, "a.": false, "a..b": false, "a b": false, "a\x00b": false,
		string(make([]byte, 64)): false,
	} {
		if validSNI([]byte(s)) != ok {
			t.Errorf("%q: want %v", s, ok)
		}
	}
}

func FuzzParseClientHello(f *testing.F) {
	f.Add(clientHello(f, "www.example.com", "h2"))
	f.Add(clientHello(f, ""))
	f.Add(clientHello(f, "xn--bcher-kva.example"))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := ParseClientHello(b)
		if err != nil {
			return
		}
		if name != "" && !validSNI([]byte(name)) {
			t.Fatalf("invalid name accepted: %q", name)
		}
	})
}
