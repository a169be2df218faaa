package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"halb/proxy/balance"
)

// Server runs the listeners of all services.
type Server struct {
	log    *zap.Logger
	global atomic.Pointer[Global]
	active atomic.Int64  // connections holding a global slot
	logN   atomic.Uint64 // sampling counter
	parker parker        // idle connections (park.go)
	pipes  pipePool      // spare splice pipes (h1body.go)
	nloops int           // accept loops per listening address (one per core)

	// waiters and wake implement the wait queue: a connection that finds no
	// free slot waits for wake to be closed (on any release) or its deadline.
	waiters atomic.Int64
	wakeMu  sync.Mutex
	wake    chan struct{}

	passive sync.Map // *balance.Backend -> *atomic.Int32 consecutive connect failures

	mu        sync.Mutex
	listeners map[listenKey]*listener
	stats     map[string]*svcStats
	closing   bool
	conns     []connShard    // open sessions, one shard per accept loop
	wg        sync.WaitGroup // accept loops and sessions
	draining  atomic.Bool
	aborted   atomic.Bool // a forced shutdown closes every connection
}

// connShard is the set of sessions accepted by one accept loop of every
// listener: its lock is taken twice per connection, never per request.
type connShard struct {
	mu       sync.Mutex
	sessions map[*session]struct{}
	_        [40]byte // own cache line
}

type listenKey struct {
	addr netip.AddrPort
	name string // only for port 0, which never means "the same socket"
}

func keyOf(s *ServiceSpec) listenKey {
	if s.Listen.Port() == 0 {
		return listenKey{s.Listen, s.Name}
	}
	return listenKey{addr: s.Listen}
}

// listener is one listening address: one socket per accept loop (SO_REUSEPORT),
// so that the kernel spreads new connections over the cores.
type listener struct {
	lns []*net.TCPListener
	svc atomic.Pointer[service]
}

func (l *listener) close() {
	for _, ln := range l.lns {
		ln.Close()
	}
}

// svcStats are a service's counters and its connection gate; they persist
// across Apply by service name. The counters are kept per accept loop and
// folded when read: connections of different cores never write the same
// cache line. The gates are shared, as limits must be.
type svcStats struct {
	active, queued atomic.Int64
	shards         []svcShard
}

// svcShard is one accept loop's share of a service's counters.
type svcShard struct {
	total, refused, bytesIn, bytesOut, errs atomic.Uint64
	req                                     [6]atomic.Uint64
	_                                       [24]byte // 104 + 24 = two cache lines
}

func newSvcStats(n int) *svcStats { return &svcStats{shards: make([]svcShard, n)} }

// sum folds the shards.
func (st *svcStats) sum() (total, refused, in, out, errs uint64, req [6]uint64) {
	for i := range st.shards {
		sh := &st.shards[i]
		total += sh.total.Load()
		refused += sh.refused.Load()
		in += sh.bytesIn.Load()
		out += sh.bytesOut.Load()
		errs += sh.errs.Load()
		for j := range req {
			req[j] += sh.req[j].Load()
		}
	}
	return
}

// service is one immutable generation of a ServiceSpec.
type service struct {
	spec        ServiceSpec
	to          Timeouts
	tunnelSet   bool
	st          *svcStats
	srv         *Server
	log         *zap.Logger
	exact       map[string]*balance.Pool
	wild        map[string]*balance.Pool // key: the suffix after "*."
	maxURI      int
	readers     *readerPool // request heads and bodies (max_header_size)
	h2          *H2Server   // alpn h2: HTTP/2 streams, bridged to the HTTP/1 engine (h1tls.go)
	respReaders *readerPool // response heads and bodies
	lateFwd     bool        // the forwarding fields are written after the head (setForwarded)
	l7Fields    []string    // the request fields layer 7 reads or changes (L7Spec.FieldNames)
}

// NewServer returns a Server with no services; call Apply.
func NewServer(log *zap.Logger, g Global) *Server {
	n := max(runtime.GOMAXPROCS(0), 1)
	s := &Server{
		log:       log.Named("proxy"),
		nloops:    n,
		wake:      make(chan struct{}),
		listeners: make(map[listenKey]*listener),
		stats:     make(map[string]*svcStats),
		conns:     make([]connShard, n),
	}
	for i := range s.conns {
		s.conns[i].sessions = make(map[*session]struct{})
	}
	s.global.Store(&g)
	return s
}

