package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// TLS termination: a CertStore holds a service's certificates and its one *tls.Config.
//
//   - Certificates come from PEM files: the chain and the private key in one file, or in two
//     (CertFile). A PEM may also carry one block of type "OCSP RESPONSE" whose bytes are a DER
//     OCSP response (as `openssl ocsp -respout` writes, PEM-wrapped): it is stapled to every
//     handshake that uses the certificate. halb does not fetch or refresh staples; a reload
//     picks up a renewed file.
//   - SNI: the certificate whose DNS names (the leaf's SANs; its CN when it has none) contain the
//     client's server name exactly, else one whose "*.suffix" name matches the name's first label
//     away, else the first certificate (the default, also for clients sending no SNI).
//   - Reload swaps the whole set in one atomic pointer store: handshakes in flight and
//     established connections keep what they have, new handshakes see the new set, and a set
//     that fails to load leaves the old one serving.
//   - Session tickets: the store sets the ticket keys itself (tls.Config.SetSessionTicketKeys)
//     and rotates them on its own timer (Run): a new key every TicketRotation, the previous
//     TicketKeys-1 still accepted, so a ticket lives at most TicketKeys rotations.
//   - TLS 1.2 is the minimum unless TLS 1.3 is asked for.

// CertFile names a certificate's PEM files: Key empty means the key is in Cert.
type CertFile struct {
	Cert, Key string
}

// TLSOptions are a CertStore's settings; zero fields take the defaults below.
type TLSOptions struct {
	MinVersion     uint16        // tls.VersionTLS12 (default) or tls.VersionTLS13
	ALPN           []string      // protocols offered, in preference order; default http/1.1
	TicketRotation time.Duration // default DefaultTicketRotation
	TicketKeys     int           // keys kept, the newest encrypting; default DefaultTicketKeys
}

// TLS defaults.
const (
	DefaultTicketRotation   = time.Hour
	DefaultTicketKeys       = 3
	DefaultHandshakeTimeout = DefaultHTTPRequestTimeout
	maxCertFileSize         = 1 << 20
)

// CertInfo describes one loaded certificate, for the stats page and the expiry metric.
type CertInfo struct {
	File     string
	Names    []string
	NotAfter time.Time
	Stapled  bool // carries an OCSP response
}

// CertStore is a service's certificates and TLS configuration; safe for concurrent use.
type CertStore struct {
	log  *zap.Logger
	opts TLSOptions
	cfg  *tls.Config
	set  atomic.Pointer[certSet]

	mu        sync.Mutex
	keys      [][32]byte // newest first
	rotations atomic.Uint64
}

type certSet struct {
	certs []*tls.Certificate
	infos []CertInfo
	exact map[string]*tls.Certificate
	wild  map[string]*tls.Certificate // "example.com" for "*.example.com"
}

