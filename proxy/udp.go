package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"halb/proxy/balance"
)

// UDP services (keepalived's `protocol UDP` virtual servers with lb_kind NAT) are served in
// userspace by a UDPServer, apart from the TCP/HTTP Server. A flow is keyed by the client's
// address and port: its first datagram picks a backend through the service's balance.Pool (so
// schedulers, weights, persistence, maxconn and health apply per flow) and opens a connected
// socket to it; later datagrams of the client go there, and every datagram the backend sends
// back goes to the client from the service's address. A flow ends after IdleTimeout without a
// datagram either way, when its backend leaves the pool or goes down or into maintenance
// (checked every sweep, at most a second apart), or on an ICMP error from the backend; the
// client's next datagram then picks again.

// Default UDP limits.
const (
	DefaultUDPIdleTimeout = 60 * time.Second
	DefaultUDPMaxFlows    = 65536
	maxDatagram           = 65535
)

// UDPService is one UDP listening address and its pool.
type UDPService struct {
	Name   string
	Listen netip.AddrPort
	Pool   *balance.Pool
	// IdleTimeout ends a flow without traffic; zero: DefaultUDPIdleTimeout.
	IdleTimeout time.Duration
	// MaxFlows bounds the service's open flows; a datagram that would open one more is
	// dropped and counted. Zero: DefaultUDPMaxFlows.
	MaxFlows int
	// OnePacket (keepalived's ops) ends a flow once each of its datagrams has had a reply, as
	// for DNS: each query is scheduled on its own and no flow waits for its idle timeout.
	OnePacket bool
}

// UDPStats is a snapshot of a UDP service's counters. They survive Apply while the service
// keeps its Name.
type UDPStats struct {
	Name      string
	Listen    netip.AddrPort
	Flows     int64  // open now
	Total     uint64 // flows opened
	Datagrams uint64 // from clients, forwarded
	Replies   uint64 // from backends, forwarded
	BytesIn   uint64 // client → backend
	BytesOut  uint64 // backend → client
	Dropped   uint64 // client datagrams not forwarded: no backend, flow limit, send error
}

// UDPServer serves UDPServices.
type UDPServer struct {
	log  *zap.Logger
	bufs sync.Pool // *[]byte of maxDatagram

	mu      sync.Mutex
	svcs    map[string]*udpService // by Name
	closing bool
	wg      sync.WaitGroup
}

type udpService struct {
	srv  *UDPServer
	conn *net.UDPConn
	cfg  atomic.Pointer[UDPService]

	mu    sync.Mutex // guards flows
	newMu sync.Mutex // serialises opening flows
	flows map[netip.AddrPort]*udpFlow
	done  chan struct{}

	flowsOpen                                        atomic.Int64
	total, datagrams, replies, bytesIn, bytesOut, dr atomic.Uint64
}

type udpFlow struct {
	client    netip.AddrPort
	backend   *balance.Backend
	onePacket bool
	conn      *net.UDPConn
	last      atomic.Int64 // unix nanoseconds of the last datagram either way
	in, out   atomic.Int64
	pending   atomic.Int64 // datagrams sent and not yet answered (OnePacket)
	closed    atomic.Bool
}

// NewUDPServer returns a server with no services.
func NewUDPServer(log *zap.Logger) *UDPServer {
	if log == nil {
		log = zap.NewNop()
	}
	s := &UDPServer{log: log, svcs: map[string]*udpService{}}
	s.bufs.New = func() any { b := make([]byte, maxDatagram); return &b }
	return s
}

func validateUDP(specs []UDPService) error {
	names := map[string]bool{}
	addrs := map[netip.AddrPort]string{}
	for _, sp := range specs {
		switch {
		case sp.Name == "":
			return errors.New("proxy: udp: a service without a name")
		case names[sp.Name]:
			return fmt.Errorf("proxy: udp: service %q twice", sp.Name)
		case !sp.Listen.IsValid():
			return fmt.Errorf("proxy: udp: service %q: no listen address", sp.Name)
		case sp.Pool == nil:
			return fmt.Errorf("proxy: udp: service %q: no pool", sp.Name)
		case sp.IdleTimeout < 0 || sp.MaxFlows < 0:
			return fmt.Errorf("proxy: udp: service %q: negative limit", sp.Name)
		}
		if other, ok := addrs[sp.Listen]; ok && sp.Listen.Port() != 0 {
			return fmt.Errorf("proxy: udp: services %q and %q both listen on %s", other, sp.Name, sp.Listen)
		}
		names[sp.Name] = true
		addrs[sp.Listen] = sp.Name
	}
	return nil
}

