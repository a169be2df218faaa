package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "halb test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"*.example.com", "www.example.org"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsBackend answers each TLS connection with its name and the ALPN protocol.
func tlsBackend(t *testing.T, cert tls.Certificate, name string) net.Addr {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	acceptLoop(t, ln, func(c net.Conn) {
		defer c.Close()
		tc := c.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if tc.Handshake() != nil {
			return
		}
		io.WriteString(tc, name+" "+tc.ConnectionState().NegotiatedProtocol)
	})
	return ln.Addr()
}

func TestTLSSNIRouting(t *testing.T) {
	cert := selfSigned(t)
	exact := pool(tlsBackend(t, cert, "exact"))
	wild := pool(tlsBackend(t, cert, "wild"))
	def := pool(tlsBackend(t, cert, "default"))
	routes := []SNIRoute{{Names: []string{"api.example.com"}, Pool: exact}, {Names: []string{"*.example.com"}, Pool: wild}}
	s := startServer(t, Global{},
		ServiceSpec{Name: "tls", Listen: lo4, Mode: ModeTLS, Pool: def, SNI: routes},
		ServiceSpec{Name: "nodefault", Listen: lo4, Mode: ModeTLS, SNI: routes},
	)
	for sni, want := range map[string]string{
		"api.example.com": "exact h2", "API.Example.com": "exact h2", "www.example.com": "wild h2",
		"a.b.example.com": "default h2", "example.com": "default h2", "": "default h2",
	} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr("tls").String(),
			&tls.Config{ServerName: sni, NextProtos: []string{"h2"}, InsecureSkipVerify: true}) //nolint:gosec // self-signed test backend
		if err != nil {
			t.Fatalf("%q: %v", sni, err)
		}
		got, _ := io.ReadAll(c)
		if c.ConnectionState().NegotiatedProtocol != "h2" || string(got) != want {
			t.Errorf("%q: got %q alpn %q, want %q", sni, got, c.ConnectionState().NegotiatedProtocol, want)
		}
		c.Close()
	}
	// No route and no default pool: the connection is closed without a byte.
	c := dial(t, s.Addr("nodefault"))
	tc := tls.Client(c, &tls.Config{ServerName: "other.org", InsecureSkipVerify: true}) //nolint:gosec // test
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake succeeded without a route")
	}
	// Not TLS at all: closed.
	c = dial(t, s.Addr("tls"))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if n, _ := io.Copy(io.Discard, c); n != 0 {
		t.Fatalf("got %d bytes for a non-TLS client", n)
	}
	// Truncated hello then EOF: closed.
	c = dial(t, s.Addr("tls"))
	hello := clientHello(t, "api.example.com")
	c.Write(hello[:len(hello)/2])
	c.CloseWrite()
	if n, _ := io.Copy(io.Discard, c); n != 0 {
		t.Fatalf("got %d bytes for a truncated hello", n)
	}
	var st ServiceStats
	for _, x := range s.Stats() {
		if x.Name == "tls" {
			st = x
		}
	}
	if st.Errors < 2 || len(st.Backends) != 3 { // client resets during teardown may add more
		t.Fatalf("stats: %+v", st)
	}
}
