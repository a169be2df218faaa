package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// recBackend is a raw backend that records every byte it receives, per
// connection, and answers each request with what answer returns for it (the
// request's head and the connection's request count), written as is, in
// pieces separated by the given pauses.
type recBackend struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  []*bytes.Buffer
	answer func(head string, n int) []piece
}

type piece struct {
	after time.Duration
	data  string
}

func newRecBackend(t *testing.T, answer func(head string, n int) []piece) *recBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &recBackend{ln: ln, answer: answer}
	acceptLoop(t, ln, func(c net.Conn) {
		defer c.Close()
		rec := new(bytes.Buffer)
		rb.mu.Lock()
		rb.conns = append(rb.conns, rec)
		rb.mu.Unlock()
		br := bufio.NewReader(io.TeeReader(c, lockedWriter{&rb.mu, rec}))
		for n := 0; ; n++ {
			head, err := readHeadRaw(br)
			if err != nil {
				return
			}
			if cl := headerValue(head, "Content-Length"); cl != "" {
				var k int64
				fmt.Sscan(cl, &k)
				io.CopyN(io.Discard, br, k)
			}
			for _, p := range rb.answer(head, n) {
				if p.after > 0 {
					<-time.After(p.after) // the backend's own pacing (the scenario), not a wait for a condition
				}
				if p.data == "" {
					return // close
				}
				io.WriteString(c, p.data)
			}
		}
	})
	return rb
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// received returns everything the backend got, connection by connection.
func (rb *recBackend) received() []string {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	out := make([]string, len(rb.conns))
	for i, b := range rb.conns {
		out[i] = b.String()
	}
	return out
}

func (rb *recBackend) all() string { return strings.Join(rb.received(), "") }

func readHeadRaw(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		l, err := br.ReadString('\n')
		sb.WriteString(l)
		if err != nil {
			return "", err
		}
		if l == "\r\n" {
			return sb.String(), nil
		}
	}
}