// Apply makes specs the served set. A service whose Name and Listen are unchanged keeps its
// socket and flows and takes the new pool and limits; new ones are bound first and, on any
// error, closed again with nothing changed; services no longer in specs are closed.
func (s *UDPServer) Apply(specs []UDPService) error {
	if err := validateUDP(specs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errors.New("proxy: udp: apply: server is shut down")
	}
	opened := map[string]*net.UDPConn{}
	for _, sp := range specs {
		if old := s.svcs[sp.Name]; old != nil && old.cfg.Load().Listen == sp.Listen {
			continue
		}
		c, err := listenUDP(sp.Listen)
		if err != nil {
			for _, c := range opened {
				c.Close()
			}
			return fmt.Errorf("proxy: udp: apply: service %q: %w", sp.Name, err)
		}
		opened[sp.Name] = c
	}
	keep := map[string]bool{}
	for _, sp := range specs {
		keep[sp.Name] = true
		cfg := sp
		if c := opened[sp.Name]; c != nil {
			if old := s.svcs[sp.Name]; old != nil {
				old.stop()
			}
			svc := &udpService{srv: s, conn: c, flows: map[netip.AddrPort]*udpFlow{}, done: make(chan struct{})}
			svc.cfg.Store(&cfg)
			s.svcs[sp.Name] = svc
			// One reader per CPU on the one socket: a datagram's work (flow lookup, a new
			// flow's socket) runs in parallel with the next one's read.
			readers := max(runtime.GOMAXPROCS(0), 1)
			s.wg.Add(readers + 1)
			for range readers {
				go svc.serve()
			}
			go svc.sweep()
			continue
		}
		svc := s.svcs[sp.Name]
		prev := svc.cfg.Swap(&cfg)
		if prev.Pool != cfg.Pool {
			svc.closeFlows(func(*udpFlow) bool { return true }) // flows belong to the old pool's backends
		}
	}
	for name, svc := range s.svcs {
		if !keep[name] {
			svc.stop()
			delete(s.svcs, name)
		}
	}
	return nil
}

// Addr is the bound address of a service (tests listen on port 0); nil if unknown.
func (s *UDPServer) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.svcs[name]; svc != nil {
		return svc.conn.LocalAddr()
	}
	return nil
}

// Stats returns every service's counters, in no particular order.
func (s *UDPServer) Stats() []UDPStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]UDPStats, 0, len(s.svcs))
	for name, svc := range s.svcs {
		out = append(out, UDPStats{Name: name, Listen: svc.cfg.Load().Listen, Flows: svc.flowsOpen.Load(), Total: svc.total.Load(),
			Datagrams: svc.datagrams.Load(), Replies: svc.replies.Load(), BytesIn: svc.bytesIn.Load(), BytesOut: svc.bytesOut.Load(),
			Dropped: svc.dr.Load()})
	}
	return out
}

// Shutdown closes every service and flow and waits for their goroutines, or for ctx.
func (s *UDPServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for name, svc := range s.svcs {
		svc.stop()
		delete(s.svcs, name)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("proxy: udp: shutdown: %w", ctx.Err())
	}
}

func listenUDP(a netip.AddrPort) (*net.UDPConn, error) {
	network := "udp4"
	if a.Addr().Is6() && !a.Addr().Is4In6() {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// FREEBIND: a backup node binds the VIP before VRRP puts it on an interface.
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
	pc, err := lc.ListenPacket(context.Background(), network, a.String())
	if err != nil {
		return nil, fmt.Errorf("listen udp %v: %w", a, err)
	}
	return pc.(*net.UDPConn), nil
}

func (v *udpService) stop() {
	select {
	case <-v.done:
		return
	default:
	}
	close(v.done)
	_ = v.conn.Close()
	v.closeFlows(func(*udpFlow) bool { return true })
}

// serve reads the clients' datagrams until the socket closes.
func (v *udpService) serve() {
	defer v.srv.wg.Done()
	bp := v.srv.bufs.Get().(*[]byte)
	defer v.srv.bufs.Put(bp)
	buf := *bp
	for {
		n, client, err := v.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. an ICMP error queued on the socket
		}
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		f := v.flow(client)
		if f == nil {
			v.dr.Add(1)
			continue
		}
		// Counted before the write: the reply may be relayed before Write returns.
		f.pending.Add(1)
		f.last.Store(time.Now().UnixNano())
		if _, err := f.conn.Write(buf[:n]); err != nil {
			f.pending.Add(-1)
			v.dr.Add(1)
			if errors.Is(err, syscall.ECONNREFUSED) {
				v.closeFlow(f)
			}
			continue
		}
		f.in.Add(int64(n))
		v.datagrams.Add(1)
		v.bytesIn.Add(uint64(n))
	}
}