// SetGlobal changes the global limits for new connections.
func (s *Server) SetGlobal(g Global) {
	s.global.Store(&g)
	s.notify()
}

// listenConfig binds with IP_FREEBIND / IPV6_FREEBIND so that a VIP not held
// yet can be bound, SO_REUSEADDR, and SO_REUSEPORT for the sockets of one
// address (one per accept loop).
func listenConfig() net.ListenConfig {
	return net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
				return
			}
			serr = freebind(network, int(fd))
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

func freebind(network string, fd int) error {
	if strings.HasSuffix(network, "6") {
		return unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
	}
	return unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1)
}

// listen opens n sockets on a (the first one picks the port when a has none).
// A socket of another process or Server on the same address makes it fail:
// SO_REUSEPORT shares a port only between sockets of the same user, and the
// first bind checks that nobody listens there yet.
func listen(a netip.AddrPort, n int) ([]*net.TCPListener, error) {
	network := "tcp4"
	if a.Addr().Is6() && !a.Addr().Is4In6() {
		network = "tcp6"
	}
	lc := listenConfig()
	var lns []*net.TCPListener
	fail := func(err error) ([]*net.TCPListener, error) {
		for _, l := range lns {
			l.Close()
		}
		return nil, fmt.Errorf("proxy: listen %v: %w", a, err)
	}
	if a.Port() != 0 {
		// Refuse an address already served: bind without SO_REUSEPORT first.
		probe := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				if serr == nil {
					serr = freebind(network, int(fd))
				}
			})
			return errors.Join(err, serr)
		}}
		ln, err := probe.Listen(context.Background(), network, a.String())
		if err != nil {
			return fail(err)
		}
		ln.Close()
	}
	addr := a.String()
	for i := range n {
		ln, err := lc.Listen(context.Background(), network, addr)
		if err != nil {
			return fail(err)
		}
		tl := ln.(*net.TCPListener)
		lns = append(lns, tl)
		if i == 0 {
			addr = tl.Addr().String()
		}
	}
	return lns, nil
}

// Apply (re)configures the server. Listeners whose Listen address is
// unchanged are kept (the same socket: no refused connection during a
// reload); new ones are opened and removed ones closed. New connections use
// the new specs; established ones finish on the spec they started with. On
// any error nothing changes.
func (s *Server) Apply(specs []ServiceSpec) error {
	if err := validateSpecs(specs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errors.New("proxy: apply: server is shut down")
	}
	if err := s.parker.start(); err != nil {
		return fmt.Errorf("proxy: apply: %w", err)
	}
	opened := make(map[listenKey][]*net.TCPListener)
	for i := range specs {
		k := keyOf(&specs[i])
		if _, ok := s.listeners[k]; ok {
			continue
		}
		lns, err := listen(specs[i].Listen, s.nloops)
		if err != nil {
			for _, l := range opened {
				for _, ln := range l {
					ln.Close()
				}
			}
			return fmt.Errorf("proxy: apply: service %q: %w", specs[i].Name, err)
		}
		opened[k] = lns
	}
	keep := make(map[listenKey]bool, len(specs))
	for i := range specs {
		spec := specs[i]
		k := keyOf(&spec)
		keep[k] = true
		st := s.stats[spec.Name]
		if st == nil {
			st = newSvcStats(s.nloops)
			s.stats[spec.Name] = st
		}
		svc := s.newService(spec, st)
		if l, ok := s.listeners[k]; ok {
			l.svc.Store(svc)
			continue
		}
		l := &listener{lns: opened[k]}
		l.svc.Store(svc)
		s.listeners[k] = l
		for i, ln := range l.lns {
			s.wg.Add(1)
			go s.acceptLoop(l, ln, i)
		}
	}
	names := make(map[string]bool, len(specs))
	for i := range specs {
		names[specs[i].Name] = true
	}
	for k, l := range s.listeners {
		if !keep[k] {
			l.close()
			delete(s.listeners, k)
		}
	}
	for n := range s.stats {
		if !names[n] {
			delete(s.stats, n)
		}
	}
	return nil
}

