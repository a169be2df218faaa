package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"halb/proxy/balance"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Service starts a TLS service offering h2 in front of addr and returns
// its address.
func h2Service(t *testing.T, addr net.Addr, to Timeouts) string {
	t.Helper()
	return h2ServiceL7(t, addr, to, &L7Spec{})
}

// h2ServiceL7 is h2Service with the layer-7 parts of l7 (its TLS and H2 are set here).
func h2ServiceL7(t *testing.T, addr net.Addr, to Timeouts, l7 *L7Spec) string {
	t.Helper()
	store, err := NewCertStore(testLogger(t), []CertFile{{Cert: writeL7Cert(t, t.TempDir(), "a.pem", nil, "a.test")}},
		TLSOptions{ALPN: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	l7.TLS, l7.H2 = store, true
	s := startServer(t, Global{}, ServiceSpec{Name: "h2", Listen: lo4, Mode: ModeHTTP, Pool: pool(addr),
		L7: l7, Timeouts: to})
	return s.Addr("h2").String()
}

// h2Client returns an HTTP/2 client whose connections all close at cleanup
// (CloseIdleConnections alone leaves one whose last stream was just reset).
func h2Client(t *testing.T) *http.Client {
	var mu sync.Mutex
	var conns []net.Conn
	tr := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "a.test"},
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			c, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
			if err == nil {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
			return c, err
		}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestH2EngineRequestFields: what the server gets from an HTTP/2 request:
// no hop-by-hop field, the client's forwarding fields replaced (it is not a
// trusted upstream), cookies joined; a stream with a connection-specific
// field is refused before any server connection.
func TestH2EngineRequestFields(t *testing.T) {
	got := make(chan http.Header, 4)
	be := serveRequests(t, func(c net.Conn, req *http.Request) bool {
		got <- req.Header
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	ba, _ := net.ResolveTCPAddr("tcp", be)
	_, fr := h2Dial(t, h2Service(t, ba, Timeouts{}))
	h2Request(t, fr, 1, "/x", true, [2]string{"te", "trailers"}, [2]string{"x-forwarded-for", "198.18.0.66"},
		[2]string{"forwarded", "for=198.18.0.66"}, [2]string{"x-forwarded-proto", "http"}, [2]string{"cookie", "a=1"},
		[2]string{"x-end", "kept"}, [2]string{"cookie", "b=2"})
	h := <-got
	for _, name := range []string{"Te", "Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "Transfer-Encoding"} {
		if v, ok := h[name]; ok {
			t.Errorf("hop-by-hop %s forwarded: %q", name, v)
		}
	}
	for name, want := range map[string]string{"X-Forwarded-For": "127.0.0.1", "Forwarded": "for=127.0.0.1;proto=https",
		"X-Forwarded-Proto": "https", "Cookie": "a=1; b=2", "X-End": "kept"} {
		if v := h.Values(name); len(v) != 1 || v[0] != want {
			t.Errorf("%s: %q, want %q", name, v, want)
		}
	}
	h2Request(t, fr, 3, "/y", true, [2]string{"connection", "close"})
	rst := h2Until(t, fr, "RST_STREAM", func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
	if rst.StreamID != 3 || rst.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("RST_STREAM %d %v, want 3 PROTOCOL_ERROR", rst.StreamID, rst.ErrCode)
	}
	select {
	case h := <-got:
		t.Fatalf("the server got the refused request: %v", h)
	default:
	}
}

// h2Body reads stream id's answer: its HEADERS, then DATA until the end of
// the stream, failing on any other frame of that stream; it returns the body.
func h2Body(t *testing.T, fr *http2.Framer, id uint32) string {
	t.Helper()
	var body []byte
	for {
		f := h2Until(t, fr, "the answer", func(f http2.Frame) bool { return f.Header().StreamID == id })
		switch f := f.(type) {
		case *http2.DataFrame:
			body = append(body, f.Data()...)
			if f.StreamEnded() {
				return string(body)
			}
		case *http2.MetaHeadersFrame:
		default:
			t.Fatalf("stream %d: %v", id, f)
		}
	}
}

// TestH2EngineFieldsLayer7: an HTTP/2 request's fields that no rule, route
// or request id names go to the server as they came, the others through the
// request head where layer 7 reads and changes them: a route by a field sends
// the request to its pool, a deleted field is gone, a set one replaces the
// client's, the request id is kept, and a lookalike of a forwarding field
// with '_' is dropped.
func TestH2EngineFieldsLayer7(t *testing.T) {
	backend := func(name string, got chan<- http.Header) string {
		return serveRequests(t, func(c net.Conn, req *http.Request) bool {
			got <- req.Header
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(name), name)
			return true
		})
	}
	defGot, blueGot := make(chan http.Header, 4), make(chan http.Header, 4)
	def, _ := net.ResolveTCPAddr("tcp", backend("def", defGot))
	blue, _ := net.ResolveTCPAddr("tcp", backend("blue", blueGot))
	ids, _ := NewRequestIDs()
	l7 := &L7Spec{
		Pools:     []*balance.Pool{pool(blue)},
		PoolNames: []string{"blue"},
		Router:    mustRouter(t, RouteSpec{Headers: []HeaderMatch{{Name: "X-Route", Value: "blue"}}, Target: RouteTarget{Pool: 0}}),
		Request: mustRules(t, HeaderRule{Op: HeaderDel, Name: "X-Debug"},
			HeaderRule{Op: HeaderSet, Name: "X-Env", Value: "prod"}),
		RequestID:  "X-Request-ID",
		RequestIDs: ids,
	}
	if got := l7.FieldNames(); !slices.Equal(got, []string{"x-request-id", "x-debug", "x-env", "x-route"}) {
		t.Fatalf("FieldNames = %q", got)
	}
	_, fr := h2Dial(t, h2ServiceL7(t, def, Timeouts{}, l7))
	h2Request(t, fr, 1, "/a", true, [2]string{"x-route", "blue"}, [2]string{"x-debug", "1"}, [2]string{"x-env", "dev"},
		[2]string{"x-other", "kept"}, [2]string{"x_forwarded_for", "198.18.0.66"}, [2]string{"user-agent", "ua/1"},
		[2]string{"x-request-id", "abc-123"}, [2]string{"x-other", "twice"})
	if got := h2Body(t, fr, 1); got != "blue" {
		t.Fatalf("routed by x-route to %q, want blue", got)
	}
	h := <-blueGot
	for name, want := range map[string][]string{"X-Route": {"blue"}, "X-Debug": nil, "X-Env": {"prod"},
		"X-Other": {"kept", "twice"}, "X_forwarded_for": nil, "User-Agent": {"ua/1"}, "X-Request-Id": {"abc-123"},
		"X-Forwarded-For": {"127.0.0.1"}} {
		if v := h.Values(name); !slices.Equal(v, want) {
			t.Errorf("%s: %q, want %q", name, v, want)
		}
	}
	h2Request(t, fr, 3, "/b", true, [2]string{"x-other", "plain"})
	if got := h2Body(t, fr, 3); got != "def" {
		t.Fatalf("no route: answered by %q, want def", got)
	}
	h = <-defGot
	if v := h.Values("X-Other"); !slices.Equal(v, []string{"plain"}) || h.Get("X-Env") != "prod" || len(h.Values("X-Request-Id")) != 1 {
		t.Fatalf("default pool got %v", h)
	}
}

// TestH2EngineStreamsReused: a stream's records are reused by the streams
// after it (after one the client reset while its server worked, too): each
// request reaches the server with its own fields and none of an earlier
// stream's, each answer reaches its own stream, and the reset stream's server
// connection is closed.
func TestH2EngineStreamsReused(t *testing.T) {
	got := make(chan *http.Request, 16)
	aborted := make(chan struct{}, 1)
	be := serveRequests(t, func(c net.Conn, req *http.Request) bool {
		got <- req
		if req.URL.Path == "/slow" {
			io.Copy(io.Discard, c) // until the proxy closes it
			aborted <- struct{}{}
			return false
		}
		body := "path=" + req.URL.Path
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return true
	})
	ba, _ := net.ResolveTCPAddr("tcp", be)
	_, fr := h2Dial(t, h2Service(t, ba, Timeouts{}))
	id := uint32(1)
	one := func(i int) {
		t.Helper()
		path := fmt.Sprintf("/r/%d", i)
		v := fmt.Sprint(i)
		if i%2 == 1 {
			h2Request(t, fr, id, path, true, [2]string{"x-odd", v}, [2]string{"cookie", "c=" + v})
		} else {
			h2Request(t, fr, id, path, true, [2]string{"x-even", v})
		}
		req := <-got
		if req.URL.Path != path {
			t.Fatalf("stream %d: the server got %s, want %s", id, req.URL.Path, path)
		}
		odd, even, cookie := req.Header.Values("X-Odd"), req.Header.Values("X-Even"), req.Header.Values("Cookie")
		if i%2 == 1 && (len(odd) != 1 || odd[0] != v || len(even) != 0 || len(cookie) != 1 || cookie[0] != "c="+v) ||
			i%2 == 0 && (len(even) != 1 || even[0] != v || len(odd) != 0 || len(cookie) != 0) {
			t.Fatalf("stream %d (%s): x-odd %q x-even %q cookie %q", id, path, odd, even, cookie)
		}
		if body := h2Body(t, fr, id); body != "path="+path {
			t.Fatalf("stream %d: answer %q, want %q", id, body, "path="+path)
		}
		id += 2
	}
	for i := range 6 {
		one(i)
	}
	h2Request(t, fr, id, "/slow", true)
	<-got
	if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	select {
	case <-aborted:
	case <-time.After(10 * time.Second):
		t.Fatal("the reset stream's server connection stayed open")
	}
	id += 2
	for i := 6; i < 9; i++ {
		one(i)
	}
}

// TestH2EngineStreamsReusedConcurrently: many streams at once on one
// connection while their records are reused; some the client cancels while
// their server holds them (the abort closes that server connection), some at
// a moment that races their exchange: every answer that comes is its own
// request's (and the race detector watches the records' hand-overs).
func TestH2EngineStreamsReusedConcurrently(t *testing.T) {
	var held, seen sync.Map // held: id → chan struct{}, closed when the server holds that request
	be := serveRequests(t, func(c net.Conn, req *http.Request) bool {
		id := req.Header.Get("X-Id")
		if _, again := seen.LoadOrStore(id, true); again {
			t.Errorf("%s: the server got it twice", id)
			return false
		}
		if ch, ok := held.Load(id); ok {
			close(ch.(chan struct{}))
			io.Copy(io.Discard, c) // until the abort closes the connection
			return false
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(id), id)
		return true
	})
	ba, _ := net.ResolveTCPAddr("tcp", be)
	addr := h2Service(t, ba, Timeouts{})
	client := h2Client(t)
	var wg sync.WaitGroup
	var answered, cancelled atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 60 {
				id := fmt.Sprintf("%d-%d", g, i)
				ctx, cancel := context.WithCancel(t.Context())
				req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/"+id, nil)
				req.Header.Set("X-Id", id)
				switch i % 6 {
				case 0: // cancelled while the server holds it
					ch := make(chan struct{})
					held.Store(id, ch)
					go func() { <-ch; cancel() }()
				case 3: // cancelled before, during or after its exchange
					go cancel()
				}
				resp, err := client.Do(req)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				cancel()
				switch {
				case err != nil && ctx.Err() != nil:
					cancelled.Add(1)
				case err != nil:
					t.Errorf("%s: %v", id, err)
				case i%6 == 0:
					t.Errorf("%s: answered %d %q while its server held it", id, resp.StatusCode, body)
				case resp.StatusCode != 200 || string(body) != id:
					t.Errorf("%s: %d %q, another request's answer", id, resp.StatusCode, body)
				default:
					answered.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d answered, %d cancelled", answered.Load(), cancelled.Load())
	if answered.Load() < 8*40 || cancelled.Load() < 8*10 {
		t.Fatalf("%d answered, %d cancelled: want all %d not cancelled answered and the %d held cancelled", answered.Load(), cancelled.Load(), 8*40, 8*10)
	}
}

// TestH2EngineBodies: request bodies with and without a length reach the
// server whole (the second chunked), a chunked response reaches the client
// unchunked, and no Content-Type is invented.
func TestH2EngineBodies(t *testing.T) {
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.Header()["Content-Type"] = nil
			w.Header().Set("Trailer", "X-Sum")
			for _, p := range []string{"part1", "part2", "part3"} {
				io.WriteString(w, p)
				w.(http.Flusher).Flush()
			}
			w.Header().Set("X-Sum", "abc")
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s te=%v cl=%d body=%d ok=%v", r.Method, r.Proto, r.TransferEncoding, r.ContentLength, len(body),
			bytes.Equal(body, bytes.Repeat([]byte("0123456789"), len(body)/10)))
	})
	addr := h2Service(t, be.addr(), Timeouts{})
	client := h2Client(t)
	get := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	body := strings.Repeat("0123456789", 10000)
	req, _ := http.NewRequest("POST", "https://"+addr+"/len", strings.NewReader(body))
	if _, got := get(req); got != "POST HTTP/1.1 te=[] cl=100000 body=100000 ok=true" {
		t.Errorf("body with a length: server saw %q", got)
	}
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 5; i++ {
			io.WriteString(pw, body[:10000])
		}
		pw.Close()
	}()
	req, _ = http.NewRequest("POST", "https://"+addr+"/nolen", pr)
	if _, got := get(req); got != "POST HTTP/1.1 te=[chunked] cl=-1 body=50000 ok=true" {
		t.Errorf("body without a length: server saw %q", got)
	}
	req, _ = http.NewRequest("GET", "https://"+addr+"/chunked", nil)
	resp, got := get(req)
	if got != "part1part2part3" || resp.ProtoMajor != 2 || resp.Header["Content-Type"] != nil || resp.Header["Transfer-Encoding"] != nil {
		t.Errorf("chunked response: %s %q %v", resp.Proto, got, resp.Header)
	}
	if resp.Trailer.Get("X-Sum") != "abc" {
		t.Errorf("the server's trailer did not reach the HTTP/2 client: %v", resp.Trailer)
	}
}

// TestH2EngineCutResponse: a server that ends its connection in the middle
// of a chunked body gets the client a reset stream, not a clean end of a
// short body.
func TestH2EngineCutResponse(t *testing.T) {
	rb := newRecBackend(t, func(head string, n int) []piece {
		// More than x/net/http2's 4 KiB write buffer: the head and some DATA go out.
		return []piece{{data: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n" + strings.Repeat("x", 0x2000) + "\r\n"}, {data: ""}}
	})
	addr := h2Service(t, rb.ln.Addr(), Timeouts{Server: 300 * time.Millisecond})
	resp, err := h2Client(t).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	var se http2.StreamError
	if !errors.As(err, &se) {
		t.Fatalf("read %q, err %v: want a stream error", b, err)
	}
}

// TestH2EngineStalls: a stream whose client stops reading (a flow-control
// window of 0) is reset after the client timeout, and a stream the client
// resets while its server is thinking closes that server connection.
func TestH2EngineStalls(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan string, 4)
	seen := make(chan string, 4)
	acceptLoop(t, ln, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		head, err := readHeadRaw(br)
		if err != nil {
			return
		}
		seen <- strings.Fields(head)[1]
		if strings.Contains(head, "/big") {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n")
			c.Write(make([]byte, 1<<20))
		}
		io.Copy(io.Discard, br) // until the proxy closes the connection
		closed <- strings.Fields(head)[1]
	})
	addr := h2Service(t, ln.Addr(), Timeouts{Client: 300 * time.Millisecond})

	// A client that asks for /big and never opens its window.
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "a.test"}, {":path", "/big"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no reset of the stalled stream: %v", err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			fr.WriteSettingsAck()
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == 1 {
			break
		}
	}
	select {
	case p := <-closed:
		if p != "/big" {
			t.Fatalf("closed %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled stream's server connection stayed open")
	}

	// A client that gives up on a slow server.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/slow", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := h2Client(t).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	for p := range seen {
		if p == "/slow" {
			break
		}
	}
	cancel()
	<-done
	select {
	case p := <-closed:
		if p != "/slow" {
			t.Fatalf("closed %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reset stream's server connection stayed open")
	}
}

// TestH2ShutdownIdleClient: a graceful Shutdown sends GOAWAY to an idle
// HTTP/2 client and ends without waiting for the client to leave.
func TestH2ShutdownIdleClient(t *testing.T) {
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	store, err := NewCertStore(testLogger(t), []CertFile{{Cert: writeL7Cert(t, t.TempDir(), "a.pem", nil, "a.test")}},
		TLSOptions{ALPN: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(testLogger(t), Global{})
	if err := s.Apply([]ServiceSpec{{Name: "h2", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr()), L7: &L7Spec{TLS: store, H2: true}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := h2Client(t).Get("https://" + s.Addr("h2").String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// The client keeps its connection open and idle.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an idle HTTP/2 client: %v", err)
	}
}
