package admin

import (
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"
)

// bigSource is a farm of 100 services with 10 backends each and 4 VRRP
// instances.
func bigSource() *fakeSource {
	f := newFakeSource()
	f.services = nil
	for i := 0; i < 100; i++ {
		s := Service{Name: fmt.Sprintf("198.18.%d.%d:80", i/250, i%250), Listen: "198.18.0.10:80", Mode: "http", State: StateUp,
			Total: 1e6, Requests: [5]uint64{0, 1e6, 10, 100, 1}}
		for j := 0; j < 10; j++ {
			s.Backends = append(s.Backends, Backend{Name: fmt.Sprintf("198.19.%d.%d:80", i, j), Addr: "x", State: StateUp,
				Weight: 100, ConfiguredWeight: 100, Total: 1e5, LastCheck: Check{At: t0, OK: true, Reason: "HTTP 200", Duration: time.Millisecond},
				Since: t0.Add(-time.Hour), CheckFailures: map[string]uint64{"timeout": 3}})
		}
		f.services = append(f.services, s)
	}
	for i := 0; i < 3; i++ {
		v := f.vrrp[0]
		v.Name = fmt.Sprintf("VI_%d", i+2)
		f.vrrp = append(f.vrrp, v)
	}
	return f
}

func BenchmarkParseCommand(b *testing.B) {
	for b.Loop() {
		if _, err := ParseCommand("set weight 198.18.0.10:80/198.18.0.11:80 100\n"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSocketRoundTrip(b *testing.B) {
	dir := b.TempDir()
	s := NewServer(zap.NewNop(), newFakeSource(), &fakeController{}, Options{SocketPath: dir + "/h.sock"})
	if err := s.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		c, err := net.Dial("unix", dir+"/h.sock")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.WriteString(c, "show info\n")
		if _, err := io.ReadAll(c); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

func benchHandler(b *testing.B, path string) {
	s := NewServer(zap.NewNop(), bigSource(), nil, Options{Now: func() time.Time { return t0 }})
	h := s.Handler()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		b.SetBytes(int64(w.Body.Len()))
	}
}

// 100 services x 10 backends.
func BenchmarkMetricsScrape1000Backends(b *testing.B) { benchHandler(b, "/metrics") }

// 100 services x 10 backends.
func BenchmarkStatsPage1000Backends(b *testing.B) { benchHandler(b, "/") }
