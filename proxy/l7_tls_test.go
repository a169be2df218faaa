package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap/zaptest"

	"halb/internal/testkit"
)

var testNotAfter = time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)

// l7Cert makes a self-signed ECDSA certificate for names (the first is the CN), valid until
// testNotAfter, and returns the certificate and key PEMs.
func l7Cert(t testing.TB, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	return testkit.SelfSigned(t, testNotAfter, names...)
}

// writeL7Cert writes name's certificate and key into one PEM in dir, plus extra PEM bytes.
func writeL7Cert(t testing.TB, dir, file string, extra []byte, names ...string) string {
	t.Helper()
	c, k := l7Cert(t, names...)
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, bytes.Join([][]byte{c, k, extra}, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsServe accepts on a loopback listener, handshakes with store's config and echoes.
func tlsServe(t *testing.T, store *CertStore) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		tc, err := Handshake(context.Background(), c, store.Config(), 5*time.Second)
		if err != nil {
			return
		}
		io.Copy(tc, tc)
	})
}

func dialName(t *testing.T, addr, name string, cache tls.ClientSessionCache) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true, ClientSessionCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func peerName(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].Subject.CommonName }

func TestCertStoreSNI(t *testing.T) {
	dir := t.TempDir()
	a := writeL7Cert(t, dir, "a.pem", nil, "a.test")
	bc, bk := l7Cert(t, "b.test")
	os.WriteFile(filepath.Join(dir, "b.crt"), bc, 0o600)
	os.WriteFile(filepath.Join(dir, "b.key"), bk, 0o600)
	w := writeL7Cert(t, dir, "w.pem", nil, "*.w.test")
	store, err := NewCertStore(zaptest.NewLogger(t), []CertFile{{Cert: a}, {Cert: filepath.Join(dir, "b.crt"), Key: filepath.Join(dir, "b.key")}, {Cert: w}}, TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServe(t, store)
	for name, want := range map[string]string{
		"a.test": "a.test", "b.test": "b.test", "B.Test": "b.test", "x.w.test": "*.w.test",
		"y.x.w.test": "a.test", "w.test": "a.test", "unknown.test": "a.test", "": "a.test",
	} {
		c := dialName(t, addr, name, nil)
		if got := peerName(c); got != want {
			t.Errorf("SNI %q: got certificate %q, want %q", name, got, want)
		}
		if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("version %#x", v)
		}
		c.Close()
	}
	infos := store.Certificates()
	if len(infos) != 3 || infos[0].File != a || !infos[0].NotAfter.Equal(testNotAfter) || infos[2].Names[0] != "*.w.test" || infos[0].Stapled {
		t.Errorf("infos = %+v", infos)
	}
	// TLS 1.1 is refused: 1.2 is the minimum.
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	c.Close()
}

