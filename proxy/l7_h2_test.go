package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// echoForwarder stands in for the HTTP/1 backend engine: it answers each stream itself.
type echoForwarder struct{}

func (echoForwarder) ServeH2(st *H2Stream) {
	body, err := io.ReadAll(st)
	if err != nil {
		return // reset
	}
	out := fmt.Sprintf("%s %s host=%s body=%d", st.Method, st.Path, st.Authority, len(body))
	st.WriteHead([]hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "text/plain"},
		{Name: "x-proto", Value: "HTTP/2.0"}, {Name: "content-length", Value: strconv.Itoa(len(out))}}, false)
	st.Write([]byte(out), true)
}

// h2Front serves TLS on loopback: h2 connections go to an H2Server with echoForwarder, others
// get a fixed HTTP/1.1 answer. It returns the address; everything stops at cleanup.
func h2Front(t *testing.T, limits H2Limits, names ...string) string {
	t.Helper()
	return h2FrontWith(t, limits, echoForwarder{}, names...)
}

// h2FrontWith is h2Front with h serving the streams.
func h2FrontWith(t *testing.T, limits H2Limits, h H2Handler, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if len(names) == 0 {
		names = []string{"a.test"}
	}
	var files []CertFile
	for _, n := range names {
		files = append(files, CertFile{Cert: writeL7Cert(t, dir, n+".pem", nil, n)})
	}
	store, err := NewCertStore(zaptest.NewLogger(t), files, TLSOptions{ALPN: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	h2 := NewH2Server(zaptest.NewLogger(t), limits, h)
	ctx, cancel := context.WithCancel(context.Background())
	addr := serveConns(t, func(c net.Conn) {
		tc, err := Handshake(ctx, c, store.Config(), 5*time.Second)
		if err != nil {
			return
		}
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			h2.ServeConn(tc, nil, nil)
			return
		}
		io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nh1")
	})
	t.Cleanup(func() { // before serveConns closes the connections
		cancel()
		h2.Shutdown()
	})
	return addr
}

func TestH2Forward(t *testing.T) {
	addr := h2Front(t, H2Limits{})
	tr := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "a.test"}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for i := range 20 { // concurrent streams on one connection
		wg.Go(func() {
			resp, err := client.Post("https://"+addr+fmt.Sprintf("/p/%d?q=1", i), "text/plain", strings.NewReader(strings.Repeat("x", i*1000)))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			want := fmt.Sprintf("POST /p/%d?q=1 host=%s body=%d", i, addr, i*1000)
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(b) != want || resp.Header.Get("X-Proto") != "HTTP/2.0" {
				t.Errorf("%d %s %q %v, want %q", resp.StatusCode, resp.Proto, b, resp.Header, want)
			}
		})
	}
	wg.Wait()
}

// TestH2Settings reads the server's SETTINGS frame: the limits are announced as set.
func TestH2Settings(t *testing.T) {
	addr := h2Front(t, H2Limits{MaxConcurrentStreams: 7, MaxHeaderListSize: 8 << 10, MaxReadFrameSize: 32 << 10})
	_, fr := h2Dial(t, addr)
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v", f)
	}
	want := map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: 7,
		http2.SettingMaxFrameSize:         32 << 10,
		http2.SettingHeaderTableSize:      DefaultH2HeaderTableSize,
	}
	for id, v := range want {
		if got, ok := sf.Value(id); !ok || got != v {
			t.Errorf("%v = %d (%v), want %d", id, got, ok, v)
		}
	}
	if got, ok := sf.Value(http2.SettingMaxHeaderListSize); !ok || got < 8<<10 || got > 9<<10 {
		t.Errorf("max header list size = %d", got)
	}
}

// TestH2Curl: curl --http2 gets HTTP/2 200; without h2 in its ALPN it gets HTTP/1.1.
func TestH2Curl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	addr := h2Front(t, H2Limits{})
	_, port, _ := net.SplitHostPort(addr)
	run := func(args ...string) string {
		args = append([]string{"-sS", "-k", "-i", "--max-time", "10", "--resolve", "a.test:" + port + ":127.0.0.1"}, args...)
		out, err := exec.Command(curl, append(args, "https://a.test:"+port+"/hello")...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("--http2"); !strings.HasPrefix(out, "HTTP/2 200") || !strings.HasSuffix(out, "GET /hello host=a.test:"+port+" body=0") {
		t.Errorf("curl --http2:\n%s", out)
	}
	if out := run("--http1.1"); !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Errorf("curl --http1.1:\n%s", out)
	}
}