// NewCertStore loads files (the first is the default certificate) and makes the TLS
// configuration. It sets a first session ticket key; Run rotates them.
func NewCertStore(log *zap.Logger, files []CertFile, o TLSOptions) (*CertStore, error) {
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
	if o.MinVersion != tls.VersionTLS12 && o.MinVersion != tls.VersionTLS13 {
		return nil, fmt.Errorf("proxy: tls: minimum version %#x is not TLS 1.2 or 1.3", o.MinVersion)
	}
	if len(o.ALPN) == 0 {
		o.ALPN = []string{"http/1.1"}
	}
	if o.TicketRotation <= 0 {
		o.TicketRotation = DefaultTicketRotation
	}
	if o.TicketKeys <= 0 {
		o.TicketKeys = DefaultTicketKeys
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &CertStore{log: log.Named("tls"), opts: o}
	set, err := loadCertSet(files)
	if err != nil {
		return nil, err
	}
	s.set.Store(set)
	s.cfg = &tls.Config{
		MinVersion:     o.MinVersion,
		NextProtos:     o.ALPN,
		GetCertificate: s.GetCertificate,
	}
	if err := s.RotateTicketKeys(); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns the store's TLS configuration. Use it as is: a Clone would not see later
// ticket key rotations.
func (s *CertStore) Config() *tls.Config { return s.cfg }

// Reload loads files and swaps them in; on error the current certificates stay.
func (s *CertStore) Reload(files []CertFile) error {
	set, err := loadCertSet(files)
	if err != nil {
		return err
	}
	s.set.Store(set)
	s.log.Info("certificates reloaded", zap.Int("certificates", len(set.certs)))
	return nil
}

// Certificates describes the loaded certificates, the default first.
func (s *CertStore) Certificates() []CertInfo { return s.set.Load().infos }

// GetCertificate implements tls.Config.GetCertificate: SNI selection as described above.
func (s *CertStore) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := s.set.Load()
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if name != "" {
		if c, ok := set.exact[name]; ok {
			return c, nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if c, ok := set.wild[name[i+1:]]; ok {
				return c, nil
			}
		}
	}
	return set.certs[0], nil
}

// RotateTicketKeys makes a new session ticket key the one that encrypts, keeping the previous
// ones (up to TicketKeys in all) to decrypt tickets already given out.
func (s *CertStore) RotateTicketKeys() error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("proxy: tls: ticket key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append([][32]byte{k}, s.keys...)
	if len(s.keys) > s.opts.TicketKeys {
		s.keys = s.keys[:s.opts.TicketKeys]
	}
	s.cfg.SetSessionTicketKeys(s.keys)
	s.rotations.Add(1)
	return nil
}

// Run rotates the session ticket keys every TicketRotation until ctx ends.
func (s *CertStore) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.TicketRotation)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.RotateTicketKeys(); err != nil {
				s.log.Warn("session ticket key rotation failed", zap.Error(err))
			}
		}
	}
}

// loadCertSet reads and indexes certificates; the first is the default.
func loadCertSet(files []CertFile) (*certSet, error) {
	if len(files) == 0 {
		return nil, errors.New("proxy: tls: no certificate")
	}
	set := &certSet{exact: map[string]*tls.Certificate{}, wild: map[string]*tls.Certificate{}}
	for _, f := range files {
		c, info, err := loadCert(f)
		if err != nil {
			return nil, err
		}
		set.certs = append(set.certs, c)
		set.infos = append(set.infos, info)
		for _, n := range info.Names {
			n = strings.TrimSuffix(strings.ToLower(n), ".")
			m, key := set.exact, n
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				m, key = set.wild, rest
			}
			if _, dup := m[key]; !dup { // the first certificate naming it wins
				m[key] = c
			}
		}
	}
	return set, nil
}

func readPEM(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("proxy: tls: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxCertFileSize {
		return nil, fmt.Errorf("proxy: tls: %s: not a regular file of at most 1 MiB", name)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("proxy: tls: %w", err)
	}
	return b, nil
}

// loadCert loads one certificate with its key and optional OCSP staple.
func loadCert(f CertFile) (*tls.Certificate, CertInfo, error) {
	certPEM, err := readPEM(f.Cert)
	if err != nil {
		return nil, CertInfo{}, err
	}
	keyPEM := certPEM
	if f.Key != "" {
		if keyPEM, err = readPEM(f.Key); err != nil {
			return nil, CertInfo{}, err
		}
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, CertInfo{}, fmt.Errorf("proxy: tls: %s: %w", f.Cert, err)
	}
	if c.Leaf == nil {
		return nil, CertInfo{}, fmt.Errorf("proxy: tls: %s: no parsed leaf certificate", f.Cert)
	}
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "OCSP RESPONSE" {
			c.OCSPStaple = b.Bytes
		}
	}
	info := CertInfo{File: f.Cert, Names: c.Leaf.DNSNames, NotAfter: c.Leaf.NotAfter, Stapled: c.OCSPStaple != nil}
	if len(info.Names) == 0 && c.Leaf.Subject.CommonName != "" {
		info.Names = []string{c.Leaf.Subject.CommonName}
	}
	return &c, info, nil
}

// Handshake runs the server side of a TLS handshake on c within timeout (DefaultHandshakeTimeout
// when zero): a client that sends garbage fails at once, one that stalls in its ClientHello
// fails at the deadline. The deadline is cleared on success; on failure the caller closes c.
func Handshake(ctx context.Context, c net.Conn, cfg *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("proxy: tls handshake: %w", err)
	}
	tc := tls.Server(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("proxy: tls handshake: %w", err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("proxy: tls handshake: %w", err)
	}
	return tc, nil
}
