package proxy

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 to clients: a TLS connection that negotiated "h2" by ALPN is served
// by halb's own HTTP/2 server, written on golang.org/x/net/http2's Framer
// (frame parsing and checking, CONTINUATION assembly, the header-list limit)
// and its HPACK codec. h2c (cleartext HTTP/2) is not offered.
//
// Why not x/net/http2's Server: it runs every frame write through its
// connection goroutine (a channel message each), builds an http.Request and
// header maps per stream and flushes once or twice per response; on its own,
// answering from memory, it served 0.55x the requests per core that HAProxy
// served as a full proxy (docs/benchmarks.md). Here one goroutine reads the
// connection and handles every frame; each stream's handler runs in its own
// goroutine (it waits on a server) and writes its frames itself, under the
// connection's lock, into one buffer that a flush sends in one TLS write
// after the other streams ready to write have added theirs.
//
// Protections (docs/security.md): streams beyond MAX_CONCURRENT_STREAMS are
// refused; a client that resets streams faster than their handlers finish
// (rapid reset, CVE-2023-44487) is disconnected once 4x that many handlers
// run; header blocks past the header-list limit end the connection without
// being decoded (the Framer's CONTINUATION-flood defence, CVE-2023-45288);
// every window is bounded; a stream making no progress for WriteTimeout is
// reset.

// H2Handler serves one HTTP/2 stream, in the stream's own goroutine. When it
// returns the stream ends: a stream not ended by End or Reset is reset.
type H2Handler interface {
	ServeH2(st *H2Stream)
}

// H2Limits bound what one client connection may ask; zero fields take the defaults below.
type H2Limits struct {
	MaxConcurrentStreams      uint32        // streams open at once (SETTINGS_MAX_CONCURRENT_STREAMS)
	MaxHeaderListSize         int           // decoded header bytes of a request (SETTINGS_MAX_HEADER_LIST_SIZE)
	MaxDecoderHeaderTableSize uint32        // HPACK dynamic table for the client's headers
	MaxReadFrameSize          uint32        // largest frame accepted (SETTINGS_MAX_FRAME_SIZE)
	MaxUploadBufferPerStream  int32         // flow-control window per stream (request body buffered)
	MaxUploadBufferPerConn    int32         // flow-control window per connection
	IdleTimeout               time.Duration // no open stream for this long: GOAWAY and close
	WriteTimeout              time.Duration // a write to the client, or a stream, making no progress for this long: close, or reset
	CountError                func(kind string)
}

// HTTP/2 defaults (HAProxy's h2 defaults where it has one).
const (
	DefaultH2MaxConcurrentStreams = 100
	DefaultH2HeaderTableSize      = 4096
	DefaultH2MaxReadFrameSize     = 16 << 10
	DefaultH2StreamWindow         = 256 << 10
	DefaultH2ConnWindow           = 1 << 20
)

func (l H2Limits) withDefaults() H2Limits {
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = DefaultH2MaxConcurrentStreams
	}
	if l.MaxHeaderListSize <= 0 {
		l.MaxHeaderListSize = DefaultMaxHeaderSize
	}
	if l.MaxDecoderHeaderTableSize == 0 {
		l.MaxDecoderHeaderTableSize = DefaultH2HeaderTableSize
	}
	if l.MaxReadFrameSize == 0 {
		l.MaxReadFrameSize = DefaultH2MaxReadFrameSize
	}
	l.MaxReadFrameSize = min(max(l.MaxReadFrameSize, 16<<10), 1<<24-1)
	if l.MaxUploadBufferPerStream <= 0 {
		l.MaxUploadBufferPerStream = DefaultH2StreamWindow
	}
	if l.MaxUploadBufferPerConn <= 0 {
		l.MaxUploadBufferPerConn = DefaultH2ConnWindow
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultHTTPKeepAliveTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultClientTimeout
	}
	return l
}

// H2Server serves HTTP/2 client connections of one service.
type H2Server struct {
	lim H2Limits
	log *zap.Logger
	h   H2Handler

	mu    sync.Mutex
	conns map[*h2Conn]struct{}
	down  bool
}

// NewH2Server returns a server handing every stream to h.
func NewH2Server(log *zap.Logger, l H2Limits, h H2Handler) *H2Server {
	if log == nil {
		log = zap.NewNop()
	}
	return &H2Server{lim: l.withDefaults(), log: log.Named("h2"), h: h, conns: map[*h2Conn]struct{}{}}
}

// Shutdown sends GOAWAY on every connection being served: clients finish
// their streams and open no new one; a connection closes after its last
// stream. It does not wait for the connections to end.
func (s *H2Server) Shutdown() {
	s.mu.Lock()
	s.down = true
	conns := make([]*h2Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		c.goAway(http2.ErrCodeNo)
		c.mu.Unlock()
	}
}

