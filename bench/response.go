package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// respInfo is what the load generator needs to know about one HTTP/1.x response.
type respInfo struct {
	status    int   // final status code (1xx interim responses are skipped)
	bodyLen   int64 // body bytes read (decoded length when chunked)
	keepAlive bool  // the connection may carry another request
}

// Parser limits. Responses come from the proxy under test, so they are untrusted bytes.
const (
	maxHeaderLines = 128
	maxInterim     = 8
	maxChunkSize   = 1 << 40
)

var (
	errMalformed = errors.New("malformed response")
)

// readResponse reads one HTTP/1.x response from br and discards its body, parsing just enough
// to find the response's end: the status line, Content-Length, Transfer-Encoding: chunked and
// Connection. A body without a length is read until EOF (and the connection is not reused).
// Header lines must fit br's buffer. It is written by hand because net/http.ReadResponse
// allocates a Response and header map per response, which would make the load generator, not
// the proxy, the bottleneck.
func readResponse(br *bufio.Reader) (respInfo, error) {
	for interim := 0; ; interim++ {
		ri, err := readOne(br)
		if err != nil {
			return ri, err
		}
		if ri.status >= 200 || ri.status == 101 {
			return ri, nil
		}
		if interim >= maxInterim {
			return ri, fmt.Errorf("read response: %w: too many 1xx responses", errMalformed)
		}
	}
}

func readOne(br *bufio.Reader) (respInfo, error) {
	var ri respInfo
	line, err := readLine(br)
	if err != nil {
		return ri, fmt.Errorf("read status line: %w", err)
	}
	minor, status, ok := parseStatusLine(line)
	if !ok {
		return ri, fmt.Errorf("read status line: %w: %q", errMalformed, trimQ(line))
	}
	ri.status = status
	ri.keepAlive = minor >= 1
	contentLength := int64(-1)
	chunked := false
	for n := 0; ; n++ {
		if n > maxHeaderLines {
			return ri, fmt.Errorf("read headers: %w: more than %d lines", errMalformed, maxHeaderLines)
		}
		line, err := readLine(br)
		if err != nil {
			return ri, fmt.Errorf("read headers: %w", err)
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return ri, fmt.Errorf("read headers: %w: %q", errMalformed, trimQ(line))
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			v, ok := parseDecimal(value)
			if !ok || (contentLength >= 0 && v != contentLength) {
				return ri, fmt.Errorf("read headers: %w: content-length %q", errMalformed, trimQ(value))
			}
			contentLength = v
		case asciiEqualFold(name, "transfer-encoding"):
			// The last coding decides; only "chunked" frames the body.
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = bytes.TrimSpace(value[i+1:])
			}
			chunked = asciiEqualFold(last, "chunked")
			if minor == 0 {
				// RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
				return ri, fmt.Errorf("read headers: %w: transfer-encoding in HTTP/1.0", errMalformed)
			}
		case asciiEqualFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				switch {
				case asciiEqualFold(tok, "close"):
					ri.keepAlive = false
				case asciiEqualFold(tok, "keep-alive") && minor == 0:
					ri.keepAlive = true
				}
			}
		}
	}
	switch {
	case status < 200 || status == 204 || status == 304:
		return ri, nil
	case chunked:
		n, err := readChunked(br)
		ri.bodyLen = n
		return ri, err
	case contentLength >= 0:
		n, err := br.Discard(int(contentLength))
		ri.bodyLen = int64(n)
		if err != nil {
			return ri, fmt.Errorf("read body: %w", noEOF(err))
		}
		return ri, nil
	default:
		ri.keepAlive = false
		n, err := io.Copy(io.Discard, br)
		ri.bodyLen = n
		if err != nil {
			return ri, fmt.Errorf("read body: %w", err)
		}
		return ri, nil
	}
}

// readChunked discards a chunked body and its trailers and returns the decoded length.
func readChunked(br *bufio.Reader) (int64, error) {
	var total int64
	for {
		line, err := readLine(br)
		if err != nil {
			return total, fmt.Errorf("read chunk size: %w", err)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, ok := parseHex(bytes.TrimSpace(line))
		if !ok {
			return total, fmt.Errorf("read chunk size: %w: %q", errMalformed, trimQ(line))
		}
		if size == 0 {
			break
		}
		n, err := br.Discard(int(size))
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("read chunk: %w", noEOF(err))
		}
		line, err = readLine(br)
		if err != nil {
			return total, fmt.Errorf("read chunk end: %w", err)
		}
		if len(line) != 0 {
			return total, fmt.Errorf("read chunk end: %w: data after chunk", errMalformed)
		}
	}
	for n := 0; ; n++ {
		if n > maxHeaderLines {
			return total, fmt.Errorf("read trailers: %w: more than %d lines", errMalformed, maxHeaderLines)
		}
		line, err := readLine(br)
		if err != nil {
			return total, fmt.Errorf("read trailers: %w", err)
		}
		if len(line) == 0 {
			return total, nil
		}
	}
}

// readLine returns one line without its LF or CRLF. The slice is only valid until the next
// read. A line longer than the reader's buffer is an error, and so is EOF before the LF
// (io.ErrUnexpectedEOF, or io.EOF when nothing at all was read).
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line longer than %d bytes", errMalformed, br.Size())
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseStatusLine parses "HTTP/1.x NNN[ reason]".
func parseStatusLine(line []byte) (minor, status int, ok bool) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' {
		return 0, 0, false
	}
	if line[7] < '0' || line[7] > '9' {
		return 0, 0, false
	}
	minor = int(line[7] - '0')
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 || (len(line) > 12 && line[12] != ' ') {
		return 0, 0, false
	}
	return minor, status, true
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | int64(d)
		if v > maxChunkSize {
			return 0, false
		}
	}
	return v, true
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func trimQ(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
