package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// An HTTP/1.0 client gets a body it can read (no chunked coding) even when
// the backend streams without a length, and Connection: close is honoured.
func TestHTTP10AndConnectionClose(t *testing.T) {
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part1 ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part2")
	})
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr())})
	for _, raw := range []string{
		"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	} {
		c := dial(t, s.Addr("h"))
		io.WriteString(c, raw)
		all, err := io.ReadAll(c) // the proxy must close after the response
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		head, body, _ := strings.Cut(string(all), "\r\n\r\n")
		if strings.Contains(strings.ToLower(head), "chunked") && strings.HasPrefix(raw, "GET / HTTP/1.0") {
			t.Errorf("%q: chunked response to an HTTP/1.0 client: %q", raw, head)
		}
		if !strings.Contains(body, "part1 ") || !strings.Contains(body, "part2") {
			t.Errorf("%q: body %q", raw, body)
		}
	}
}

func TestHTTPExpectContinue(t *testing.T) {
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got "+string(b))
	})
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr())})
	c := dial(t, s.Addr("h"))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "got hello" {
		t.Fatalf("body %q", body)
	}
}

// A kept server connection that the server closes after reading the next
// request (the stale keep-alive race) gets an idempotent body-less request
// resent once on a new connection, so the client never notices; a POST is
// never sent twice: the client gets 502 and the server saw it once.
func TestHTTPStaleKeepAliveRetry(t *testing.T) {
	var posts, conns atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptLoop(t, ln, func(c net.Conn) {
		defer c.Close()
		conns.Add(1)
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if req.Method == "POST" {
				posts.Add(1)
			}
			if n == 1 {
				return // reads the second request, then closes without a word
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(ln.Addr())})
	c := dial(t, s.Addr("h"))
	br := bufio.NewReader(c)
	for i := range 4 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 4 {
		t.Fatalf("server saw %d connections for 4 GETs, each after the first retried once, want 4", n)
	}
	// The POST goes on the kept connection, which closes after reading it.
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 502 {
		t.Fatalf("POST on a stale connection: %v %v, want 502", resp, err)
	}
	if n := posts.Load(); n != 1 {
		t.Fatalf("server got the POST %d times, want 1", n)
	}
}

// Bodiless responses (HEAD, 204, 304) release the backend slot.
func TestHTTPBodilessReleaseBackend(t *testing.T) {
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		default:
			io.WriteString(w, "body")
		}
	})
	p := pool(be.addr())
	s := startServer(t, Global{}, ServiceSpec{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: p})
	c := dial(t, s.Addr("h"))
	br := bufio.NewReader(c)
	for _, r := range []struct{ method, path string }{{"GET", "/204"}, {"GET", "/304"}, {"HEAD", "/"}, {"GET", "/"}} {
		io.WriteString(c, r.method+" "+r.path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: r.method})
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	eventually(t, "backend slots released", func() bool { return p.Views()[0].Active == 0 })
	if v := p.Views()[0]; v.Total != 4 {
		t.Fatalf("backend view %+v", v)
	}
}
