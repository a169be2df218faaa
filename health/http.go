package health

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// DefaultMaxBody bounds the body read for a digest check.
const DefaultMaxBody = 1 << 20

// maxHeaderBytes bounds a response's status line and headers.
const maxHeaderBytes = 64 << 10

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// URL is one `url { }` block of HTTP_GET / SSL_GET.
type URL struct {
	// Path is the request target, query included ("/health?full=1").
	Path string
	// Digest, when set, is the hex MD5 of the body (keepalived's genhash).
	Digest string
	// Status lists the passing status codes; empty means 200-299.
	Status []StatusRange
	// VirtualHost overrides the checker's VirtualHost for this URL.
	VirtualHost string
}

// HTTPChecker is keepalived's HTTP_GET, and SSL_GET when TLS is set.
//
// Each URL is fetched in turn on a new connection, within the attempt's
// deadline: a raw HTTP/1.1 GET with "Connection: close" (keepalived sends a
// raw HTTP/1.0 request), the response read by net/http's ReadResponse.
// Redirects are not followed: a 301 is judged by its status code. The
// virtual host is the Host header and, with TLS, the SNI name.
//
// TLS: certificates are not verified (keepalived's default) unless Verify
// or CAFile is set; then the chain is verified against CAFile (PEM) or the
// system roots, and the name against the virtual host or, without one, the
// address.
//
// The body is read only for a digest check, up to MaxBody bytes (default
// 1 MiB); a longer body fails with "body too large". Without a digest the
// body is not read: the status decides.
type HTTPChecker struct {
	TLS         bool
	Addr        netip.AddrPort
	BindTo      netip.AddrPort
	VirtualHost string
	URLs        []URL
	Verify      bool
	CAFile      string
	MaxBody     int64
	UserAgent   string
	// ConnectTimeout is this checker's connect_timeout (the whole attempt);
	// zero: the target's.
	ConnectTimeout time.Duration
}

// OwnConnectTimeout implements connectTimeouter.
func (c *HTTPChecker) OwnConnectTimeout() time.Duration { return c.ConnectTimeout }

// Check implements Checker.
func (c *HTTPChecker) Check(ctx context.Context) Result {
	start := time.Now()
	urls := c.URLs
	if len(urls) == 0 {
		urls = []URL{{Path: "/"}}
	}
	var tlsConf *tls.Config
	if c.TLS {
		// Built per check: the CA file is small, and a renewed one is
		// picked up without a reload.
		var err error
		if tlsConf, err = c.tlsConfig(); err != nil {
			return fail(start, err.Error())
		}
	}
	for i := range urls {
		if reason := c.get(ctx, start, &urls[i], tlsConf); reason != "" {
			return fail(start, reason)
		}
	}
	return pass(start)
}

func (c *HTTPChecker) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: !c.Verify && c.CAFile == ""} //nolint:gosec // keepalived's default, documented
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS: load CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS: load CA: no PEM certificate in %s", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func (c *HTTPChecker) get(ctx context.Context, start time.Time, u *URL, tlsConf *tls.Config) string {
	budget := ctxTimeout(ctx, start)
	if bad := strings.IndexFunc(u.Path, func(r rune) bool { return r <= ' ' || r == 0x7f }); bad >= 0 || u.Path == "" {
		return fmt.Sprintf("invalid url path %q", u.Path)
	}
	conn, err := dial(ctx, c.Addr, c.BindTo)
	if err != nil {
		return netReason("connect", err, budget)
	}
	defer conn.Close()
	defer deadlineFromContext(ctx, conn)()

	host := u.VirtualHost
	if host == "" {
		host = c.VirtualHost
	}
	var rw net.Conn = conn
	if c.TLS {
		cfg := tlsConf.Clone()
		switch {
		case host != "":
			cfg.ServerName = hostOnly(host)
		case !cfg.InsecureSkipVerify:
			cfg.ServerName = c.Addr.Addr().Unmap().String()
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return tlsReason(err, budget)
		}
		rw = tc
	}
	if host == "" {
		host = c.Addr.String()
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "halb-health"
	}
	req := "GET " + u.Path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: " + ua +
		"\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(rw, req); err != nil {
		return netReason("write request", err, budget)
	}
	maxBody := c.MaxBody
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	return judgeResponse(rw, u, maxBody, budget)
}