// TestH2Spec runs h2spec's generic and http2 sections, when H2SPEC names its binary, against the
// proxy itself (TLS termination, HTTP/2 streams bridged to the HTTP/1 engine, a real server behind
// it). Any failure fails the test.
func TestH2Spec(t *testing.T) {
	bin := os.Getenv("H2SPEC")
	if bin == "" {
		t.Skip("H2SPEC not set (go install github.com/summerwind/h2spec/cmd/h2spec@latest; H2SPEC=$(go env GOPATH)/bin/h2spec)")
	}
	be := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "answered by the server behind the proxy\n") // 5 bytes or more: h2spec 6.9.2 #2 runs
	})
	dir := t.TempDir()
	store, err := NewCertStore(testLogger(t), []CertFile{{Cert: writeL7Cert(t, dir, "a.pem", nil, "a.test")}},
		TLSOptions{ALPN: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Global{}, ServiceSpec{Name: "h2", Listen: lo4, Mode: ModeHTTP, Pool: pool(be.addr()), L7: &L7Spec{TLS: store, H2: true}})
	host, port, _ := net.SplitHostPort(s.Addr("h2").String())
	out, _ := exec.Command(bin, "generic", "http2", "-t", "-k", "-h", host, "-p", port, "-o", "2").CombinedOutput()
	t.Logf("h2spec:\n%s", out)
	var total, passed, skipped, failed int
	for _, l := range strings.Split(string(out), "\n") {
		if n, _ := fmt.Sscanf(strings.TrimSpace(l), "%d tests, %d passed, %d skipped, %d failed", &total, &passed, &skipped, &failed); n == 4 {
			break
		}
	}
	if total == 0 {
		t.Fatal("h2spec did not run")
	}
	if failed > 0 || skipped > 0 || passed != total {
		t.Fatalf("h2spec: %d of %d failed, %d skipped", failed, total, skipped)
	}
}

// TestTLSCurlSNI: two certificates on one listener; curl --resolve with each name gets that
// name's certificate, an unknown name the default (the first).
func TestTLSCurlSNI(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	addr := h2Front(t, H2Limits{}, "a.test", "b.test")
	_, port, _ := net.SplitHostPort(addr)
	for name, want := range map[string]string{"a.test": "CN=a.test", "b.test": "CN=b.test", "unknown.test": "CN=a.test"} {
		out, err := exec.Command(curl, "-sS", "-k", "-v", "--http2", "--max-time", "10", "--resolve", name+":"+port+":127.0.0.1",
			"https://"+name+":"+port+"/x").CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", name, err, out)
		}
		if !strings.Contains(string(out), "subject: "+want) || !strings.Contains(string(out), "GET /x host="+name+":"+port) {
			t.Errorf("curl %s: want subject %s\n%s", name, want, out)
		}
	}
}

// h2Dial opens a TLS connection speaking h2 to addr, sends the preface and SETTINGS with
// settings, and returns a Framer on it that decodes header blocks.
func h2Dial(t *testing.T, addr string, settings ...http2.Setting) (*tls.Conn, *http2.Framer) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings(settings...)
	return c, fr
}

