package proxy

import (
	"halb/internal/poll"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// BenchmarkIdleHTTPConn reports what one idle keep-alive HTTP connection
// costs the proxy once it has parked without server connections, after one
// request: live heap (live-B/conn) and runtime memory outside the heap, such
// as poll records (other-B/conn). The clients are raw blocking sockets
// outside Go's poller, so the figures count the proxy's side only. Run with
// -benchtime=9000x for 9000 connections; halb bench --idle measures the RSS
// of the whole process against HAProxy's.
func BenchmarkIdleHTTPConn(b *testing.B) {
	be := fastBackend(b, make([]byte, 128))
	s := NewServer(zap.NewNop(), Global{LogSample: 1000})
	if err := s.Apply([]ServiceSpec{{Name: "h", Listen: lo4, Mode: ModeHTTP, Pool: pool(be)}}); err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(b.Context())
	ap := netip.MustParseAddrPort(s.Addr("h").String())
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	req := []byte("GET /x HTTP/1.1\r\nHost: bench\r\n\r\n")
	fds := make([]int, 0, b.N)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	buf := make([]byte, 4096)
	b.ResetTimer()
	for range b.N {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		fds = append(fds, fd)
		if err := unix.Connect(fd, sa); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Write(fd, req); err != nil {
			b.Fatal(err)
		}
		if n, err := unix.Read(fd, buf); err != nil || n < 128 {
			b.Fatalf("response: %d %v", n, err)
		}
	}
	b.StopTimer()
	// Measure once every connection has parked, let its server connection go
	// and detached (after backendHold).
	if !poll.Until(10*time.Second, 10*time.Millisecond, func() bool { return allIdle(s, b.N) }) {
		b.Fatal("the connections did not all go idle")
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := func(a, b0 uint64) float64 { return float64(int64(a)-int64(b0)) / float64(b.N) }
	b.ReportMetric(per(after.HeapAlloc, before.HeapAlloc), "live-B/conn")
	b.ReportMetric(per(after.OtherSys, before.OtherSys), "other-B/conn")
}

// allIdle reports whether s holds n HTTP connections, all parked, detached,
// with no server connection.
func allIdle(s *Server, n int) bool {
	ses := s.sessionList()
	if len(ses) != n {
		return false
	}
	for _, se := range ses {
		se.mu.Lock()
		h, detached := se.h1, se.client == nil
		se.mu.Unlock()
		if h == nil || !detached || h.hasBackends() {
			return false
		}
	}
	return true
}
