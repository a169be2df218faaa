package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
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

	// waiters and wake implement the wait queue: a connection that finds no
	// free slot waits for wake to be closed (on any release) or its deadline.
	waiters atomic.Int64
	wakeMu  sync.Mutex
	wake    chan struct{}

	passive    sync.Map  // *balance.Backend -> *atomic.Int32 consecutive connect failures
	respBodies sync.Pool // *respBody
	// backendConns holds the open HTTP backend connections (*deadlineConn).
	backendConns sync.Map

	mu        sync.Mutex
	listeners map[listenKey]*listener
	stats     map[string]*svcStats
	clients   sync.Map // clientKey -> *fasthttp.HostClient, shared backend pools
	closing   bool
	sessions  map[*session]struct{}
	wg        sync.WaitGroup // accept loops and sessions
	draining  atomic.Bool
	aborted   atomic.Bool // a forced shutdown closes every connection
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

type listener struct {
	ln  *net.TCPListener
	svc atomic.Pointer[service]
}

// svcStats are a service's counters and its connection gate; they persist
// across Apply by service name.
type svcStats struct {
	active, queued                          atomic.Int64
	total, refused, bytesIn, bytesOut, errs atomic.Uint64
	req                                     [6]atomic.Uint64
}

// service is one immutable generation of a ServiceSpec.
type service struct {
	spec      ServiceSpec
	to        Timeouts
	tunnelSet bool
	st        *svcStats
	srv       *Server
	log       *zap.Logger
	exact     map[string]*balance.Pool
	wild      map[string]*balance.Pool // key: the suffix after "*."
	http      *fasthttp.Server
}

// NewServer returns a Server with no services; call Apply.
func NewServer(log *zap.Logger, g Global) *Server {
	s := &Server{
		log:       log.Named("proxy"),
		wake:      make(chan struct{}),
		listeners: make(map[listenKey]*listener),
		stats:     make(map[string]*svcStats),
		sessions:  make(map[*session]struct{}),
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
// yet can be bound, and SO_REUSEADDR.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if strings.HasSuffix(network, "6") {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

func listen(a netip.AddrPort) (*net.TCPListener, error) {
	network := "tcp4"
	if a.Addr().Is6() && !a.Addr().Is4In6() {
		network = "tcp6"
	}
	lc := listenConfig()
	ln, err := lc.Listen(context.Background(), network, a.String())
	if err != nil {
		return nil, fmt.Errorf("proxy: listen %v: %w", a, err)
	}
	return ln.(*net.TCPListener), nil
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
	opened := make(map[listenKey]*net.TCPListener)
	for i := range specs {
		k := keyOf(&specs[i])
		if _, ok := s.listeners[k]; ok {
			continue
		}
		ln, err := listen(specs[i].Listen)
		if err != nil {
			for _, l := range opened {
				l.Close()
			}
			return fmt.Errorf("proxy: apply: service %q: %w", specs[i].Name, err)
		}
		opened[k] = ln
	}
	keep := make(map[listenKey]bool, len(specs))
	for i := range specs {
		spec := specs[i]
		k := keyOf(&spec)
		keep[k] = true
		st := s.stats[spec.Name]
		if st == nil {
			st = new(svcStats)
			s.stats[spec.Name] = st
		}
		svc := s.newService(spec, st)
		if l, ok := s.listeners[k]; ok {
			l.svc.Store(svc)
			continue
		}
		l := &listener{ln: opened[k]}
		l.svc.Store(svc)
		s.listeners[k] = l
		s.wg.Add(1)
		go s.acceptLoop(l)
	}
	names := make(map[string]bool, len(specs))
	for i := range specs {
		names[specs[i].Name] = true
	}
	for k, l := range s.listeners {
		if !keep[k] {
			l.ln.Close()
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
	if spec.Mode == ModeHTTP {
		svc.http = svc.newHTTPServer()
	}
	return svc
}

// Addr returns the bound address of the named service, nil if unknown.
func (s *Server) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.svc.Load().spec.Name == name {
			return l.ln.Addr()
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
		ss := ServiceStats{
			Name: svc.spec.Name, Listen: svc.spec.Listen, Mode: svc.spec.Mode,
			Active: st.active.Load(), Total: st.total.Load(), Queued: st.queued.Load(),
			Refused: st.refused.Load(), BytesIn: st.bytesIn.Load(), BytesOut: st.bytesOut.Load(),
			Errors: st.errs.Load(),
		}
		for i := range ss.Requests {
			ss.Requests[i] = st.req[i].Load()
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
	s.mu.Lock()
	s.closing = true
	for k, l := range s.listeners {
		l.ln.Close()
		delete(s.listeners, k)
	}
	sessions := make([]*session, 0, len(s.sessions))
	for se := range s.sessions {
		sessions = append(sessions, se)
	}
	s.mu.Unlock()
	s.draining.Store(true)
	s.notify()
	for _, se := range sessions {
		se.drain()
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
		s.mu.Lock()
		for se := range s.sessions {
			se.close()
		}
		s.mu.Unlock()
		// HTTP requests waiting on a backend: their pooled connections
		// are not tied to a session.
		s.backendConns.Range(func(c, _ any) bool {
			c.(*deadlineConn).c.Close()
			return true
		})
		<-done
	}
	s.clients.Range(func(_, c any) bool {
		c.(*fasthttp.HostClient).CloseIdleConnections()
		return true
	})
	return err
}

func (s *Server) acceptLoop(l *listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.ln.AcceptTCP()
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
		se := &session{svc: svc, client: c, start: time.Now()}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.sessions[se] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
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