// h2Request writes a GET for path on stream id, with fields after the
// pseudo-fields, ending the stream when end.
func h2Request(t *testing.T, fr *http2.Framer, id uint32, path string, end bool, fields ...[2]string) {
	t.Helper()
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	all := append([][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "a.test"}, {":path", path}}, fields...)
	for _, f := range all {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// h2Until reads frames until match returns true, failing on an error or the end of the connection.
func h2Until(t *testing.T, fr *http2.Framer, what string, match func(http2.Frame) bool) http2.Frame {
	t.Helper()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// stuckHandler never answers: it waits until the test releases it, ignoring resets.
type stuckHandler struct{ release chan struct{} }

func (h stuckHandler) ServeH2(*H2Stream) { <-h.release }

// TestH2RefusedAndRapidReset: a stream past MAX_CONCURRENT_STREAMS is refused with
// RST_STREAM(REFUSED_STREAM); a client that resets its streams while their handlers still run
// (rapid reset) is disconnected with GOAWAY(ENHANCE_YOUR_CALM) once four times that many run.
func TestH2RefusedAndRapidReset(t *testing.T) {
	h := stuckHandler{release: make(chan struct{})}
	addr := h2FrontWith(t, H2Limits{MaxConcurrentStreams: 2}, h)
	t.Cleanup(func() { close(h.release) }) // runs before h2FrontWith's cleanup
	_, fr := h2Dial(t, addr)
	h2Request(t, fr, 1, "/a", true)
	h2Request(t, fr, 3, "/b", true)
	h2Request(t, fr, 5, "/c", true)
	rst := h2Until(t, fr, "RST_STREAM", func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
	if rst.StreamID != 5 || rst.ErrCode != http2.ErrCodeRefusedStream {
		t.Fatalf("third stream: RST_STREAM %d %v, want 5 REFUSED_STREAM", rst.StreamID, rst.ErrCode)
	}
	// Reset each stream at once: handlers keep running, streams close.
	fr.WriteRSTStream(1, http2.ErrCodeCancel)
	fr.WriteRSTStream(3, http2.ErrCodeCancel)
	id := uint32(7)
	for range 4 * 2 {
		h2Request(t, fr, id, "/r", true)
		fr.WriteRSTStream(id, http2.ErrCodeCancel)
		id += 2
	}
	ga := h2Until(t, fr, "GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", ga.ErrCode)
	}
}

// TestH2IdleTimeout: a connection with no open stream for the idle timeout gets GOAWAY(NO_ERROR)
// naming the last stream served, then ends; one with a stream open does not.
func TestH2IdleTimeout(t *testing.T) {
	addr := h2FrontWith(t, H2Limits{IdleTimeout: 300 * time.Millisecond}, echoForwarder{})
	_, fr := h2Dial(t, addr)
	h2Request(t, fr, 1, "/x", true)
	h2Until(t, fr, "the answer's end", func(f http2.Frame) bool {
		return f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream)
	})
	start := time.Now()
	ga := h2Until(t, fr, "GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v last %d, want NO_ERROR last 1", ga.ErrCode, ga.LastStreamID)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("GOAWAY after %v, before the idle timeout", d)
	}
	if _, err := fr.ReadFrame(); err == nil {
		t.Fatal("connection still open after GOAWAY")
	}
}

// TestH2FlowControl: a response larger than the client's windows waits for WINDOW_UPDATE and
// arrives whole, in DATA frames no larger than the client's SETTINGS_MAX_FRAME_SIZE and never
// past the window.
func TestH2FlowControl(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB
	h := h2HandlerFunc(func(st *H2Stream) {
		st.WriteHead([]hpack.HeaderField{{Name: ":status", Value: "200"}}, false)
		st.Write([]byte(body), true)
	})
	addr := h2FrontWith(t, H2Limits{}, h)
	_, fr := h2Dial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
	h2Request(t, fr, 1, "/big", true)
	got, win := 0, 1000 // the stream's window; the connection's is 65535
	connWin := 65535
	for got < len(body) {
		f := h2Until(t, fr, "DATA", func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
		n := len(f.Data())
		if n > 16<<10 || n > win || n > connWin {
			t.Fatalf("DATA of %d bytes with windows %d/%d", n, win, connWin)
		}
		if string(f.Data()) != body[got:got+n] {
			t.Fatalf("DATA at %d differs", got)
		}
		got += n
		win -= n
		connWin -= n
		if win == 0 && got < len(body) {
			fr.WriteWindowUpdate(1, 3000)
			win += 3000
			fr.WriteWindowUpdate(0, 3000)
			connWin += 3000
		}
		if f.StreamEnded() != (got == len(body)) {
			t.Fatalf("END_STREAM %v at %d of %d", f.StreamEnded(), got, len(body))
		}
	}
}

type h2HandlerFunc func(st *H2Stream)

func (f h2HandlerFunc) ServeH2(st *H2Stream) { f(st) }

// TestH2StreamBufferBounded: body bytes read while more arrive, so that the stream's buffer is
// never empty, keep it within twice the unread amount (the unread bytes move down before it
// grows), and come out in order.
func TestH2StreamBufferBounded(t *testing.T) {
	c := &h2Conn{srv: NewH2Server(nil, H2Limits{}, nil), streams: map[uint32]*H2Stream{}}
	st := &H2Stream{c: c, id: 1, state: h2Open, recvWin: 1 << 30}
	st.cond.L = &c.mu
	c.recvWin = 1 << 30
	c.fr = http2.NewFramer(io.Discard, nil)
	var in, out byte
	chunk := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = in
			in++
		}
		return b
	}
	c.mu.Lock()
	st.take(chunk(16 << 10))
	bound := max(cap(st.rbuf), 64<<10) // pooled buffers may come larger
	c.mu.Unlock()
	buf := make([]byte, 1000)
	for range 20000 {
		n, err := st.Read(buf)
		if err != nil || n != len(buf) {
			t.Fatalf("read %d, %v", n, err)
		}
		for _, b := range buf[:n] {
			if b != out {
				t.Fatalf("byte %d, want %d", b, out)
			}
			out++
		}
		c.mu.Lock()
		st.take(chunk(n))
		if cap(st.rbuf) > bound {
			t.Fatalf("buffer grew to %d bytes for 16 KiB unread", cap(st.rbuf))
		}
		c.mu.Unlock()
	}
}

