package bench

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	big := strings.Repeat("x", 70000)
	tests := []struct {
		name      string
		in        string
		status    int
		bodyLen   int64
		keepAlive bool
		rest      string // what must be left unread
		wantErr   bool
	}{
		{name: "content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", status: 200, bodyLen: 5, keepAlive: true, rest: "NEXT"},
		{name: "lf only, no reason", in: "HTTP/1.1 200\nContent-Length: 2\n\nhi", status: 200, bodyLen: 2, keepAlive: true},
		{name: "big body", in: "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + big, status: 200, bodyLen: 70000, keepAlive: true},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\na\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT", status: 200, bodyLen: 15, keepAlive: true, rest: "NEXT"},
		{name: "chunked wins over length", in: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", status: 200, bodyLen: 3, keepAlive: true},
		{name: "connection close", in: "HTTP/1.1 503 Busy\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n", status: 503, keepAlive: false},
		{name: "http/1.0 default close", in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", status: 200, bodyLen: 1, keepAlive: false},
		{name: "http/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", status: 200, bodyLen: 1, keepAlive: true},
		{name: "http/1.0 chunked is faulty", in: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", wantErr: true},
		{name: "until eof", in: "HTTP/1.1 200 OK\r\n\r\nabcdef", status: 200, bodyLen: 6, keepAlive: false},
		{name: "204 no body", in: "HTTP/1.1 204 No Content\r\n\r\nNEXT", status: 204, keepAlive: true, rest: "NEXT"},
		{name: "304 ignores length", in: "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", status: 304, keepAlive: true},
		{name: "100 continue skipped", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", status: 201, bodyLen: 2, keepAlive: true},
		{name: "same length twice", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", status: 200, bodyLen: 2, keepAlive: true},
		{name: "conflicting lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk", wantErr: true},
		{name: "bad length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: true},
		{name: "short body", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wantErr: true},
		{name: "bad status", in: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: true},
		{name: "not http", in: "SSH-2.0-OpenSSH\r\n\r\n", wantErr: true},
		{name: "header without colon", in: "HTTP/1.1 200 OK\r\nbogus\r\n\r\n", wantErr: true},
		{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: true},
		{name: "chunk without crlf", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", wantErr: true},
		{name: "truncated headers", in: "HTTP/1.1 200 OK\r\nContent-Le", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "huge header line", in: "HTTP/1.1 200 OK\r\nX: " + big + "\r\n\r\n", wantErr: true},
		{name: "too many 1xx", in: strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 20), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.in), 4096)
			ri, err := readResponse(br)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", ri)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if ri.status != tc.status || ri.bodyLen != tc.bodyLen || ri.keepAlive != tc.keepAlive {
				t.Fatalf("got %+v, want status %d bodyLen %d keepAlive %v", ri, tc.status, tc.bodyLen, tc.keepAlive)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != tc.rest {
				t.Fatalf("left %q unread, want %q", rest, tc.rest)
			}
		})
	}
}

func TestReadResponseEOFBetweenResponses(t *testing.T) {
	br := bufio.NewReader(strings.NewReader(""))
	if _, err := readResponse(br); !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want io.EOF (peer closed an idle connection)", err)
	}
}

// FuzzReadResponse feeds arbitrary bytes to the parser. It must not panic or read past what
// it was given, and where net/http also reads the whole response it must agree on the
// status and the body length.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil eof",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cr := &countingReader{r: bytes.NewReader(in)}
		br := bufio.NewReaderSize(cr, 1024)
		ri, err := readResponse(br)
		consumed := cr.n - int64(br.Buffered())
		if consumed < 0 || consumed > int64(len(in)) {
			t.Fatalf("consumed %d of %d bytes", consumed, len(in))
		}
		if err != nil {
			return
		}
		if ri.bodyLen < 0 || ri.bodyLen > consumed {
			t.Fatalf("body length %d but only %d bytes consumed", ri.bodyLen, consumed)
		}
		if ri.status < 100 || ri.status > 999 {
			t.Fatalf("status %d", ri.status)
		}
		// Differential check against net/http on what both accept.
		resp, herr := http.ReadResponse(bufio.NewReader(bytes.NewReader(in)), nil)
		if herr != nil || resp.StatusCode < 200 {
			return // net/http hands 1xx responses to the caller; we skip them
		}
		body, herr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if herr != nil {
			return
		}
		if resp.StatusCode != ri.status {
			t.Fatalf("status %d, net/http says %d", ri.status, resp.StatusCode)
		}
		if int64(len(body)) != ri.bodyLen {
			t.Fatalf("body length %d, net/http says %d (%s)", ri.bodyLen, len(body), strconv.Quote(string(in)))
		}
	})
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