// ServeConn serves nc, a TLS connection whose negotiated protocol is "h2",
// until the client goes, the connection fails or it is shut down, and
// returns when every stream's handler has returned. g, when not nil, is the
// connection under the TLS layer: each flush goes out in one sendto(2).
// owner is what H2Stream.Owner returns to the handlers.
func (s *H2Server) ServeConn(nc net.Conn, g *gatherConn, owner any) {
	c := &h2Conn{
		srv:       s,
		nc:        nc,
		g:         g,
		owner:     owner,
		streams:   map[uint32]*H2Stream{},
		sendWin:   65535,
		initWin:   65535,
		peerFrame: 16 << 10,
		recvWin:   65535,
	}
	c.wcond.L = &c.mu
	c.fr = http2.NewFramer((*h2Out)(c), nc)
	c.fr.SetReuseFrames()
	c.fr.SetMaxReadFrameSize(s.lim.MaxReadFrameSize)
	c.fr.MaxHeaderListSize = uint32(s.lim.MaxHeaderListSize)
	c.head = newH2HeadReader(c.fr, s.lim.MaxDecoderHeaderTableSize, uint32(s.lim.MaxHeaderListSize))
	c.enc = hpack.NewEncoder(&c.hbuf)
	s.mu.Lock()
	down := s.down
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.serve(down)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// h2Conn is one client connection. The reading goroutine (serve) owns the
// Framer's read side; everything else is guarded by mu, which every frame
// write takes (the Framer's write side and the HPACK encoder are shared by
// the streams' goroutines).
type h2Conn struct {
	srv   *H2Server
	nc    net.Conn
	g     *gatherConn
	owner any
	fr    *http2.Framer
	head  *h2HeadReader  // the request header blocks, read with the frames
	wg    sync.WaitGroup // the streams' handlers

	mu        sync.Mutex
	wcond     sync.Cond // wbuf has room, or a flush ended
	wbuf      []byte    // frames not yet flushed
	wbox      *[]byte   // ... and the box it goes back to h2Bufs in
	flushFn   func()    // c.flush
	flushing  bool
	werr      error // the connection failed: no more writes
	hbuf      bytes.Buffer
	enc       *hpack.Encoder
	memo      headMemo     // the last header block that left the encoder's table as it was
	vals      []ownedField // the last head's fields, by place (own)
	streams   map[uint32]*H2Stream
	maxID     uint32 // highest stream the client opened
	open      int    // streams in map (counted against MAX_CONCURRENT_STREAMS)
	running   int    // handlers not yet returned (reset streams included)
	sendWin   int64  // connection-level window for our DATA
	initWin   int64  // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame int    // the client's SETTINGS_MAX_FRAME_SIZE
	recvWin   int64  // what the client may still send on the connection
	unacked   int64  // body bytes consumed, not yet returned to the client
	away      bool   // GOAWAY sent or received: no new stream
	closing   bool   // close when the last stream ends (or now, if none)
}

// h2Out is the Framer's writer: frames are appended to the connection's
// buffer (c.mu is held by whoever writes a frame).
type h2Out h2Conn

func (o *h2Out) Write(p []byte) (int, error) {
	if o.wbuf == nil {
		o.wbuf, o.wbox = getH2Buf()
	}
	o.wbuf = append(o.wbuf, p...)
	return len(p), nil
}

var h2Bufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// getH2Buf returns an empty buffer and the box it came in. The box goes
// back with it (putH2Buf): boxing a slice anew to put it in the pool would
// be an allocation each time.
func getH2Buf() ([]byte, *[]byte) {
	box := h2Bufs.Get().(*[]byte)
	return (*box)[:0], box
}

// putH2Buf gives b back in box, unless it grew past what is worth keeping.
func putH2Buf(b []byte, box *[]byte) {
	if box != nil && cap(b) <= 2*h2BufMax {
		*box = b[:0]
		h2Bufs.Put(box)
	}
}

const (
	h2Preface  = http2.ClientPreface
	h2MaxWin   = math.MaxInt32
	h2BufMax   = 256 << 10 // a stream writing DATA waits while this much is pending
	h2CalmMult = 4         // handlers running beyond this many times MAX_CONCURRENT_STREAMS: ENHANCE_YOUR_CALM

	h2Linger      = time.Second // after a GOAWAY, read and drop what the client still sends this long
	h2LingerBytes = 1 << 20     // or this much, before closing
)

var (
	errH2ConnGone = errors.New("h2: connection closed")
	errH2Stalled  = errors.New("h2: stream made no progress")
	errH2Reset    = errors.New("h2: stream reset by the client")
	errH2Aborted  = errors.New("h2: stream reset")
)

func (c *h2Conn) count(kind string) {
	if f := c.srv.lim.CountError; f != nil {
		f(kind)
	}
}

// serve reads and handles frames until the connection ends.
func (c *h2Conn) serve(down bool) {
	lim := c.srv.lim
	defer c.teardown()
	c.nc.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
	var pre [len(h2Preface)]byte
	if _, err := io.ReadFull(c.nc, pre[:]); err != nil || string(pre[:]) != h2Preface {
		c.count("preface")
		return
	}
	c.mu.Lock()
	c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: lim.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: lim.MaxReadFrameSize},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(lim.MaxHeaderListSize)},
		http2.Setting{ID: http2.SettingHeaderTableSize, Val: lim.MaxDecoderHeaderTableSize},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(lim.MaxUploadBufferPerStream)},
	)
	if d := int64(lim.MaxUploadBufferPerConn) - c.recvWin; d > 0 {
		c.fr.WriteWindowUpdate(0, uint32(d))
		c.recvWin += d
	}
	if down {
		c.goAway(http2.ErrCodeNo)
	}
	c.kick()
	c.mu.Unlock()

	sawSettings := false
	for {
		f, err := c.fr.ReadFrame()
		if hf, ok := f.(*http2.HeadersFrame); ok && err == nil {
			f, err = c.head.read(hf)
		}
		if err == nil {
			if !sawSettings {
				if _, ok := f.(*http2.SettingsFrame); !ok {
					err = http2.ConnectionError(http2.ErrCodeProtocol)
				}
				sawSettings = true
			}
			if err == nil {
				c.mu.Lock()
				err = c.process(f)
				c.mu.Unlock()
			}
		}
		if err == nil {
			continue
		}
		var se http2.StreamError
		var ce http2.ConnectionError
		switch {
		case errors.As(err, &se):
			c.count("stream")
			c.mu.Lock()
			c.resetStream(se.StreamID, se.Code, errH2Aborted)
			c.mu.Unlock()
			continue
		case errors.As(err, &ce):
			c.count("conn")
			c.mu.Lock()
			c.goAway(http2.ErrCode(ce))
			c.mu.Unlock()
		case errors.Is(err, http2.ErrFrameTooLarge):
			c.count("frame_size")
			c.mu.Lock()
			c.goAway(http2.ErrCodeFrameSize)
			c.mu.Unlock()
		case isTimeout(err):
			// No open stream for the idle timeout (the read deadline is
			// only set then).
			c.mu.Lock()
			c.goAway(http2.ErrCodeNo)
			c.mu.Unlock()
		}
		return
	}
}

