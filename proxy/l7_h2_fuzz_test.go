package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
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

// FuzzH2Head holds h2HeadReader to x/net's Framer with ReadMetaHeaders set
// (readMetaFrame): the same frames in, the same fields, Truncated and
// errors out, block after block (the two decoders' tables stay in step).
func FuzzH2Head(f *testing.F) {
	get := []string{":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", "/x", "accept", "*/*"}
	f.Add(h2Frames(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Head(enc, hb, get...), EndStream: true, EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h2Head(enc, hb, get...), EndStream: true, EndHeaders: true})
		blk := h2Head(enc, hb, append(get, "cookie", "a=1", "cookie", "b=2")...)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: blk[:4]})
		fr.WriteContinuation(5, false, blk[4:9])
		fr.WriteContinuation(5, true, blk[9:])
	}))
	f.Add(h2Frames(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		// Invalid fields: upper case, a pseudo-field after a regular
		// one, a bad value, an unknown and a repeated pseudo-field,
		// request and response pseudo-fields together.
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Head(enc, hb, append(get, "X-Up", "1")...), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h2Head(enc, hb, "accept", "*/*", ":path", "/"), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: h2Head(enc, hb, append(get, "x", "a\nb")...), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: h2Head(enc, hb, ":bogus", "1", ":path", "/"), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 9, BlockFragment: h2Head(enc, hb, ":path", "/", ":path", "/"), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 11, BlockFragment: h2Head(enc, hb, ":status", "200", ":path", "/"), EndHeaders: true})
		blk := h2Head(enc, hb, "X-Up", "1", "a", "b")
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 13, BlockFragment: blk[:3]})
		fr.WriteContinuation(13, true, blk[3:])
	}))
	f.Add(h2Frames(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		// Over the header list budget (512): truncated, then a trailer
		// field counted against the trailers' budget, then a fragment
		// far over what is left.
		big := strings.Repeat("v", 300)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Head(enc, hb, append(get, "a", big, "b", big)...), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h2Head(enc, hb, append(get, "trailer", "a, b, c")...), EndHeaders: true})
		// 214 bytes of get, 268 of a: 30 left of the headers' budget,
		// which the trailer field (33) would pass, not the trailers'.
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: h2Head(enc, hb, append(get, "a", strings.Repeat("v", 235), "trailer", "x")...), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: h2Head(enc, hb, append(get, "a", big, "b", big, "c", big, "d", big)...)})
		fr.WriteContinuation(7, true, h2Head(enc, hb, "e", big+big+big))
	}))
	f.Fuzz(func(t *testing.T, in []byte) {
		const table, list = 4096, 512
		ref := http2.NewFramer(io.Discard, bytes.NewReader(in))
		ref.MaxHeaderListSize = list
		ref.ReadMetaHeaders = hpack.NewDecoder(table, nil)
		fr := http2.NewFramer(io.Discard, bytes.NewReader(in))
		ours := newH2HeadReader(fr, table, list)
		for i := 0; i < 100; i++ {
			want, werr := ref.ReadFrame()
			got, err := fr.ReadFrame()
			if hf, ok := got.(*http2.HeadersFrame); ok && err == nil {
				got, err = ours.read(hf)
			}
			if d := sameH2Error(werr, err); d != "" {
				t.Fatalf("frame %d: %s", i, d)
			}
			if werr != nil {
				var se http2.StreamError
				if errors.As(werr, &se) {
					continue // the connection reads on
				}
				return
			}
			wm, wok := want.(*http2.MetaHeadersFrame)
			gm, gok := got.(*http2.MetaHeadersFrame)
			if wok != gok {
				t.Fatalf("frame %d: %T, want %T", i, got, want)
			}
			if !wok {
				continue
			}
			if gm.StreamID != wm.StreamID || gm.StreamEnded() != wm.StreamEnded() || gm.Truncated != wm.Truncated ||
				!slices.Equal(gm.Fields, wm.Fields) {
				t.Fatalf("frame %d: stream %d ended %v truncated %v %v, want %d %v %v %v", i, gm.StreamID, gm.StreamEnded(),
					gm.Truncated, gm.Fields, wm.StreamID, wm.StreamEnded(), wm.Truncated, wm.Fields)
			}
		}
	})
}

// sameH2Error describes how err differs from want: in kind, and for the
// HTTP/2 errors in code (and stream); other errors (the Framer's own, the
// input's end) by text.
func sameH2Error(want, err error) string {
	var wc, gc http2.ConnectionError
	var ws, gs http2.StreamError
	switch {
	case want == nil && err == nil:
		return ""
	case want == nil || err == nil:
		return fmt.Sprintf("error %v, want %v", err, want)
	case errors.As(want, &wc):
		if !errors.As(err, &gc) || gc != wc {
			return fmt.Sprintf("error %v, want %v", err, want)
		}
	case errors.As(want, &ws):
		if !errors.As(err, &gs) || gs.StreamID != ws.StreamID || gs.Code != ws.Code {
			return fmt.Sprintf("error %v, want %v", err, want)
		}
	case err.Error() != want.Error():
		return fmt.Sprintf("error %v, want %v", err, want)
	}
	return ""
}
