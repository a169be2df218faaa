package proxy

import (
	"io"
	"net/http"
	"strings"
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
