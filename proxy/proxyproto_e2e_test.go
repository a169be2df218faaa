package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"halb/proxy/balance"
)

// ppBackend reads a PROXY header on each connection, answers
// "v<version> <src> <dst>\n" and then echoes.
func ppBackend(t *testing.T) net.Addr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptLoop(t, ln, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var buf []byte
		tmp := make([]byte, 512)
		for {
			n, err := c.Read(tmp)
			buf = append(buf, tmp[:n]...)
			h, hn, perr := ParseProxyHeader(buf)
			if perr == nil {
				fmt.Fprintf(c, "v%d %v %v\n", h.Version, h.Src, h.Dst)
				c.Write(buf[hn:])
				io.Copy(c, c)
				return
			}
			if !errors.Is(perr, ErrProxyIncomplete) || err != nil {
				fmt.Fprintf(c, "bad %v\n", perr)
				return
			}
		}
	})
	return ln.Addr()
}

func TestSendProxyTCP(t *testing.T) {
	be := ppBackend(t).(*net.TCPAddr).AddrPort()
	override := balance.NewPool(balance.RR, []balance.Member{{Name: "o", Addr: be, Weight: 1, Data: &BackendOpts{SendProxy: ProxyV2}}}, balance.Options{})
	s := startServer(t, Global{},
		ServiceSpec{Name: "v1", Listen: lo4, Mode: ModeTCP, Pool: pool(net.TCPAddrFromAddrPort(be)), SendProxy: ProxyV1},
		ServiceSpec{Name: "v2", Listen: lo4, Mode: ModeTCP, Pool: pool(net.TCPAddrFromAddrPort(be)), SendProxy: ProxyV2},
		ServiceSpec{Name: "override", Listen: lo4, Mode: ModeTCP, Pool: override, SendProxy: ProxyV1},
	)
	for name, ver := range map[string]string{"v1": "v1", "v2": "v2", "override": "v2"} {
		c := dial(t, s.Addr(name))
		io.WriteString(c, "ping\n")
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != ver || f[1] != c.LocalAddr().String() || f[2] != s.Addr(name).String() {
			t.Errorf("%s: backend saw %q; client %v proxy %v", name, line, c.LocalAddr(), s.Addr(name))
		}
		if echo, _ := br.ReadString('\n'); echo != "ping\n" {
			t.Errorf("%s: echo %q", name, echo)
		}
	}
}

func TestAcceptProxy(t *testing.T) {
	be := ppBackend(t)
	var lastXFF atomic.Value
	hb := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { lastXFF.Store(r.Header.Get("X-Forwarded-For")) })
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	s := startServer(t, Global{},
		ServiceSpec{Name: "tcp", Listen: lo4, Mode: ModeTCP, Pool: pool(be), SendProxy: ProxyV1, AcceptProxy: true, TrustedProxies: trusted},
		ServiceSpec{Name: "http", Listen: lo4, Mode: ModeHTTP, Pool: pool(hb.addr()), AcceptProxy: true, TrustedProxies: trusted},
		ServiceSpec{Name: "untrusted", Listen: lo4, Mode: ModeTCP, Pool: pool(be), AcceptProxy: true,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}},
	)
	src, dst := mustAP("198.18.0.7:1234"), mustAP("198.18.0.10:443")
	for _, v := range []ProxyProto{ProxyV1, ProxyV2} {
		c := dial(t, s.Addr("tcp"))
		// Header and payload in one write: the bytes after the header must not be lost.
		c.Write(append(AppendProxyHeader(nil, v, src, dst), "data\n"...))
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		if line != "v1 198.18.0.7:1234 198.18.0.10:443\n" {
			t.Errorf("%v: backend saw %q", v, line)
		}
		if echo, _ := br.ReadString('\n'); echo != "data\n" {
			t.Errorf("%v: echo %q", v, echo)
		}
	}
	// HTTP: the client address from the PROXY header goes into X-Forwarded-For.
	c := dial(t, s.Addr("http"))
	c.Write(append(AppendProxyHeader(nil, ProxyV2, src, dst), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"...))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 || lastXFF.Load() != "198.18.0.7" {
		t.Fatalf("http: %v %v xff=%v", resp, err, lastXFF.Load())
	}
	// An untrusted source, and a missing header: closed without reaching a backend.
	c = dial(t, s.Addr("untrusted"))
	c.Write(AppendProxyHeader(nil, ProxyV1, src, dst))
	if n, _ := io.Copy(io.Discard, c); n != 0 {
		t.Errorf("untrusted: got %d bytes", n)
	}
	c = dial(t, s.Addr("tcp"))
	io.WriteString(c, "GET / HTTP/1.1\r\n\r\n")
	if n, _ := io.Copy(io.Discard, c); n != 0 {
		t.Errorf("no header: got %d bytes", n)
	}
}

// In HTTP mode a send-proxy backend gets its own connection per client
// connection, whose PROXY header names that client.
// proxyHeaderBackend reads a PROXY header at the start of each connection and
// answers every request on it with say(header, parse error).
func proxyHeaderBackend(t *testing.T, say func(ProxyHeader, error) string) net.Addr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptLoop(t, ln, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		h, _, perr := ParseProxyHeader([]byte(line))
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			body := say(h, perr)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	})
	return ln.Addr()
}

func TestSendProxyHTTP(t *testing.T) {
	be := proxyHeaderBackend(t, func(h ProxyHeader, perr error) string { return fmt.Sprintf("%v %v", h.Src, perr) })
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be), SendProxy: ProxyV1})
	for range 2 {
		c := dial(t, s.Addr("h"))
		br := bufio.NewReader(c)
		for range 2 {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != c.LocalAddr().String()+" <nil>" {
				t.Fatalf("backend saw %q, client is %v", body, c.LocalAddr())
			}
		}
	}
}