func (s *Server) newService(spec ServiceSpec, st *svcStats) *service {
	svc := &service{spec: spec, st: st, srv: s, log: s.log.With(zap.String("service", spec.Name))}
	svc.to, svc.tunnelSet = spec.Timeouts.withDefaults()
	svc.maxURI = cmp.Or(spec.MaxURISize, DefaultMaxURISize)
	svc.readers = &readerPool{size: cmp.Or(spec.MaxHeaderSize, DefaultMaxHeaderSize)}
	svc.respReaders = &readerPool{size: respHeadMax}
	svc.lateFwd = !spec.L7.NamesForwarded()
	svc.l7Fields = spec.L7.FieldNames()
	if l7 := spec.L7; l7 != nil && l7.H2 {
		svc.h2 = NewH2Server(svc.log, H2Limits{MaxHeaderListSize: svc.readers.size, IdleTimeout: svc.to.HTTPKeepAlive, WriteTimeout: svc.to.Client}, h2bridge{svc})
	}
	if spec.Mode == ModeTLS {
		svc.exact = make(map[string]*balance.Pool)
		svc.wild = make(map[string]*balance.Pool)
		for _, r := range spec.SNI {
			for _, n := range r.Names {
				n = strings.ToLower(n)
				if w, ok := strings.CutPrefix(n, "*."); ok {
					if _, dup := svc.wild[w]; !dup {
						svc.wild[w] = r.Pool
					}
				} else if _, dup := svc.exact[n]; !dup {
					svc.exact[n] = r.Pool
				}
			}
		}
	}
	return svc
}

// Addr returns the bound address of the named service, nil if unknown.
func (s *Server) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.svc.Load().spec.Name == name {
			return l.lns[0].Addr()
		}
	}
	return nil
}

// Stats returns a snapshot of every service's counters, sorted by name.
func (s *Server) Stats() []ServiceStats {
	s.mu.Lock()
	svcs := make([]*service, 0, len(s.listeners))
	for _, l := range s.listeners {
		svcs = append(svcs, l.svc.Load())
	}
	s.mu.Unlock()
	out := make([]ServiceStats, 0, len(svcs))
	for _, svc := range svcs {
		st := svc.st
		total, refused, bin, bout, errs, req := st.sum()
		ss := ServiceStats{
			Name: svc.spec.Name, Listen: svc.spec.Listen, Mode: svc.spec.Mode,
			Active: st.active.Load(), Total: total, Queued: st.queued.Load(),
			Refused: refused, BytesIn: bin, BytesOut: bout, Errors: errs, Requests: req,
		}
		seen := map[*balance.Pool]bool{}
		add := func(p *balance.Pool) {
			if p != nil && !seen[p] {
				seen[p] = true
				ss.Backends = append(ss.Backends, p.Views()...)
			}
		}
		add(svc.spec.Pool)
		for _, r := range svc.spec.SNI {
			add(r.Pool)
		}
		out = append(out, ss)
	}
	slices.SortFunc(out, func(a, b ServiceStats) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Shutdown stops accepting, lets connections finish until ctx is done, then
// closes the remaining ones. Idle HTTP keep-alive connections are closed at
// once and busy ones after their current response.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	s.closing = true
	for k, l := range s.listeners {
		l.close()
		delete(s.listeners, k)
	}
	s.mu.Unlock()
	s.notify()
	h2s := map[*H2Server]bool{}
	for _, se := range s.sessionList() {
		se.drain()
		if h := se.svc.h2; h != nil {
			h2s[h] = true
		}
	}
	for h := range h2s {
		// GOAWAY on every HTTP/2 connection: clients finish their streams
		// and open no new one; each connection closes after its last
		// stream. Without it an idle HTTP/2 client held Shutdown to its
		// deadline.
		h.Shutdown()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("proxy: shutdown: %w", ctx.Err())
		s.aborted.Store(true)
		for _, se := range s.sessionList() {
			se.close()
		}
		<-done
	}
	s.parker.stop()
	s.pipes.close()
	return err
}

// sessionList returns the open sessions.
func (s *Server) sessionList() []*session {
	var out []*session
	for i := range s.conns {
		sh := &s.conns[i]
		sh.mu.Lock()
		for se := range sh.sessions {
			out = append(out, se)
		}
		sh.mu.Unlock()
	}
	return out
}

// forget is a session's last step (session.end).
func (s *Server) forget(se *session) {
	sh := &s.conns[se.loop]
	sh.mu.Lock()
	delete(sh.sessions, se)
	sh.mu.Unlock()
	s.wg.Done()
}

func (s *Server) acceptLoop(l *listener, ln *net.TCPListener, loop int) {
	defer s.wg.Done()
	var backoff time.Duration
	sh := &s.conns[loop]
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off like net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept", zap.Error(err), zap.Duration("retry_in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		svc := l.svc.Load()
		se := &session{svc: svc, client: c, start: time.Now().UnixNano(), loop: int32(loop), shard: &svc.st.shards[loop]}
		if s.draining.Load() {
			c.Close()
			continue
		}
		s.wg.Add(1) // legal during Wait: this loop holds a count of its own
		sh.mu.Lock()
		sh.sessions[se] = struct{}{}
		sh.mu.Unlock()
		go s.serve(se)
	}
}

