package proxy

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"testing"
	"time"
)

// manyFields is a head with more fields than most, parsed into a reused
// record before the fuzzed input: what it left must not show through.
var manyFields = []byte("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nContent-Length: 7\r\n" +
	"Transfer-Encoding: chunked\r\nConnection: close, upgrade\r\n\r\n")

// FuzzParseResponseHead: no panic on any bytes; an accepted head has a valid
// status, only valid fields, a Content-Length that is one of its fields', and
// parses the same into a reused record as into a fresh one.
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 304 \r\nETag: \"x\"\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"HTTP/2.0 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
		string(manyFields),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fresh, reused respHead
		err := parseResponseHead(raw, &fresh)
		if e := parseResponseHead(manyFields, &reused); e != nil {
			t.Fatal(e)
		}
		if err2 := parseResponseHead(raw, &reused); (err == nil) != (err2 == nil) {
			t.Fatalf("fresh %v, reused %v", err, err2)
		}
		if err != nil {
			return
		}
		if fresh.respInfo.status != reused.respInfo.status || fresh.nFields != reused.nFields || fresh.cl != reused.cl ||
			fresh.te != reused.te || fresh.chunked != reused.chunked || fresh.connClose != reused.connClose ||
			fresh.connUpg != reused.connUpg || fresh.http11 != reused.http11 || !bytes.Equal(fresh.reason, reused.reason) {
			t.Fatalf("reused record differs: %+v / %+v", fresh.respInfo, reused.respInfo)
		}
		if !bytes.Equal(fresh.conn, reused.conn) {
			t.Fatalf("connection %q / %q", fresh.conn, reused.conn)
		}
		for i := range fresh.nFields { // those past nFields are never read
			a, b := fresh.fields[i], reused.fields[i]
			if !bytes.Equal(a.name, b.name) || !bytes.Equal(a.value, b.value) {
				t.Fatalf("field %d: %q / %q", i, a, b)
			}
		}
		if fresh.status < 100 || fresh.status > 999 || !bytes.HasSuffix(raw, []byte("\r\n\r\n")) {
			t.Fatalf("accepted status %d of %q", fresh.status, raw)
		}
		sawCL := fresh.cl < 0
		var conn []byte
		for _, fl := range fresh.fields[:fresh.nFields] {
			if bytes.EqualFold(fl.name, []byte("connection")) {
				conn = fl.value
			}
			if len(fl.name) == 0 || bytes.ContainsAny(fl.value, "\r\n\x00") {
				t.Fatalf("accepted field %q", fl)
			}
			for _, c := range fl.name {
				if !isTchar(c) {
					t.Fatalf("accepted field name %q", fl.name)
				}
			}
			if bytes.EqualFold(fl.name, []byte("content-length")) {
				if n, err := strconv.ParseInt(string(fl.value), 10, 64); err == nil && n == fresh.cl {
					sawCL = true
				}
			}
		}
		if !sawCL {
			t.Fatalf("Content-Length %d is no field's value", fresh.cl)
		}
		if !bytes.Equal(conn, fresh.conn) {
			t.Fatalf("connection %q, the last Connection field says %q", fresh.conn, conn)
		}
	})
}

// bufConn is a net.Conn that only collects what is written to it.
type bufConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *bufConn) Write(p []byte) (int, error)      { return c.buf.Write(p) }
func (c *bufConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzRelayChunked: no panic on any bytes; relayed as it is, an accepted body
// goes out byte for byte as it came, and unchunked, its data is what a plain
// chunked decoder reads from that; both modes accept the same inputs.
func FuzzRelayChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"3;ext=1\r\nabc\r\n2 ; x\r\nde\r\n0\r\nTrailer-A: 1\r\n\r\nnext",
		"A\r\n0123456789\r\n0\r\n\r\n",
		"5\nhello\r\n0\r\n\r\n",
		"5\r\nhello0\r\n\r\n",
		"fffffffffffffffff\r\n",
		"0\r\nBad Trailer\r\n\r\n",
		"1\r\nx\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		relay := func(dechunk bool) ([]byte, int, error) {
			r := bytes.NewReader(in)
			br := bufio.NewReaderSize(r, 64) // small: overlong lines fill it
			var out bufConn
			n, err := relayChunked(&out, br, dechunk, time.Second, 0)
			if n != int64(out.buf.Len()) {
				t.Fatalf("counted %d, wrote %d", n, out.buf.Len())
			}
			return out.buf.Bytes(), len(in) - r.Len() - br.Buffered(), err
		}
		raw, used, err := relay(false)
		data, _, err2 := relay(true)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("as is: %v, unchunked: %v", err, err2)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(raw, in[:used]) {
			t.Fatalf("relayed %q, consumed %q", raw, in[:used])
		}
		if want := plainDechunk(t, raw); !bytes.Equal(data, want) {
			t.Fatalf("unchunked %q, want %q", data, want)
		}
	})
}

// plainDechunk reads the data of a chunked body already known to be valid.
func plainDechunk(t *testing.T, b []byte) []byte {
	var data []byte
	for {
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			t.Fatalf("no chunk line in %q", b)
		}
		end := 0
		for end < len(line) && bytes.IndexByte([]byte("0123456789abcdefABCDEF"), line[end]) >= 0 {
			end++
		}
		size, err := strconv.ParseInt(string(line[:end]), 16, 64)
		if err != nil {
			t.Fatalf("chunk line %q: %v", line, err)
		}
		if size == 0 {
			return data
		}
		data = append(data, rest[:size]...)
		b = rest[size+2:]
	}
}