// hostOnly strips a port from a virtual host ("www.example.com:8443").
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// limitReader returns errHeaderTooLarge once n bytes were read; n < 0 means
// no limit.
type limitReader struct {
	r        io.Reader
	n        int64
	exceeded bool
	eof      bool
}

var errHeaderTooLarge = errors.New("response header too large")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		l.exceeded = true
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if err == io.EOF {
		l.eof = true
	}
	return n, err
}

// judgeResponse reads one HTTP response from r and judges it against u:
// the untrusted-bytes parser of this package (see FuzzJudgeResponse).
func judgeResponse(r io.Reader, u *URL, maxBody int64, budget time.Duration) string {
	lr := &limitReader{r: r, n: maxHeaderBytes}
	br := bufio.NewReaderSize(lr, 4096)
	first, err := br.Peek(2)
	if err != nil && len(first) == 0 {
		if errors.Is(err, io.EOF) {
			return "read response: connection closed before response"
		}
		return netReason("read response", err, budget)
	}
	if len(first) == 2 && (first[0] == 0x15 || first[0] == 0x16) && first[1] == 0x03 {
		return "bad response: server answered with TLS (an SSL_GET port?)"
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		switch {
		case lr.exceeded:
			return fmt.Sprintf("bad response: header larger than %d bytes", maxHeaderBytes)
		case lr.eof, errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return "read response: connection closed mid-header"
		case isTimeout(err):
			return fmt.Sprintf("timeout after %s (read response)", budget)
		}
		var ne net.Error
		if errors.As(err, &ne) {
			return netReason("read response", err, budget)
		}
		return "bad response: " + clip(err.Error(), 100)
	}
	defer resp.Body.Close()
	lr.n = -1
	if !statusOK(resp.StatusCode, u.Status) {
		return fmt.Sprintf("status %d (GET %s)", resp.StatusCode, clip(u.Path, 60))
	}
	if u.Digest == "" {
		return ""
	}
	h := md5.New()
	n, err := io.Copy(h, io.LimitReader(resp.Body, maxBody+1))
	if n > maxBody {
		return fmt.Sprintf("body too large (over %d bytes, GET %s)", maxBody, clip(u.Path, 60))
	}
	if err != nil {
		return netReason("read body", err, budget)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if !strings.EqualFold(got, strings.TrimSpace(u.Digest)) {
		return fmt.Sprintf("digest mismatch (GET %s: got %s, want %s)", clip(u.Path, 60), got, clip(u.Digest, 40))
	}
	return ""
}

func statusOK(code int, want []StatusRange) bool {
	if len(want) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range want {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// clip shortens s to n bytes and replaces what is not printable ASCII, for
// reasons.
func clip(s string, n int) string {
	cut := len(s) > n
	if cut {
		s = s[:n]
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
	if cut {
		s += "..."
	}
	return s
}

func (c *HTTPChecker) String() string {
	kind := "HTTP_GET"
	if c.TLS {
		kind = "SSL_GET"
	}
	var b strings.Builder
	b.WriteString(kind + " " + c.Addr.String())
	if c.VirtualHost != "" {
		b.WriteString(" host " + c.VirtualHost)
	}
	for _, u := range c.URLs {
		b.WriteString(" " + u.Path)
	}
	return b.String()
}

func (c *HTTPChecker) sameConfig(o Checker) bool {
	oc, ok := o.(*HTTPChecker)
	if !ok {
		return false
	}
	if c.TLS != oc.TLS || c.Addr != oc.Addr || c.BindTo != oc.BindTo || c.VirtualHost != oc.VirtualHost ||
		c.Verify != oc.Verify || c.CAFile != oc.CAFile || c.MaxBody != oc.MaxBody || c.UserAgent != oc.UserAgent ||
		c.ConnectTimeout != oc.ConnectTimeout {
		return false
	}
	return slices.EqualFunc(c.URLs, oc.URLs, func(a, b URL) bool {
		return a.Path == b.Path && a.Digest == b.Digest && a.VirtualHost == b.VirtualHost && slices.Equal(a.Status, b.Status)
	})
}