// teardown ends every stream, writes what is pending (a GOAWAY), closes the
// connection and waits for the handlers.
func (c *h2Conn) teardown() {
	c.mu.Lock()
	for _, st := range c.streams {
		c.closeStream(st, errH2ConnGone)
	}
	c.kick()
	for c.flushing {
		c.wcond.Wait()
	}
	linger := c.away && c.werr == nil
	if c.werr == nil {
		c.werr = errH2ConnGone
	}
	c.wcond.Broadcast()
	c.mu.Unlock()
	if linger {
		c.lingerClose()
	}
	c.nc.Close()
	c.wg.Wait()
}

// lingerClose ends the write side after a GOAWAY and reads what the client
// still sends, for up to h2Linger and h2LingerBytes, before the caller closes.
// Closing with unread bytes makes the kernel send a reset, which may discard
// the GOAWAY on its way; a client that is still writing (one being told off
// for resetting streams, or one whose request crossed an idle GOAWAY) would
// then see a broken connection instead of the reason. Go's HTTP/2 server and
// nginx's lingering_close do the same.
func (c *h2Conn) lingerClose() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(h2Linger))
	io.Copy(io.Discard, io.LimitReader(c.nc, h2LingerBytes))
}

// process handles one frame; c.mu is held. A StreamError or ConnectionError
// it returns is answered by the caller.
func (c *h2Conn) process(f http2.Frame) error {
	if c.closing && c.open == 0 {
		return io.EOF
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.settings(f)
	case *http2.MetaHeadersFrame:
		return c.headers(f)
	case *http2.DataFrame:
		return c.data(f)
	case *http2.WindowUpdateFrame:
		return c.windowUpdate(f)
	case *http2.RSTStreamFrame:
		st, idle := c.stream(f.StreamID)
		if idle {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if st != nil {
			c.closeStream(st, errH2Reset)
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			c.fr.WritePing(true, f.Data)
			c.kick()
		}
	case *http2.GoAwayFrame:
		c.away = true
		c.closing = true
		if c.open == 0 {
			return io.EOF
		}
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil // other frame types are ignored (RFC 9113 §5.5)
}

// stream returns the stream id, or nil with idle true when the client never
// opened it (nil and false: closed).
func (c *h2Conn) stream(id uint32) (st *H2Stream, idle bool) {
	if st = c.streams[id]; st != nil {
		return st, false
	}
	return nil, id > c.maxID
}

func (c *h2Conn) settings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.enc.SetMaxDynamicTableSize(min(s.Val, DefaultH2HeaderTableSize))
			c.memo.ok = false
		case http2.SettingInitialWindowSize:
			d := int64(s.Val) - c.initWin
			c.initWin = int64(s.Val)
			for _, st := range c.streams {
				st.sendWin += d
				if st.sendWin > h2MaxWin {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				if d > 0 {
					st.cond.Signal()
				}
			}
		case http2.SettingMaxFrameSize:
			c.peerFrame = int(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.fr.WriteSettingsAck()
	c.kick()
	return nil
}

func (c *h2Conn) windowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.sendWin += inc
		if c.sendWin > h2MaxWin {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		for _, st := range c.streams {
			if st.waitConn {
				st.cond.Signal()
			}
		}
		return nil
	}
	st, idle := c.stream(f.StreamID)
	if idle {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if st == nil {
		return nil // closed: a WINDOW_UPDATE may cross our END_STREAM
	}
	st.sendWin += inc
	if st.sendWin > h2MaxWin {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	st.cond.Signal()
	return nil
}

// headers opens a stream, or takes a request's trailers.
func (c *h2Conn) headers(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 != 1 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if st := c.streams[id]; st != nil {
		// Trailers: they must end the stream and carry no pseudo-field.
		// halb does not pass request trailers on (the server gets the body).
		if st.state != h2Open {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		return c.endBody(st)
	}
	if id <= c.maxID {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if c.away {
		return nil // past our GOAWAY: ignored
	}
	c.maxID = id
	if f.HasPriority() && f.Priority.StreamDep == id {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	lim := c.srv.lim
	if c.open >= int(lim.MaxConcurrentStreams) {
		c.count("refused")
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if c.running >= h2CalmMult*int(lim.MaxConcurrentStreams) {
		c.count("calm")
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	st := newH2Stream(c, id, f.Truncated)
	if !st.request(f) && !f.Truncated {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	st.cond.L = &c.mu
	st.state = h2Open
	st.sendWin = c.initWin
	st.recvWin = int64(lim.MaxUploadBufferPerStream)
	if f.StreamEnded() {
		st.state = h2HalfClosedRemote
		st.rerr = io.EOF
		st.NoBody = true
		if st.ContentLength > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
	}
	c.streams[id] = st
	c.open++
	c.running++
	if c.open == 1 {
		c.nc.SetReadDeadline(time.Time{})
	}
	c.wg.Add(1)
	if st.runFn == nil {
		st.runFn = st.run // bound once per record: go c.run(st) allocates a closure each time
	}
	go st.runFn()
	return nil
}

// request takes the request's pseudo-fields and fields from f and checks them
// (RFC 9113 §8.2, §8.3.1); false: malformed.
func (st *H2Stream) request(f *http2.MetaHeadersFrame) bool {
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			st.Method = hf.Value
		case ":scheme":
			st.Scheme = hf.Value
		case ":authority":
			st.Authority = hf.Value
		case ":path":
			st.Path = hf.Value
		default: // :status, :protocol (no extended CONNECT)
			return false
		}
	}
	if st.Method == "" {
		return false
	}
	if st.Method == "CONNECT" {
		if st.Scheme != "" || st.Path != "" || st.Authority == "" {
			return false
		}
	} else if st.Scheme == "" || st.Path == "" {
		return false
	}
	st.Fields = append(st.Fields[:0], f.RegularFields()...) // f's list is the connection's, reused
	for _, hf := range st.Fields {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return false
		case "te":
			if hf.Value != "trailers" {
				return false
			}
		case "content-length":
			n, ok := parseContentLength(unsafeBytes(hf.Value))
			if !ok || (st.ContentLength >= 0 && n != st.ContentLength) {
				return false
			}
			st.ContentLength = n
		case "expect":
			st.expect = strings.EqualFold(hf.Value, "100-continue")
		}
	}
	return true
}

// data takes a DATA frame's body bytes for its stream.
func (c *h2Conn) data(f *http2.DataFrame) error {
	id := f.StreamID
	st, idle := c.stream(id)
	if idle {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	n := int64(f.Length)
	if n > c.recvWin {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvWin -= n
	if st == nil || st.state != h2Open {
		c.credit(nil, n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if n > st.recvWin {
		c.credit(nil, n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	st.recvWin -= n
	data := f.Data()
	if st.ContentLength >= 0 && st.rgot+int64(len(data)) > st.ContentLength {
		c.credit(nil, n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	st.rgot += int64(len(data))
	if pad := n - int64(len(data)); pad > 0 {
		c.credit(st, pad)
	}
	if len(data) > 0 {
		st.take(data)
	}
	if f.StreamEnded() {
		return c.endBody(st)
	}
	return nil
}

// take keeps body bytes for the handler; c.mu is held.
func (st *H2Stream) take(data []byte) {
	if st.rbuf == nil {
		st.rbuf, st.rbox = getH2Buf()
	}
	if st.roff > 0 && len(st.rbuf)+len(data) > cap(st.rbuf) {
		// Move what is unread to the front before growing: a body read while
		// it arrives may never leave the buffer empty, and would otherwise
		// grow it without bound.
		st.rbuf = st.rbuf[:copy(st.rbuf, st.rbuf[st.roff:])]
		st.roff = 0
	}
	st.rbuf = append(st.rbuf, data...)
	st.cond.Signal()
}

// endBody: the client's half of st ended.
func (c *h2Conn) endBody(st *H2Stream) error {
	if st.ContentLength >= 0 && st.rgot != st.ContentLength {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	st.state = h2HalfClosedRemote
	st.rerr = io.EOF
	st.cond.Signal()
	if st.ended {
		c.closeStream(st, nil)
	}
	return nil
}

// credit returns n consumed bytes of flow control to the client: to the
// connection, and to st when it is not nil and still open. Updates are sent
// once half a window is owed.
func (c *h2Conn) credit(st *H2Stream, n int64) {
	lim := c.srv.lim
	c.unacked += n
	if c.unacked >= int64(lim.MaxUploadBufferPerConn)/2 && c.werr == nil {
		c.fr.WriteWindowUpdate(0, uint32(c.unacked))
		c.recvWin += c.unacked
		c.unacked = 0
		c.kick()
	}
	if st == nil || st.state != h2Open {
		return
	}
	st.unacked += n
	if st.unacked >= int64(lim.MaxUploadBufferPerStream)/2 && c.werr == nil {
		c.fr.WriteWindowUpdate(st.id, uint32(st.unacked))
		st.recvWin += st.unacked
		st.unacked = 0
		c.kick()
	}
}

// resetStream sends RST_STREAM for id and closes the stream if it is open.
func (c *h2Conn) resetStream(id uint32, code http2.ErrCode, why error) {
	if c.werr == nil {
		c.fr.WriteRSTStream(id, code)
		c.kick()
	}
	if st := c.streams[id]; st != nil {
		c.closeStream(st, why)
	}
}

// closeStream ends st's life on the connection: why (nil: it ended cleanly)
// fails what its handler waits for, and its abort function runs.
func (c *h2Conn) closeStream(st *H2Stream, why error) {
	if st.state == h2Closed {
		return
	}
	st.state = h2Closed
	delete(c.streams, st.id)
	c.open--
	if why != nil && st.fail == nil {
		st.fail = why
		if st.abort != nil {
			st.tellAbort(st.abort)
		}
	}
	if left := int64(len(st.rbuf)); left > 0 {
		c.credit(nil, left)
	}
	st.dropBuf()
	st.cond.Broadcast()
	if c.open == 0 {
		if c.closing {
			c.nc.SetReadDeadline(time.Now()) // the reader ends the connection
		} else {
			c.nc.SetReadDeadline(time.Now().Add(c.srv.lim.IdleTimeout))
		}
	}
}

// goAway sends GOAWAY: no stream past the last one opened will be served.
// With NO_ERROR the open streams finish first; with an error code the
// connection ends now.
func (c *h2Conn) goAway(code http2.ErrCode) {
	if c.away && code == http2.ErrCodeNo {
		return
	}
	c.away, c.closing = true, true
	if c.werr == nil {
		c.fr.WriteGoAway(c.maxID, code, nil)
		c.kick()
	}
	if code != http2.ErrCodeNo || c.open == 0 {
		c.nc.SetReadDeadline(time.Now())
	}
}

// run serves st with the handler; a stream the handler left unended is
// reset, and a request body it did not read is refused (RST_STREAM NO_ERROR,
// RFC 9113 §8.1).
func (st *H2Stream) run() {
	c := st.c
	defer c.wg.Done()
	c.handle(st)
	c.mu.Lock()
	stopped := st.guard == nil || st.guard.Stop() // false: stalled ran or runs, and refers to st
	switch {
	case st.state == h2Closed:
	case !st.ended:
		c.resetStream(st.id, http2.ErrCodeInternal, errH2Aborted)
	default: // ended, the client still sending
		c.resetStream(st.id, http2.ErrCodeNo, nil)
	}
	st.dropBuf()
	c.running--
	c.mu.Unlock()
	st.aborts.Wait()
	if stopped {
		st.recycle()
	}
}

// h2Streams holds ended streams for the next ones: a stream's record, taken
// anew for each, was cold memory by the time the stream's answer came.
var h2Streams = sync.Pool{New: func() any { return new(H2Stream) }}

func newH2Stream(c *h2Conn, id uint32, truncated bool) *H2Stream {
	st := h2Streams.Get().(*H2Stream)
	st.c, st.id, st.ContentLength, st.Truncated = c, id, -1, truncated
	st.cond.L = &c.mu
	return st
}

// recycle gives st back to h2Streams once nothing refers to it: it is closed
// (out of c.streams), its handler returned, no abort runs and its timer is
// stopped (kept, with its field list's room up to keepFields).
func (st *H2Stream) recycle() {
	fields, guard, runFn := st.Fields, st.guard, st.runFn
	clear(fields)
	if cap(fields) > keepFields {
		fields = nil
	}
	*st = H2Stream{Fields: fields[:0], guard: guard, runFn: runFn}
	h2Streams.Put(st)
}

// handle runs the handler; a panic resets the stream instead of ending the process.
func (c *h2Conn) handle(st *H2Stream) {
	defer func() {
		if r := recover(); r != nil {
			c.srv.log.Error("h2: handler panic", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	c.srv.h.ServeH2(st)
}

// kick starts a flush of what is pending; c.mu is held.
func (c *h2Conn) kick() {
	if !c.flushing && c.werr == nil && len(c.wbuf) > 0 {
		c.flushing = true
		if c.flushFn == nil {
			c.flushFn = c.flush // bound once: go c.flush() allocates a closure each time
		}
		go c.flushFn()
	}
}

// flush writes the pending frames until none is left. It first yields once,
// so that the streams' goroutines ready to write add their frames to the same
// write.
func (c *h2Conn) flush() {
	runtime.Gosched()
	c.mu.Lock()
	for len(c.wbuf) > 0 && c.werr == nil {
		b, box := c.wbuf, c.wbox
		c.wbuf, c.wbox = nil, nil
		c.mu.Unlock()
		err := c.send(b)
		putH2Buf(b, box)
		c.mu.Lock()
		if err != nil && c.werr == nil {
			c.werr = err
			c.nc.SetReadDeadline(time.Now()) // the reader ends the connection
		}
		c.wcond.Broadcast()
	}
	c.flushing = false
	c.wcond.Broadcast()
	c.mu.Unlock()
}

func (c *h2Conn) send(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.lim.WriteTimeout))
	if c.g == nil {
		_, err := c.nc.Write(b)
		return err
	}
	_, err := c.g.writeVia(c.nc, b)
	return err
}

// appendFrameHead appends a frame header (RFC 9113 §4.1) to c.wbuf.
func (c *h2Conn) appendFrameHead(n int, typ http2.FrameType, flags http2.Flags, id uint32) {
	if c.wbuf == nil {
		c.wbuf, c.wbox = getH2Buf()
	}
	c.wbuf = append(c.wbuf, byte(n>>16), byte(n>>8), byte(n), byte(typ), byte(flags),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

// Stream states (RFC 9113 §5.1) as far as the server needs them.
const (
	h2Open = iota + 1
	h2HalfClosedRemote
	h2Closed
)

// H2Stream is one request and its response. Its request fields are set
// before the handler runs; its methods are for the handler's goroutine, and
// it is reused once the handler returns.
type H2Stream struct {
	c  *h2Conn
	id uint32

	Method, Scheme, Authority, Path string
	Fields                          []hpack.HeaderField // regular fields, names in lower case
	ContentLength                   int64               // content-length; -1: not given
	NoBody                          bool                // the headers ended the request
	Truncated                       bool                // the header list was over the limit: answer 431

	// Guarded by c.mu.
	cond     sync.Cond
	state    uint8
	expect   bool   // expect: 100-continue, not yet answered
	rbuf     []byte // body bytes received, not yet read
	rbox     *[]byte
	roff     int
	rgot     int64 // body bytes received
	rerr     error // io.EOF once the body ended
	fail     error // the stream was reset or its connection ended
	recvWin  int64
	unacked  int64
	sendWin  int64
	waitConn bool // waiting for the connection's window
	headSent bool
	ended    bool
	abort    StreamAborter
	aborts   sync.WaitGroup // AbortStream calls running (SetAbort(nil) waits for them)
	guard    *time.Timer
	runFn    func()    // st.run, bound once
	waitFrom time.Time // when the current wait began (zero: none)
}

// Owner returns what the connection was served with.
func (st *H2Stream) Owner() any { return st.c.owner }

// StreamAborter is told (AbortStream, in a goroutine of its own) that the
// stream it serves was reset or lost its connection.
type StreamAborter interface{ AbortStream() }

// SetAbort sets a to be told when the stream is reset or its connection
// ends; nil clears it and returns once no AbortStream call runs, so that
// the handler may reuse what it had set. If that already happened, a is told
// now. (An interface and not a func: a handler's record is one already, a
// bound method would be an allocation per stream.)
func (st *H2Stream) SetAbort(a StreamAborter) {
	c := st.c
	c.mu.Lock()
	st.abort = a
	if st.fail != nil && a != nil {
		st.tellAbort(a)
	}
	c.mu.Unlock()
	if a == nil {
		st.aborts.Wait()
	}
}

// tellAbort calls a.AbortStream in a goroutine of its own (it may close
// connections, which c.mu must not wait for); c.mu is held.
func (st *H2Stream) tellAbort(a StreamAborter) {
	st.aborts.Add(1)
	go func() {
		defer st.aborts.Done()
		a.AbortStream()
	}()
}

// Gone reports that the stream was reset or its connection ended.
func (st *H2Stream) Gone() bool {
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	return st.fail != nil
}

func (st *H2Stream) dropBuf() {
	if st.rbuf != nil {
		putH2Buf(st.rbuf, st.rbox)
	}
	st.rbuf, st.rbox, st.roff = nil, nil, 0
}

// wait blocks on st.cond, bounded by the write timeout: a wait that no
// progress ends in time resets the stream. c.mu is held.
func (st *H2Stream) wait() {
	d := st.c.srv.lim.WriteTimeout
	st.waitFrom = time.Now()
	if st.guard == nil {
		st.guard = time.AfterFunc(d, st.stalled)
	} else {
		st.guard.Reset(d)
	}
	st.cond.Wait()
	st.waitFrom = time.Time{}
}

func (st *H2Stream) stalled() {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.waitFrom.IsZero() || time.Since(st.waitFrom) < c.srv.lim.WriteTimeout || st.state == h2Closed {
		return
	}
	c.count("stalled")
	c.resetStream(st.id, http2.ErrCodeCancel, errH2Stalled)
}

// Read reads the request body.
func (st *H2Stream) Read(p []byte) (int, error) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for st.roff == len(st.rbuf) {
		if st.fail != nil {
			return 0, st.fail
		}
		if st.rerr != nil {
			return 0, st.rerr
		}
		if st.expect && !st.headSent && c.werr == nil {
			st.expect = false
			c.writeHead(st, []hpack.HeaderField{{Name: ":status", Value: "100"}}, false)
		}
		st.wait()
	}
	n := copy(p, st.rbuf[st.roff:])
	st.roff += n
	if st.roff == len(st.rbuf) {
		st.rbuf, st.roff = st.rbuf[:0], 0
	}
	c.credit(st, int64(n))
	return n, nil
}

// WriteHead sends a response head: fields start with :status. end: no body
// follows. Heads of 1xx answers may come before the final one.
func (st *H2Stream) WriteHead(fields []hpack.HeaderField, end bool) error {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := st.writable(); err != nil {
		return err
	}
	if len(fields) > 0 && fields[0].Name == ":status" && fields[0].Value != "" && fields[0].Value[0] != '1' {
		st.headSent = true
	}
	c.writeHead(st, fields, end)
	if end {
		st.end()
	}
	return nil
}

func (st *H2Stream) writable() error {
	if st.fail != nil {
		return st.fail
	}
	if st.c.werr != nil {
		return st.c.werr
	}
	if st.ended {
		return errors.New("h2: write after the stream ended")
	}
	return nil
}

// writeHead encodes fields into HEADERS (and CONTINUATION) frames; c.mu is held.
func (c *h2Conn) writeHead(st *H2Stream, fields []hpack.HeaderField, end bool) {
	block := c.encodeHead(fields)
	first := true
	for first || len(block) > 0 {
		n := min(len(block), c.peerFrame)
		frag := block[:n]
		block = block[n:]
		if first {
			var fl http2.Flags
			if end {
				fl |= http2.FlagHeadersEndStream
			}
			if len(block) == 0 {
				fl |= http2.FlagHeadersEndHeaders
			}
			c.appendFrameHead(len(frag), http2.FrameHeaders, fl, st.id)
			first = false
		} else {
			var fl http2.Flags
			if len(block) == 0 {
				fl |= http2.FlagContinuationEndHeaders
			}
			c.appendFrameHead(len(frag), http2.FrameContinuation, fl, st.id)
		}
		c.wbuf = append(c.wbuf, frag...)
	}
	c.kick()
}

// encodeHead returns fields' header block, valid until the next call; c.mu is held.
func (c *h2Conn) encodeHead(fields []hpack.HeaderField) []byte {
	c.own(fields)
	if c.memo.ok && c.memo.same(fields) {
		return c.memo.block
	}
	c.hbuf.Reset()
	for _, f := range fields {
		c.enc.WriteField(f)
	}
	block := c.hbuf.Bytes()
	c.memo.set(fields, block)
	return block
}

// ownSlots is how many field places of the last head own keeps.
const ownSlots = 32

// ownedField is what own keeps of one place of the last head: the name as
// it came, the name in lower case, and the value.
type ownedField struct{ raw, name, value string }

// own gives every field a name in lower case and a value the connection
// owns, before the memo or the encoder's table can keep them: a name and a
// value may be views of a server's read buffer, in the server's case
// (h2stream.prepareHead), reused once the stream reads on. What the last
// head had at the same place is taken when equal (a server repeats its
// fields: nginx's change only in Date, once a second), else a copy, which
// that place then keeps. c.mu is held.
func (c *h2Conn) own(fields []hpack.HeaderField) {
	for i := range fields {
		n, v := fields[i].Name, fields[i].Value
		if i >= ownSlots {
			fields[i].Name, fields[i].Value = lowerName(unsafeBytes(n)), strings.Clone(v)
			continue
		}
		if i == len(c.vals) {
			c.vals = append(c.vals, ownedField{})
		}
		o := &c.vals[i]
		if o.raw != n {
			o.raw, o.name = strings.Clone(n), lowerName(unsafeBytes(n))
		}
		if o.value != v {
			o.value = strings.Clone(v)
		}
		fields[i].Name, fields[i].Value = o.name, o.value
	}
}

// headMemo keeps the last header block made only of indexed fields (RFC
// 7541 §6.1): making it changed nothing in the encoder's dynamic table, so
// the same fields encode to the same bytes for as long as no other block
// changes the table. A server's answers repeat their fields (nginx's differ
// only in Date, once a second), and this skips the table search of each.
type headMemo struct {
	ok     bool
	fields []hpack.HeaderField
	block  []byte
}

func (m *headMemo) same(fields []hpack.HeaderField) bool {
	if len(fields) != len(m.fields) {
		return false
	}
	for i, f := range fields {
		if f.Name != m.fields[i].Name || f.Value != m.fields[i].Value || f.Sensitive != m.fields[i].Sensitive {
			return false
		}
	}
	return true
}

// set records block for fields when it holds indexed fields only; any other
// block (a literal, maybe added to the table, or a table size update) ends
// the memo.
func (m *headMemo) set(fields []hpack.HeaderField, block []byte) {
	m.ok = indexedOnly(block)
	if !m.ok {
		return
	}
	m.fields = append(m.fields[:0], fields...)
	m.block = append(m.block[:0], block...)
}

// indexedOnly reports whether a header block is a sequence of indexed field
// representations: first byte 1xxxxxxx, and when its 7-bit prefix is all
// ones, continuation bytes up to one with the high bit clear (RFC 7541 §5.1).
func indexedOnly(b []byte) bool {
	for i := 0; i < len(b); {
		if b[i]&0x80 == 0 {
			return false
		}
		if b[i]&0x7f != 0x7f {
			i++
			continue
		}
		i++
		for i < len(b) && b[i]&0x80 != 0 {
			i++
		}
		if i == len(b) {
			return false // cut short: not a block this encoder made
		}
		i++
	}
	return len(b) > 0
}

// Write sends p as DATA; end: p is the last of the body.
func (st *H2Stream) Write(p []byte, end bool) error {
	if len(p) == 0 && !end {
		return nil
	}
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if err := st.writable(); err != nil {
			return err
		}
		n := min(len(p), c.peerFrame)
		if n > 0 {
			win := min(st.sendWin, c.sendWin)
			if win <= 0 {
				c.kick() // what this stream wrote so far goes out while it waits
				st.waitConn = st.sendWin > 0
				st.wait()
				st.waitConn = false
				continue
			}
			n = min(n, int(win))
		}
		if len(c.wbuf) >= h2BufMax {
			c.kick()
			c.wcond.Wait()
			continue
		}
		last := end && n == len(p)
		var fl http2.Flags
		if last {
			fl = http2.FlagDataEndStream
		}
		c.appendFrameHead(n, http2.FrameData, fl, st.id)
		c.wbuf = append(c.wbuf, p[:n]...)
		st.sendWin -= int64(n)
		c.sendWin -= int64(n)
		p = p[n:]
		if last {
			st.end()
		}
		if len(p) == 0 {
			c.kick()
			return nil
		}
	}
}

// End ends the response: with trailers when there are any, else with an empty
// DATA frame. It does nothing if the response already ended.
func (st *H2Stream) End(trailers []hpack.HeaderField) error {
	c := st.c
	c.mu.Lock()
	ended, head := st.ended, st.headSent
	c.mu.Unlock()
	switch {
	case ended:
		return nil
	case !head:
		st.Reset()
		return errH2Aborted
	case len(trailers) == 0:
		return st.Write(nil, true)
	}
	return st.WriteHead(trailers, true)
}

// end: our half of st ended; c.mu is held.
func (st *H2Stream) end() {
	st.ended = true
	if st.state == h2HalfClosedRemote {
		st.c.closeStream(st, nil)
	}
}

// Reset ends the stream with RST_STREAM (INTERNAL_ERROR): the client must not
// take what it got for a whole response.
func (st *H2Stream) Reset() {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.state != h2Closed {
		c.resetStream(st.id, http2.ErrCodeInternal, errH2Aborted)
	}
	st.ended = true
}

// gatherConn is the connection under a TLS layer: between begin and end,
// what the TLS layer writes (its records) is gathered and goes out in one
// sendto(2). Records go to the socket in the order the TLS layer made them
// (their sequence numbers): mu is held across every write to the socket, so
// a record the TLS layer writes from a reading goroutine (the answer to a
// client's TLS 1.3 KeyUpdate) can't overtake gathered ones still being sent.
//
// raw, when set, reads and writes the socket (rawIO): every read and write
// of the TLS layer goes through it.
type gatherConn struct {
	net.Conn
	raw *rawIO
	mu  sync.Mutex
	on  bool
	buf []byte
	box *[]byte
}

func (g *gatherConn) Read(p []byte) (int, error) {
	if g.raw != nil {
		return g.raw.read(p)
	}
	return g.Conn.Read(p)
}

func (g *gatherConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.on {
		g.buf = append(g.buf, p...)
		return len(p), nil
	}
	return g.write(p)
}

// write sends p to the socket; g.mu is held.
func (g *gatherConn) write(p []byte) (int, error) {
	if g.raw != nil {
		return g.raw.write(p)
	}
	return g.Conn.Write(p)
}

// writeVia writes p through w, the TLS layer over g, gathering the records
// it makes into one sendto(2).
func (g *gatherConn) writeVia(w io.Writer, p []byte) (int, error) {
	g.begin()
	n, err := w.Write(p)
	if e := g.end(); e != nil && err == nil {
		return 0, e
	}
	return n, err
}

func (g *gatherConn) begin() {
	g.mu.Lock()
	g.on = true
	if g.buf == nil {
		g.buf, g.box = getH2Buf()
	}
	g.mu.Unlock()
}

func (g *gatherConn) end() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on = false
	b, box := g.buf, g.box
	g.buf, g.box = nil, nil
	var err error
	if len(b) > 0 {
		_, err = g.write(b)
	}
	putH2Buf(b, box)
	return err
}