func TestCertStoreMinVersion13(t *testing.T) {
	dir := t.TempDir()
	store, err := NewCertStore(nil, []CertFile{{Cert: writeL7Cert(t, dir, "a.pem", nil, "a.test")}}, TLSOptions{MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServe(t, store)
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}); err == nil {
		c.Close()
		t.Error("TLS 1.2 handshake succeeded with minimum 1.3")
	}
	if _, err := NewCertStore(nil, []CertFile{{Cert: filepath.Join(dir, "a.pem")}}, TLSOptions{MinVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 minimum accepted")
	}
}

func TestCertStoreErrors(t *testing.T) {
	dir := t.TempDir()
	a := writeL7Cert(t, dir, "a.pem", nil, "a.test")
	_, bk := l7Cert(t, "b.test")
	os.WriteFile(filepath.Join(dir, "b.key"), bk, 0o600)
	for _, tt := range []struct {
		files []CertFile
		want  string
	}{
		{nil, "no certificate"},
		{[]CertFile{{Cert: filepath.Join(dir, "none.pem")}}, "no such file"},
		{[]CertFile{{Cert: a, Key: filepath.Join(dir, "b.key")}}, "private key does not match public key"},
		{[]CertFile{{Cert: filepath.Join(dir, "b.key")}}, "failed to find certificate PEM data"},
		{[]CertFile{{Cert: dir}}, "not a regular file"},
	} {
		if _, err := NewCertStore(nil, tt.files, TLSOptions{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.files, err, tt.want)
		}
	}
}

// TestCertStoreReload: a reload changes the certificate of new handshakes; an established
// connection goes on working; a reload that fails keeps the old set.
func TestCertStoreReload(t *testing.T) {
	dir := t.TempDir()
	a := writeL7Cert(t, dir, "a.pem", nil, "a.test", "old.test")
	store, err := NewCertStore(zaptest.NewLogger(t), []CertFile{{Cert: a}}, TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServe(t, store)
	old := dialName(t, addr, "a.test", nil)
	defer old.Close()
	oldSerial := old.ConnectionState().PeerCertificates[0].SerialNumber

	a2 := writeL7Cert(t, dir, "a2.pem", nil, "a.test", "new.test")
	if err := store.Reload([]CertFile{{Cert: a2}}); err != nil {
		t.Fatal(err)
	}
	c := dialName(t, addr, "a.test", nil)
	if c.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(oldSerial) == 0 {
		t.Error("new handshake got the old certificate")
	}
	c.Close()
	if _, err := old.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(old, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("established connection after reload: %q %v", buf, err)
	}
	if err := store.Reload([]CertFile{{Cert: filepath.Join(dir, "missing.pem")}}); err == nil {
		t.Fatal("reload of a missing file succeeded")
	}
	if got := store.Certificates()[0].Names; len(got) != 2 || got[1] != "new.test" {
		t.Errorf("after a failed reload: %v", got)
	}
}

func TestCertStoreOCSPStaple(t *testing.T) {
	dir := t.TempDir()
	staple := []byte("\x30\x03\x0a\x01\x00 a DER OCSP response")
	a := writeL7Cert(t, dir, "a.pem", pem.EncodeToMemory(&pem.Block{Type: "OCSP RESPONSE", Bytes: staple}), "a.test")
	store, err := NewCertStore(nil, []CertFile{{Cert: a}}, TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := dialName(t, tlsServe(t, store), "a.test", nil)
	defer c.Close()
	if got := c.ConnectionState().OCSPResponse; !bytes.Equal(got, staple) {
		t.Errorf("stapled %q, want %q", got, staple)
	}
	if !store.Certificates()[0].Stapled {
		t.Error("CertInfo.Stapled false")
	}
}

// TestCertStoreTicketRotation: a ticket resumes across TicketKeys-1 rotations, not after
// TicketKeys; Run rotates on its timer.
func TestCertStoreTicketRotation(t *testing.T) {
	dir := t.TempDir()
	store, err := NewCertStore(nil, []CertFile{{Cert: writeL7Cert(t, dir, "a.pem", nil, "a.test")}}, TLSOptions{TicketKeys: 2})
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServe(t, store)
	resumes := func(cache tls.ClientSessionCache) bool {
		c := dialName(t, addr, "a.test", cache)
		defer c.Close()
		// TLS 1.3 tickets come after the handshake: a round trip makes the client read them.
		c.Write([]byte("x"))
		io.ReadFull(c, make([]byte, 1))
		return c.ConnectionState().DidResume
	}
	cache := tls.NewLRUClientSessionCache(4)
	if resumes(cache) {
		t.Fatal("first handshake resumed")
	}
	if !resumes(cache) {
		t.Fatal("second handshake did not resume")
	}
	fresh := tls.NewLRUClientSessionCache(4)
	resumes(fresh)
	store.RotateTicketKeys() // the ticket's key is now the previous one: still accepted
	if !resumes(fresh) {
		t.Error("no resumption one rotation later")
	}
	fresh = tls.NewLRUClientSessionCache(4)
	resumes(fresh)
	store.RotateTicketKeys()
	store.RotateTicketKeys() // gone
	if resumes(fresh) {
		t.Error("resumed with a ticket whose key was rotated out")
	}

	synctest.Test(t, func(t *testing.T) {
		s, err := NewCertStore(nil, []CertFile{{Cert: filepath.Join(dir, "a.pem")}}, TLSOptions{TicketRotation: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		start := s.rotations.Load()
		<-time.After(3*time.Hour + time.Minute) // fake time inside the bubble
		synctest.Wait()
		if got := s.rotations.Load() - start; got != 3 {
			t.Errorf("%d rotations in 3h, want 3", got)
		}
		if len(s.keys) != DefaultTicketKeys {
			t.Errorf("%d keys kept", len(s.keys))
		}
		cancel()
		<-done
	})
}

// TestHandshakeBadClients: garbage fails at once; a stalled ClientHello fails at the deadline,
// measured on the bubble's fake clock.
func TestHandshakeBadClients(t *testing.T) {
	dir := t.TempDir()
	store, err := NewCertStore(nil, []CertFile{{Cert: writeL7Cert(t, dir, "a.pem", nil, "a.test")}}, TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		go func() { cli.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); io.Copy(io.Discard, cli) }()
		start := time.Now()
		_, err := Handshake(t.Context(), srv, store.Config(), 5*time.Second)
		if err == nil || time.Since(start) != 0 {
			t.Errorf("garbage: err %v after %v", err, time.Since(start))
		}
		srv.Close()
	})
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		// A record header and the start of a ClientHello, then nothing.
		go func() { cli.Write([]byte{0x16, 0x03, 0x01, 0x00, 0xf0, 0x01, 0x00}); io.Copy(io.Discard, cli) }()
		start := time.Now()
		_, err := Handshake(t.Context(), srv, store.Config(), 5*time.Second)
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) != 5*time.Second {
			t.Errorf("stalled hello: err %v after %v, want a deadline error after 5s", err, time.Since(start))
		}
		srv.Close()
	})
}

// TestCertStoreConcurrentReload: handshakes, reloads and ticket rotations at once (run with
// -race): every handshake gets a certificate, none fails.
func TestCertStoreConcurrentReload(t *testing.T) {
	dir := t.TempDir()
	files := [][]CertFile{
		{{Cert: writeL7Cert(t, dir, "a1.pem", nil, "a.test")}},
		{{Cert: writeL7Cert(t, dir, "a2.pem", nil, "a.test")}, {Cert: writeL7Cert(t, dir, "b.pem", nil, "b.test")}},
	}
	store, err := NewCertStore(nil, files[0], TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServe(t, store)
	stop := make(chan struct{})
	var reloader, dialers sync.WaitGroup
	reloader.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := store.Reload(files[i%2]); err != nil {
				t.Error(err)
				return
			}
			if err := store.RotateTicketKeys(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 4 {
		dialers.Go(func() {
			for range 20 {
				c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.test", InsecureSkipVerify: true})
				if err != nil {
					t.Error(err)
					return
				}
				if got := peerName(c); got != "a.test" {
					t.Errorf("got %q", got)
				}
				c.Close()
			}
		})
	}
	for range 200 {
		if c, err := store.GetCertificate(&tls.ClientHelloInfo{ServerName: "b.test"}); err != nil || c == nil {
			t.Fatal(err)
		}
	}
	dialers.Wait()
	close(stop)
	reloader.Wait()
}