func headerValue(head, name string) string {
	for _, l := range strings.Split(head, "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// exchange sends raw on c and reads one response (for method).
func exchange(t *testing.T, c net.Conn, br *bufio.Reader, method, raw string) (*http.Response, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// Bytes a server sends after a complete response (a body on HEAD, 204 or
// 304, data beyond Content-Length), whenever they arrive, never reach
// another client nor answer a later request.
func TestHTTPStrayResponseBytes(t *testing.T) {
	const evil = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
	kinds := []struct {
		name, method, head string
	}{
		{"HEAD with a body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 39\r\n\r\n"},
		{"204 with a body", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 39\r\n\r\n"},
		{"304 with a body", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 39\r\n\r\n"},
		{"beyond Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	}
	for _, k := range kinds {
		for _, d := range []time.Duration{0, 2 * time.Millisecond, 20 * time.Millisecond, 200 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s/%v", k.name, d), func(t *testing.T) {
				t.Parallel()
				be := newRecBackend(t, func(head string, n int) []piece {
					if strings.HasPrefix(head, "GET /next") {
						return []piece{{0, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"}}
					}
					return []piece{{0, k.head}, {d, evil}}
				})
				s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.ln.Addr())})
				a := dial(t, s.Addr("h"))
				abr := bufio.NewReader(a)
				exchange(t, a, abr, k.method, k.method+" /first HTTP/1.1\r\nHost: a\r\n\r\n")
				// Another client, at once and after the stray bytes could have come.
				for i := range 2 {
					b := dial(t, s.Addr("h"))
					resp, body := exchange(t, b, bufio.NewReader(b), "GET", "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
					if resp.StatusCode != 200 || body != "next" {
						t.Fatalf("other client, try %d: %d %q: got bytes meant for nobody", i, resp.StatusCode, body)
					}
					b.Close()
				}
				// The first client's own next request gets its own answer too
				// (when the stray bytes came at once or with a bodiless status).
				if d == 0 || k.name != "beyond Content-Length" {
					resp, body := exchange(t, a, abr, "GET", "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
					if resp.StatusCode != 200 || body != "next" {
						t.Fatalf("same client: %d %q", resp.StatusCode, body)
					}
				}
			})
		}
	}
}

// An Upgrade request that the server does not accept with a 101 leaves the
// connection in HTTP: what follows is parsed and checked, not tunnelled.
func TestHTTPUpgradeRefusedStaysHTTP(t *testing.T) {
	for _, refusal := range []string{
		"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno",
	} {
		be := newRecBackend(t, func(head string, n int) []piece { return []piece{{0, refusal}} })
		s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.ln.Addr())})
		c := dial(t, s.Addr("h"))
		br := bufio.NewReader(c)
		resp, _ := exchange(t, c, br, "GET", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		if resp.StatusCode == 101 {
			t.Fatal("101 without the server's")
		}
		smuggled := "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
		resp, _ = exchange(t, c, br, "POST", smuggled)
		if resp.StatusCode != 400 {
			t.Fatalf("after a refused upgrade, CL+TE got %d, want 400", resp.StatusCode)
		}
		if got := be.all(); strings.Contains(got, "/x") {
			t.Fatalf("the server received the smuggled request: %q", got)
		}
	}
}

// A 101 that answers no upgrade request is a 502, and the client's next
// request still works on a new server connection.
func TestHTTPUnsolicited101(t *testing.T) {
	be := newRecBackend(t, func(head string, n int) []piece {
		if strings.HasPrefix(head, "GET /second") {
			return []piece{{0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}}
		}
		return []piece{{0, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"}}
	})
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.ln.Addr())})
	c := dial(t, s.Addr("h"))
	resp, _ := exchange(t, c, bufio.NewReader(c), "GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 502 {
		t.Fatalf("unsolicited 101 gave %d, want 502", resp.StatusCode)
	}
	c2 := dial(t, s.Addr("h"))
	resp, body := exchange(t, c2, bufio.NewReader(c2), "GET", "GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("next client: %d %q", resp.StatusCode, body)
	}
}

// A request is never sent twice once the server answered, even badly: a
// malformed response to a body-less DELETE on a fresh connection is a 502,
// and the server saw the request once.
func TestHTTPNoResendAfterMalformedResponse(t *testing.T) {
	for _, m := range []string{"DELETE", "PUT", "GET"} {
		be := newRecBackend(t, func(head string, n int) []piece { return []piece{{0, "HTTP/1.1 2OO OK\r\n\r\n"}, {0, ""}} })
		s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.ln.Addr())})
		c := dial(t, s.Addr("h"))
		resp, _ := exchange(t, c, bufio.NewReader(c), m, m+" /once HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp.StatusCode != 502 {
			t.Fatalf("%s: status %d, want 502", m, resp.StatusCode)
		}
		if n := strings.Count(be.all(), "/once"); n != 1 {
			t.Fatalf("%s: the server got the request %d times", m, n)
		}
	}
}

// A chunked response to an HTTP/1.0 client is unchunked: no
// Transfer-Encoding nor Trailer field, the data only, then close.
func TestHTTP10ChunkedResponse(t *testing.T) {
	be := newRecBackend(t, func(head string, n int) []piece {
		return []piece{{0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n"}}
	})
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.ln.Addr())})
	c := dial(t, s.Addr("h"))
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(all), "\r\n\r\n")
	lh := strings.ToLower(head)
	if strings.Contains(lh, "transfer-encoding") || strings.Contains(lh, "trailer") {
		t.Fatalf("head to an HTTP/1.0 client: %q", head)
	}
	if body != "hello world" {
		t.Fatalf("body %q", body)
	}
	// An HTTP/1.1 client gets the chunks and the trailer as sent.
	c2 := dial(t, s.Addr("h"))
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c2)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "hello world" || resp.Trailer.Get("X-Sum") != "11" {
		t.Fatalf("HTTP/1.1: body %q trailer %v", b, resp.Trailer)
	}
}