// TestH2UploadBounded: a 32 MiB request body read in small pieces while it arrives comes whole,
// and the stream's buffer stays within twice its flow-control window.
func TestH2UploadBounded(t *testing.T) {
	const size = 32 << 20
	var maxCap int
	var got int64
	h := h2HandlerFunc(func(st *H2Stream) {
		buf := make([]byte, 1000)
		for {
			n, err := st.Read(buf)
			got += int64(n)
			st.c.mu.Lock()
			maxCap = max(maxCap, cap(st.rbuf))
			st.c.mu.Unlock()
			if err != nil {
				break
			}
		}
		st.WriteHead([]hpack.HeaderField{{Name: ":status", Value: "204"}}, true)
	})
	addr := h2FrontWith(t, H2Limits{}, h)
	tr := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "a.test"}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	resp, err := client.Post("https://"+addr+"/up", "application/octet-stream", &patternReader{n: size})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || got != size {
		t.Fatalf("status %d, server read %d of %d bytes", resp.StatusCode, got, size)
	}
	if maxCap > 2*DefaultH2StreamWindow {
		t.Fatalf("stream buffer grew to %d bytes (window %d)", maxCap, DefaultH2StreamWindow)
	}
	t.Logf("largest stream buffer: %d bytes", maxCap)
}

// TestH2HeadMemo: header blocks reused from the memo decode, with the
// client's decoder kept across them, to exactly the fields written, whatever
// blocks came between (a new Date inserted into the table shifts every
// dynamic index; a table size change; a sensitive field), and the memo is
// used for a repeated head once its fields are all in the table.
func TestH2HeadMemo(t *testing.T) {
	c := &h2Conn{}
	c.enc = hpack.NewEncoder(&c.hbuf)
	dec := hpack.NewDecoder(4096, nil)
	head := func(date string, extra ...hpack.HeaderField) []hpack.HeaderField {
		return append([]hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "server", Value: "nginx"},
			{Name: "date", Value: date}, {Name: "content-type", Value: "text/plain"}, {Name: "content-length", Value: "128"},
			{Name: "etag", Value: `"6756a0a0-80"`}}, extra...)
	}
	a, b := head("Mon, 07 Dec 2026 17:30:00 GMT"), head("Mon, 07 Dec 2026 17:30:01 GMT")
	secret := head("Mon, 07 Dec 2026 17:30:01 GMT", hpack.HeaderField{Name: "set-cookie", Value: "s=1", Sensitive: true})
	steps := []struct {
		fields   []hpack.HeaderField
		resize   uint32 // before it: the client's SETTINGS_HEADER_TABLE_SIZE
		memoized bool   // the block must come from the memo
	}{
		{fields: a}, {fields: a}, {fields: a, memoized: true}, {fields: b}, {fields: b}, {fields: a},
		{fields: a}, {fields: a, memoized: true}, {fields: b, memoized: false}, {fields: b},
		{fields: b, resize: 1024}, {fields: b}, {fields: b, memoized: true}, {fields: secret}, {fields: b},
		{fields: b, memoized: true},
		// A table too small for the head: every block evicts and inserts.
		{fields: a, resize: 200}, {fields: b}, {fields: a}, {fields: a}, {fields: b},
	}
	for i, s := range steps {
		if s.resize != 0 {
			c.enc.SetMaxDynamicTableSize(s.resize)
			c.memo.ok = false // as the SETTINGS handling does
		}
		hit := c.memo.ok && c.memo.same(s.fields)
		if s.memoized && !hit {
			t.Fatalf("step %d: a repeated all-indexed head was encoded again", i)
		}
		block := c.encodeHead(s.fields)
		got, err := dec.DecodeFull(block)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if len(got) != len(s.fields) {
			t.Fatalf("step %d: decoded %v, want %v", i, got, s.fields)
		}
		for j := range got {
			if got[j].Name != s.fields[j].Name || got[j].Value != s.fields[j].Value {
				t.Fatalf("step %d (memo %v): field %d decoded %v, want %v", i, hit, j, got[j], s.fields[j])
			}
		}
	}
}

