// Package testkit holds the test fixtures that several packages' tests share:
// self-signed certificates and loopback UDP responders.
package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// SelfSigned returns a self-signed ECDSA P-256 server certificate for names
// (the first is its subject), valid from an hour ago until notAfter, and its
// PKCS#8 key, both PEM-encoded.
func SelfSigned(tb testing.TB, notAfter time.Time, names ...string) (cert, key []byte) {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// UDPServer answers every datagram sent to it on 127.0.0.1 with the
// datagrams reply returns for it (none: no answer), until stop is called or
// the test ends.
func UDPServer(tb testing.TB, reply func(query []byte) [][]byte) (addr netip.AddrPort, stop func()) {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, r := range reply(append([]byte(nil), buf[:n]...)) {
				_, _ = pc.WriteTo(r, from)
			}
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { pc.Close(); wg.Wait() }) }
	tb.Cleanup(stop)
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), stop
}

// UDPEcho is a UDPServer that answers every datagram with "NAME:" and the
// datagram.
func UDPEcho(tb testing.TB, name string) (addr netip.AddrPort, stop func()) {
	tb.Helper()
	return UDPServer(tb, func(q []byte) [][]byte { return [][]byte{append([]byte(name+":"), q...)} })
}
