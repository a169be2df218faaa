package proxy

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestResponseBodies: bodies of every size around the reader's buffer
// (16 KiB) and the body buffer (64 KiB) reach TLS-terminated HTTP/1.1 and
// HTTP/2 clients, and plaintext HTTP/1.1 ones (spliced), whole and in order, framed by Content-Length or by the
// server's close; a server that closes before its Content-Length is done
// leaves the client with an error, never with a short body taken for whole.
func TestResponseBodies(t *testing.T) {
	addr := serveRequests(t, func(c net.Conn, req *http.Request) bool {
		// /SIZE/MODE
		parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/"), "/")
		size, _ := strconv.ParseInt(parts[0], 10, 64)
		switch parts[1] {
		case "len":
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
			_, err := io.Copy(c, &patternReader{n: size})
			return err == nil
		case "close":
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
			io.Copy(c, &patternReader{n: size})
			return false
		case "short":
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
			io.Copy(c, &patternReader{n: size / 2})
			return false
		}
		return true
	})
	s := startThreeFronts(t, addr)
	sizes := []int64{0, 1, 16<<10 - 1, 16 << 10, 16<<10 + 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 80<<10 + 3, 1<<20 + 7}
	for _, proto := range []string{"plaintext", "HTTP/1.1", "HTTP/2.0"} {
		base, tr := frontFor(s, proto)
		base += "/"
		client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
		for _, mode := range []string{"len", "close", "short"} {
			for _, size := range sizes {
				if mode == "short" && size < 2 {
					continue
				}
				name := fmt.Sprintf("%s/%d/%s", proto, size, mode)
				resp, err := client.Get(base + fmt.Sprintf("%d/%s", size, mode))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if resp.Proto != proto && (proto != "plaintext" || resp.Proto != "HTTP/1.1") {
					t.Fatalf("%s: answered in %s", name, resp.Proto)
				}
				h := sha256.New()
				n, err := io.Copy(h, resp.Body)
				resp.Body.Close()
				if mode == "short" {
					if err == nil {
						t.Errorf("%s: a body cut at %d of %d bytes ended without an error", name, n, size)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: after %d bytes: %v", name, n, err)
				}
				want := sumPattern(size)
				if n != size || string(h.Sum(nil)) != string(want[:]) {
					t.Fatalf("%s: got %d bytes, sha256 %x, want %d bytes, %x", name, n, h.Sum(nil), size, want)
				}
			}
		}
		tr.CloseIdleConnections()
	}
}

// TestResponseHeadFields: the fields of a server's answer reach plaintext,
// TLS HTTP/1.1 and HTTP/2 clients as sent, less the hop-by-hop ones and those
// its Connection field names; 204, 304 and HEAD answers end without a body.
func TestResponseHeadFields(t *testing.T) {
	addr := serveRequests(t, func(c net.Conn, req *http.Request) bool {
		conn := "keep-alive"
		if req.URL.Path == "/listed" {
			conn = "keep-alive, X-Private"
		}
		status := "200 OK"
		body := "ok"
		switch req.URL.Path {
		case "/204":
			status, body = "204 No Content", ""
		case "/304":
			status, body = "304 Not Modified", ""
		}
		cl := fmt.Sprintf("Content-Length: %d\r\n", len(body))
		if body == "" && status != "200 OK" {
			cl = ""
		}
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nServer: test-server\r\nConnection: %s\r\nKeep-Alive: timeout=5\r\n"+
			"X-Private: secret\r\nX-Custom: Mixed Case Value\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n%s\r\n",
			status, conn, cl)
		if req.Method != "HEAD" {
			io.WriteString(c, body)
		}
		return true
	})
	s := startThreeFronts(t, addr)
	for _, proto := range []string{"plaintext", "HTTP/1.1", "HTTP/2.0"} {
		base, tr := frontFor(s, proto)
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for _, c := range []struct {
			method, path string
			status       int
			body         string
			private      bool // X-Private reaches the client
		}{
			{"GET", "/plain", 200, "ok", true},
			{"GET", "/listed", 200, "ok", false},
			{"HEAD", "/plain", 200, "", true},
			{"GET", "/204", 204, "", true},
			{"GET", "/304", 304, "", true},
		} {
			name := proto + " " + c.method + " " + c.path
			req, _ := http.NewRequest(c.method, base+c.path, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != c.status || string(b) != c.body {
				t.Fatalf("%s: %d %q %v, want %d %q", name, resp.StatusCode, b, err, c.status, c.body)
			}
			h := resp.Header
			if h.Get("Server") != "test-server" || h.Get("X-Custom") != "Mixed Case Value" ||
				strings.Join(h.Values("Set-Cookie"), "|") != "a=1|b=2" {
				t.Errorf("%s: fields changed: %v", name, h)
			}
			if h.Get("Keep-Alive") != "" || (h.Get("X-Private") != "") != c.private {
				t.Errorf("%s: hop-by-hop fields: %v", name, h)
			}
			if c.method == "HEAD" && resp.ContentLength != 2 {
				t.Errorf("%s: Content-Length %d, want the server's 2", name, resp.ContentLength)
			}
		}
		tr.CloseIdleConnections()
	}
}

// startThreeFronts serves the server at addr on a TLS-terminating service
// with HTTP/2 ("t") and a plaintext one ("p").
func startThreeFronts(t *testing.T, addr string) *Server {
	t.Helper()
	ba, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	store, err := NewCertStore(testLogger(t), []CertFile{{Cert: writeL7Cert(t, t.TempDir(), "a.pem", nil, "a.test")}},
		TLSOptions{ALPN: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, Global{},
		ServiceSpec{Name: "t", Listen: lo4, Mode: ModeHTTP, Pool: pool(ba), L7: &L7Spec{TLS: store, H2: true}},
		ServiceSpec{Name: "p", Listen: lo4, Mode: ModeHTTP, Pool: pool(ba)})
}

// frontFor returns the base URL and a client transport for proto: plaintext
// (HTTP/1.1 to "p"), HTTP/1.1 over TLS or HTTP/2.0 (to "t").
func frontFor(s *Server, proto string) (string, *http.Transport) {
	base := "https://" + s.Addr("t").String()
	if proto == "plaintext" {
		base = "http://" + s.Addr("p").String()
	}
	tr := &http.Transport{
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2:  proto == "HTTP/2.0",
		DisableCompression: true,
	}
	if proto != "HTTP/2.0" {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return base, tr
}

// serveRequests is serveConns for a server of HTTP/1.1 requests: answer
// writes the answer to each request read from c, and false ends the
// connection.
func serveRequests(tb testing.TB, answer func(c net.Conn, req *http.Request) bool) string {
	return serveConns(tb, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil || !answer(c, req) {
				return
			}
		}
	})
}