// The fields of an answer are views of the server's read buffer, names in
// the server's case, until the connection encodes them; what the encoder's
// table or the block memo keeps must not change when that buffer is read
// into again, and the names go out in lower case.
func TestH2HeadBorrowedValues(t *testing.T) {
	c := &h2Conn{}
	c.enc = hpack.NewEncoder(&c.hbuf)
	dec := hpack.NewDecoder(4096, nil)
	buf := make([]byte, 0, 128)
	answer := func(dateName, date, etagName, etag string) {
		// The server's next answer, read into the same buffer.
		buf = append(append(append(append(buf[:0], dateName...), date...), etagName...), etag...)
		a, b, c2 := len(dateName), len(dateName)+len(date), len(dateName)+len(date)+len(etagName)
		fs := []field{{buf[:a], buf[a:b]}, {buf[b:c2], buf[c2:]}}
		var st h2stream
		block := c.encodeHead(st.prepareHead(200, fs, 0, nil))
		got, err := dec.DecodeFull(block)
		if err != nil {
			t.Fatal(err)
		}
		want := [][2]string{{":status", "200"}, {strings.ToLower(dateName), date}, {strings.ToLower(etagName), etag}}
		for i, f := range got {
			if i >= len(want) || f.Name != want[i][0] || f.Value != want[i][1] {
				t.Fatalf("decoded %v, want %q", got, want)
			}
		}
	}
	for range 3 {
		answer("Date", "Mon, 07 Dec 2026 17:30:00 GMT", "ETag", `"aaaa"`)
		answer("date", "Mon, 07 Dec 2026 17:30:01 GMT", "etag", `"bbbb"`)
	}
	answer("DATE", "Mon, 07 Dec 2026 17:30:01 GMT", "ETAG", `"bbbb"`)
	answer("Date", "Mon, 07 Dec 2026 17:30:01 GMT", "Etag", `"cccc"`)
	answer("Etag", `"dddd"`, "Date", "Mon, 07 Dec 2026 17:30:02 GMT") // the places swapped
}

func TestIndexedOnly(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{nil, false},
		{[]byte{0x88}, true},
		{[]byte{0x88, 0xbe, 0xff, 0x05}, true},            // 0xff: index 127 + 5
		{[]byte{0x88, 0xff, 0x80, 0x01}, true},            // two continuation bytes
		{[]byte{0x88, 0xff}, false},                       // cut short
		{[]byte{0x88, 0xff, 0x80}, false},                 // cut short
		{[]byte{0x88, 0x40, 0x01, 'a', 0x01, 'b'}, false}, // literal with incremental indexing
		{[]byte{0x3f, 0xe1, 0x1f, 0x88}, false},           // table size update
		{[]byte{0x88, 0x0f, 0x2b, 0x01, 'x'}, false},      // literal without indexing
	} {
		if got := indexedOnly(c.b); got != c.want {
			t.Errorf("indexedOnly(% x) = %v, want %v", c.b, got, c.want)
		}
	}
}