// flow returns the client's flow, opening one when it has none; nil when no backend takes it.
func (v *udpService) flow(client netip.AddrPort) *udpFlow {
	v.mu.Lock()
	f := v.flows[client]
	v.mu.Unlock()
	if f != nil {
		return f
	}
	// Several readers share the socket: the flow is opened under newMu, after a second look,
	// so a client's datagrams read by two readers at once open one flow, not two.
	v.newMu.Lock()
	defer v.newMu.Unlock()
	v.mu.Lock()
	f = v.flows[client]
	v.mu.Unlock()
	if f != nil {
		return f
	}
	cfg := v.cfg.Load()
	maxFlows := cfg.MaxFlows
	if maxFlows == 0 {
		maxFlows = DefaultUDPMaxFlows
	}
	if v.flowsOpen.Load() >= int64(maxFlows) {
		return nil
	}
	var tried []*balance.Backend
	for range 8 {
		b := cfg.Pool.Pick(client.Addr(), time.Now(), tried)
		if b == nil {
			return nil
		}
		if !b.Acquire() {
			tried = append(tried, b)
			continue
		}
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b.Addr()))
		if err != nil {
			b.Release()
			tried = append(tried, b)
			continue
		}
		f = &udpFlow{client: client, backend: b, conn: c, onePacket: cfg.OnePacket}
		f.last.Store(time.Now().UnixNano())
		v.mu.Lock()
		select {
		case <-v.done: // stopped meanwhile
			v.mu.Unlock()
			_ = c.Close()
			b.Release()
			return nil
		default:
		}
		v.flows[client] = f
		v.mu.Unlock()
		v.flowsOpen.Add(1)
		v.total.Add(1)
		v.srv.wg.Add(1)
		go v.relay(f)
		return f
	}
	return nil
}

// relay sends the backend's datagrams of flow f to its client until the flow closes. It holds a
// buffer only while a datagram is being handled: an idle flow costs a goroutine, not 64 KiB.
func (v *udpService) relay(f *udpFlow) {
	defer v.srv.wg.Done()
	rc, err := f.conn.SyscallConn()
	if err != nil {
		v.closeFlow(f)
		return
	}
	for {
		var n int
		var rerr error
		bp := v.srv.bufs.Get().(*[]byte)
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), *bp, unix.MSG_DONTWAIT)
			return rerr != unix.EAGAIN
		})
		if err == nil && rerr == nil {
			if _, werr := v.conn.WriteToUDPAddrPort((*bp)[:n], f.client); werr == nil {
				f.last.Store(time.Now().UnixNano())
				f.out.Add(int64(n))
				v.replies.Add(1)
				v.bytesOut.Add(uint64(n))
			}
		}
		v.srv.bufs.Put(bp)
		switch {
		case err == nil && rerr == nil && f.onePacket && f.pending.Add(-1) <= 0:
			// Every datagram of the flow has its answer: end it (a client that sent a second
			// query meanwhile keeps the flow until that one is answered too).
			v.closeFlow(f)
			return
		case err != nil: // closed
			v.closeFlow(f)
			return
		case errors.Is(rerr, unix.ECONNREFUSED):
			// The backend's port is closed: end the flow, so the next datagram picks again.
			v.closeFlow(f)
			return
		}
	}
}

func (v *udpService) closeFlow(f *udpFlow) {
	if !f.closed.CompareAndSwap(false, true) {
		return
	}
	v.mu.Lock()
	if v.flows[f.client] == f {
		delete(v.flows, f.client)
	}
	v.mu.Unlock()
	_ = f.conn.Close()
	f.backend.AddBytes(f.in.Load(), f.out.Load())
	f.backend.Release()
	v.flowsOpen.Add(-1)
}

func (v *udpService) closeFlows(match func(*udpFlow) bool) {
	v.mu.Lock()
	var fs []*udpFlow
	for _, f := range v.flows {
		if match(f) {
			fs = append(fs, f)
		}
	}
	v.mu.Unlock()
	for _, f := range fs {
		v.closeFlow(f)
	}
}

// sweep ends idle flows and flows whose backend is gone, down or in maintenance.
func (v *udpService) sweep() {
	defer v.srv.wg.Done()
	for {
		cfg := v.cfg.Load()
		idle := cfg.IdleTimeout
		if idle == 0 {
			idle = DefaultUDPIdleTimeout
		}
		tick := min(max(idle/4, 10*time.Millisecond), time.Second)
		select {
		case <-v.done:
			return
		case <-time.After(tick):
		}
		usable := map[*balance.Backend]bool{}
		for _, bv := range cfg.Pool.Views() {
			if b := cfg.Pool.Backend(bv.Name); b != nil && (bv.Up || bv.Sorry) && bv.Admin != balance.Maint {
				usable[b] = true
			}
		}
		cutoff := time.Now().Add(-idle).UnixNano()
		v.closeFlows(func(f *udpFlow) bool { return f.last.Load() < cutoff || !usable[f.backend] })
	}
}
