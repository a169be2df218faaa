package health

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const okResp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

// md5("hello")
const helloMD5 = "5d41402abc4b2a76b9719d911017c592"

func respond(resp string) func(net.Conn) {
	return func(c net.Conn) {
		readRequest(c)
		_, _ = io.WriteString(c, resp)
	}
}

func TestHTTPVerdicts(t *testing.T) {
	fdBefore := countFDs(t)
	bigBody := func(c net.Conn) {
		readRequest(c)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
		chunk := make([]byte, 64<<10)
		for range 100 << 4 { // 100 MB
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}
	cases := []struct {
		name    string
		handle  func(net.Conn)
		addr    func() string
		url     URL
		timeout time.Duration
		want    string // "" = pass; else substring of the reason
	}{
		{name: "ok", handle: respond(okResp), url: URL{Path: "/"}},
		{name: "digest ok", handle: respond(okResp), url: URL{Path: "/", Digest: helloMD5}},
		{name: "digest uppercase", handle: respond(okResp), url: URL{Path: "/", Digest: strings.ToUpper(helloMD5)}},
		{name: "digest mismatch", handle: respond(okResp), url: URL{Path: "/i", Digest: "00000000000000000000000000000000"}, want: "digest mismatch (GET /i: got " + helloMD5},
		{name: "chunked digest", handle: respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"), url: URL{Path: "/", Digest: helloMD5}},
		{name: "503", handle: respond("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"), url: URL{Path: "/health"}, want: "status 503 (GET /health)"},
		{name: "301 judged by status", handle: respond("HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n"), url: URL{Path: "/"}, want: "status 301"},
		{name: "301 allowed", handle: respond("HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\n\r\n"), url: URL{Path: "/", Status: []StatusRange{{301, 302}}}},
		{name: "status list", handle: respond("HTTP/1.0 404 Not Found\r\n\r\n"), url: URL{Path: "/", Status: []StatusRange{{200, 200}, {404, 404}}}},
		{name: "never answers", handle: func(c net.Conn) { readRequest(c); waitClose(c) }, url: URL{Path: "/"}, timeout: 300 * time.Millisecond, want: "timeout after 300ms (read response)"},
		{name: "garbage", handle: respond("SSH-2.0-OpenSSH_9.6\r\n\r\n"), url: URL{Path: "/"}, want: "bad response: malformed HTTP"},
		{name: "closes at once", handle: func(c net.Conn) { readRequest(c) }, url: URL{Path: "/"}, want: "connection closed before response"},
		{name: "closes mid-header", handle: respond("HTTP/1.1 200 OK\r\nContent-Le"), url: URL{Path: "/"}, want: "connection closed mid-header"},
		{name: "closes mid-body", handle: respond("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhel"), url: URL{Path: "/", Digest: helloMD5}, want: "read body: connection closed mid-message"},
		{name: "huge header", handle: func(c net.Conn) {
			readRequest(c)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX: ")
			_, _ = c.Write([]byte(strings.Repeat("a", 200<<10)))
		}, url: URL{Path: "/"}, want: "header larger than"},
		{name: "100MB body, digest", handle: bigBody, url: URL{Path: "/big", Digest: helloMD5}, want: "body too large (over 1048576 bytes, GET /big)"},
		{name: "100MB body, no digest", handle: bigBody, url: URL{Path: "/big"}},
		{name: "TLS alert on HTTP_GET", handle: func(c net.Conn) { readRequest(c); _, _ = c.Write([]byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28}) }, url: URL{Path: "/"}, want: "server answered with TLS"},
		{name: "refused", addr: func() string { return closedPort(t).String() }, url: URL{Path: "/"}, want: "connection refused"},
		{name: "bad path", handle: respond(okResp), url: URL{Path: "/a b\r\nX: y"}, want: "invalid url path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &HTTPChecker{URLs: []URL{tc.url}}
			if tc.addr != nil {
				c.Addr = mustAddrPort(t, tc.addr())
			} else {
				c.Addr = newRawServer(t, tc.handle).addr()
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			r := checkWithin(t, c, timeout) // fails past timeout + 2s: nothing hangs
			if tc.want == "" {
				if !r.OK {
					t.Fatalf("want pass, got %q", r.Reason)
				}
				return
			}
			if r.OK || !strings.Contains(r.Reason, tc.want) {
				t.Fatalf("got ok=%v reason %q, want failure containing %q", r.OK, r.Reason, tc.want)
			}
		})
	}
	if after := countFDs(t); after > fdBefore {
		t.Errorf("descriptor leak: %d before, %d after", fdBefore, after)
	}
}

func TestHTTPHostHeaderAndURLs(t *testing.T) {
	var hosts []string
	reqs := make(chan string, 4)
	s := newRawServer(t, func(c net.Conn) {
		reqs <- readRequest(c)
		_, _ = io.WriteString(c, okResp)
	})
	c := &HTTPChecker{Addr: s.addr(), VirtualHost: "www.halb.test", URLs: []URL{{Path: "/a?x=1"}, {Path: "/b", VirtualHost: "other.halb.test"}}}
	if r := checkWithin(t, c, 5*time.Second); !r.OK {
		t.Fatalf("check failed: %s", r.Reason)
	}
	for range 2 {
		req := <-reqs
		line, _, _ := strings.Cut(req, "\r\n")
		for _, h := range strings.Split(req, "\r\n") {
			if strings.HasPrefix(h, "Host: ") {
				hosts = append(hosts, line+" "+h)
			}
		}
	}
	want := []string{"GET /a?x=1 HTTP/1.1 Host: www.halb.test", "GET /b HTTP/1.1 Host: other.halb.test"}
	if strings.Join(hosts, "|") != strings.Join(want, "|") {
		t.Fatalf("requests %q, want %q", hosts, want)
	}
}

func TestSSLGet(t *testing.T) {
	fdBefore := countFDs(t)
	ca := newCA(t)
	otherCA := newCA(t)
	now := time.Now()
	good := leaf(t, ca, []string{"www.halb.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	expired := leaf(t, ca, []string{"www.halb.test"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	selfSigned := leaf(t, nil, []string{"www.halb.test"}, now.Add(-time.Hour), now.Add(time.Hour))

	cases := []struct {
		name   string
		cert   tls.Certificate
		check  HTTPChecker
		want   string
		wanSNI string
	}{
		{name: "self-signed, no verify (keepalived default)", cert: selfSigned, check: HTTPChecker{VirtualHost: "www.halb.test"}, wanSNI: "www.halb.test"},
		{name: "expired, no verify", cert: expired, check: HTTPChecker{}},
		{name: "verified", cert: good, check: HTTPChecker{VirtualHost: "www.halb.test", CAFile: ca.file}},
		{name: "verified by IP", cert: good, check: HTTPChecker{CAFile: ca.file}},
		{name: "expired", cert: expired, check: HTTPChecker{VirtualHost: "www.halb.test", CAFile: ca.file}, want: "TLS: certificate expired"},
		{name: "unknown authority", cert: good, check: HTTPChecker{VirtualHost: "www.halb.test", CAFile: otherCA.file}, want: "TLS: unknown authority"},
		{name: "self-signed verified", cert: selfSigned, check: HTTPChecker{VirtualHost: "www.halb.test", CAFile: ca.file}, want: "TLS: unknown authority"},
		{name: "name mismatch", cert: good, check: HTTPChecker{VirtualHost: "api.halb.test", CAFile: ca.file}, want: "TLS: name mismatch"},
		{name: "missing CA file", cert: good, check: HTTPChecker{CAFile: "/nonexistent/ca.pem"}, want: "TLS: load CA"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, sni := tlsServer(t, tc.cert, okResp)
			c := tc.check
			c.TLS, c.Addr, c.URLs = true, s.addr(), []URL{{Path: "/", Digest: helloMD5}}
			r := checkWithin(t, &c, 5*time.Second)
			if tc.want == "" && !r.OK {
				t.Fatalf("want pass, got %q", r.Reason)
			}
			if tc.want != "" && (r.OK || !strings.Contains(r.Reason, tc.want)) {
				t.Fatalf("got ok=%v %q, want %q", r.OK, r.Reason, tc.want)
			}
			if tc.wanSNI != "" && sni.last() != tc.wanSNI {
				t.Fatalf("SNI %q, want %q", sni.last(), tc.wanSNI)
			}
		})
	}
	t.Run("TLS server that never answers the handshake", func(t *testing.T) {
		s := newRawServer(t, waitClose)
		r := checkWithin(t, &HTTPChecker{TLS: true, Addr: s.addr()}, 300*time.Millisecond)
		if r.OK || r.Reason != "TLS: handshake timeout after 300ms" {
			t.Fatalf("got %+v", r)
		}
	})
	t.Run("plain HTTP server on SSL_GET", func(t *testing.T) {
		s := newRawServer(t, func(c net.Conn) {
			_, _ = c.Read(make([]byte, 512))
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
		})
		r := checkWithin(t, &HTTPChecker{TLS: true, Addr: s.addr()}, 5*time.Second)
		if r.OK || !strings.Contains(r.Reason, "TLS: handshake failure") {
			t.Fatalf("got %+v", r)
		}
	})
	t.Run("TLS server on HTTP_GET", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		defer srv.Close()
		r := checkWithin(t, &HTTPChecker{Addr: mustAddrPort(t, srv.Listener.Addr().String())}, 5*time.Second)
		if r.OK || !strings.Contains(r.Reason, "status 400") {
			t.Fatalf("got %+v", r)
		}
	})
	if after := countFDs(t); after > fdBefore {
		t.Errorf("descriptor leak: %d before, %d after", fdBefore, after)
	}
}

func TestTCPCheck(t *testing.T) {
	srcs := make(chan string, 1)
	s := newRawServer(t, func(c net.Conn) { srcs <- c.RemoteAddr().(*net.TCPAddr).IP.String() })
	if r := checkWithin(t, &TCPChecker{Addr: s.addr()}, time.Second); !r.OK {
		t.Fatalf("open port: %q", r.Reason)
	}
	<-srcs
	r := checkWithin(t, &TCPChecker{Addr: s.addr(), BindTo: mustAddrPort(t, "127.0.0.2:0")}, time.Second)
	if !r.OK {
		t.Fatalf("bindto: %q", r.Reason)
	}
	if src := <-srcs; src != "127.0.0.2" {
		t.Fatalf("bindto ignored: source %s", src)
	}
	if r := checkWithin(t, &TCPChecker{Addr: closedPort(t)}, time.Second); r.OK || r.Reason != "connection refused" {
		t.Fatalf("closed port: %+v", r)
	}
	if r := checkWithin(t, &TCPChecker{}, time.Second); r.OK || r.Reason != "connect: no address configured" {
		t.Fatalf("no address: %+v", r)
	}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		if r := checkWithin(t, &TCPChecker{Addr: ln.Addr().(*net.TCPAddr).AddrPort()}, time.Second); !r.OK {
			t.Fatalf("IPv6 loopback: %q", r.Reason)
		}
	}
}