// The lower-severity cases of the audit, each on raw sockets.
func TestHTTPRequestHardening(t *testing.T) {
	be := newRecBackend(t, func(head string, n int) []piece {
		switch {
		case strings.HasPrefix(head, "GET /early"):
			return []piece{{0, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}}
		case strings.HasPrefix(head, "GET /lf"):
			return []piece{{0, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"}}
		case strings.HasPrefix(head, "GET /badchunk"):
			return []piece{{0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n"}}
		}
		return []piece{{0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}}
	})
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.ln.Addr()), MaxURISize: 100})
	one := func(raw string) (*http.Response, string, string) {
		t.Helper()
		c := dial(t, s.Addr("h"))
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, raw)
		all, _ := io.ReadAll(c)
		br := bufio.NewReader(bytes.NewReader(all))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v (got %q)", raw, err, all)
		}
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body), string(all)
	}
	status := func(raw string, want int) {
		t.Helper()
		if resp, _, all := one(raw); resp.StatusCode != want {
			t.Fatalf("%q: %d, want %d (%q)", raw, resp.StatusCode, want, all)
		}
	}
	before := len(be.all())
	status("GET / HTTP/1.1\r\nHost: user:pw@a\r\nConnection: close\r\n\r\n", 400)
	status("GET http://user:pw@a/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 400)
	status("GET / HTTP/1.1\nHost: a\n\n", 400) // bare LF: refused at once
	status("GET /"+strings.Repeat("u", 200)+" HTTP/1.1\r\nHost: a\r\n\r\n", 414)
	if got := be.all()[before:]; got != "" {
		t.Fatalf("refused requests reached the server: %q", got)
	}
	// Absolute-form goes out in origin-form with its authority as Host.
	before = len(be.all())
	status("GET https://b.example/p?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n", 200)
	got := be.all()[before:]
	if !strings.HasPrefix(got, "GET /p?q=1 HTTP/1.1\r\n") || headerValue(got, "Host") != "b.example" {
		t.Fatalf("absolute-form forwarded as %q", got)
	}
	// Underscore lookalikes of framing and forwarding fields are dropped;
	// no Authorization and no Content-Type are invented.
	before = len(be.all())
	status("GET / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\nX_Forwarded_For: 6.6.6.6\r\nX_Custom: kept\r\nConnection: close\r\n\r\n", 200)
	got = be.all()[before:]
	for _, bad := range []string{"Content_Length", "X_Forwarded_For", "Authorization", "Content-Type"} {
		if strings.Contains(got, bad) {
			t.Fatalf("server got %s: %q", bad, got)
		}
	}
	if !strings.Contains(strings.ToLower(got), "x_custom: kept") {
		t.Fatalf("an ordinary underscore field was dropped: %q", got)
	}
	// 1xx is forwarded, then the final response.
	if _, _, all := one("GET /early HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(all, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n") {
		t.Fatalf("103 not forwarded: %q", all)
	}
	// A response with bare LF and a bad first chunk: 502 at once.
	status("GET /lf HTTP/1.1\r\nHost: a\r\n\r\n", 502)
	status("GET /badchunk HTTP/1.1\r\nHost: a\r\n\r\n", 502)
	// No Content-Type is added to a response that had none.
	if resp, _, _ := one("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); resp.Header.Get("Content-Type") != "" {
		t.Fatalf("Content-Type invented: %v", resp.Header)
	}
}

// An idle keep-alive connection closes after timeout_http_keep_alive, not
// the client inactivity timeout.
func TestHTTPKeepAliveTimeout(t *testing.T) {
	t.Parallel()
	be := newRecBackend(t, func(string, int) []piece { return []piece{{0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}} })
	const ka = 300 * time.Millisecond
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.ln.Addr()),
		Timeouts: Timeouts{HTTPKeepAlive: ka, Client: time.Minute}})
	c := dial(t, s.Addr("h"))
	br := bufio.NewReader(c)
	exchange(t, c, br, "GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive connection: %v", err)
	}
	if d := time.Since(start); d < ka*3/4 {
		t.Fatalf("closed after %v, before the keep-alive timeout", d)
	}
}