// notify wakes connections waiting in a queue, if any.
func (s *Server) notify() {
	if s.waiters.Load() == 0 {
		return
	}
	s.wakeMu.Lock()
	close(s.wake)
	s.wake = make(chan struct{})
	s.wakeMu.Unlock()
}

func tryGate(n *atomic.Int64, limit int) bool {
	if limit <= 0 {
		n.Add(1)
		return true
	}
	for {
		cur := n.Load()
		if cur >= int64(limit) {
			return false
		}
		if n.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

func (s *Server) tryAdmit(svc *service) bool {
	if !tryGate(&svc.st.active, svc.spec.MaxConn) {
		return false
	}
	if !tryGate(&s.active, s.global.Load().MaxConn) {
		svc.st.active.Add(-1)
		return false
	}
	return true
}

// admit takes a service slot and a global slot, waiting in the bounded queue
// up to the queue timeout. It reports false when the connection is refused.
func (s *Server) admit(svc *service) bool {
	if s.tryAdmit(svc) {
		return true
	}
	if svc.st.queued.Add(1) > int64(svc.spec.MaxQueue) {
		svc.st.queued.Add(-1)
		return false
	}
	defer svc.st.queued.Add(-1)
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	t := time.NewTimer(svc.to.Queue)
	defer t.Stop()
	for {
		s.wakeMu.Lock()
		ch := s.wake
		s.wakeMu.Unlock()
		if s.tryAdmit(svc) {
			return true
		}
		if s.draining.Load() {
			return false
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
}

func (s *Server) release(svc *service) {
	svc.st.active.Add(-1)
	s.active.Add(-1)
	s.notify()
}

// passiveResult records a connect attempt on b for passive health.
func (svc *service) passiveResult(b *balance.Backend, ok bool) {
	if svc.spec.PassiveFail <= 0 || svc.spec.OnPassiveFail == nil {
		return
	}
	v, _ := svc.srv.passive.Load(b)
	if v == nil {
		if ok {
			return
		}
		v, _ = svc.srv.passive.LoadOrStore(b, new(atomic.Int32))
	}
	n := v.(*atomic.Int32)
	if ok {
		n.Store(0)
		return
	}
	if n.Add(1) == int32(svc.spec.PassiveFail) {
		n.Store(0)
		svc.log.Warn("passive health: backend failing",
			zap.String("backend", b.Name()), zap.Int("consecutive_failures", svc.spec.PassiveFail))
		svc.spec.OnPassiveFail(b)
	}
}

// shouldLog applies Global.LogSample to successful sessions, after l's level
// (info for a success, warn for a failure), so that nothing is built for a
// line that would be dropped.
func (s *Server) shouldLog(l *zap.Logger, failed bool) bool {
	if failed {
		return l.Core().Enabled(zap.WarnLevel)
	}
	if !l.Core().Enabled(zap.InfoLevel) {
		return false
	}
	n := s.global.Load().LogSample
	return n <= 1 || s.logN.Add(1)%uint64(n) == 0
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
