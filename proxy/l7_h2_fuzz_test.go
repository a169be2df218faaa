package proxy

import (
	"bytes"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// memConn is a connection whose reads return in, then the end, and whose writes are dropped.
type memConn struct {
	in *bytes.Reader
}

func (c *memConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// h2Frames returns a client's frames after the preface: SETTINGS, then what add writes.
func h2Frames(add func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer)) []byte {
	var b, hb bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	add(fr, hpack.NewEncoder(&hb), &hb)
	return b.Bytes()
}

func h2Head(enc *hpack.Encoder, hb *bytes.Buffer, fields ...string) []byte {
	hb.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return append([]byte(nil), hb.Bytes()...)
}

// FuzzH2Conn feeds any bytes after the client preface to the HTTP/2 server, with streams
// answered by echoForwarder: nothing panics, and the connection's end (the input's) ends every
// stream and ServeConn returns.
func FuzzH2Conn(f *testing.F) {
	get := []string{":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", "/x"}
	post := []string{":method", "POST", ":scheme", "https", ":authority", "a.test", ":path", "/p", "content-length", "5"}
	f.Add(h2Frames(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Head(enc, hb, get...), EndStream: true, EndHeaders: true})
	}))
	f.Add(h2Frames(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Head(enc, hb, post...), EndHeaders: true})
		fr.WriteData(1, false, []byte("he"))
		fr.WriteWindowUpdate(1, 1000)
		fr.WriteData(1, true, []byte("llo"))
		fr.WritePing(false, [8]byte{1})
	}))
	f.Add(h2Frames(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		blk := h2Head(enc, hb, get...)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blk[:3], EndStream: true})
		fr.WriteContinuation(3, true, blk[3:])
		fr.WriteRSTStream(3, http2.ErrCodeCancel)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: h2Head(enc, hb, get...), EndHeaders: true,
			Priority: http2.PriorityParam{StreamDep: 5}})
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
		fr.WriteGoAway(5, http2.ErrCodeNo, nil)
	}))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := NewH2Server(zap.NewNop(), H2Limits{MaxConcurrentStreams: 4}, echoForwarder{})
		c := &memConn{in: bytes.NewReader(append([]byte(http2.ClientPreface), in...))}
		done := make(chan struct{})
		go func() {
			s.ServeConn(c, nil, nil)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("ServeConn did not return after the input ended")
		}
	})
}
