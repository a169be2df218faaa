package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Parking: a connection with nothing in flight holds no goroutine and no
// buffer. Its descriptor waits in an epoll set of one of the parker's loops
// (one per core), its idle timeout in the loop's timing wheel; readiness starts a new
// goroutine for it, which takes buffers from the pools only when bytes are
// there and gives them back before the connection parks again.
//
// A connection is watched level-triggered and one-shot: arming it
// (EPOLL_CTL_MOD, or ADD the first time) reports at once if bytes arrived
// while it was busy, and each arming is answered by at most one event, so a
// connection is never woken twice. The descriptor stays registered with Go's
// own poller too (it is a *net.TCPConn), which the woken goroutine uses for
// its reads and writes; the two never wait on it at the same time. An HTTP
// connection still idle after backendHold is detached from Go's runtime
// (detach): only a duplicate descriptor is kept, here, and it gets a new
// *net.TCPConn when it wakes (attach).
//
// Written by hand on golang.org/x/sys/unix rather than on an event-loop
// library: nbio and gnet own the sockets and their buffers, while halb needs
// to keep *net.TCPConn for splice(2), deadlines and crypto/tls, and only wants
// the idle wait moved out of a goroutine (docs/dataplane.md has the numbers).

// parkAfter is how long an HTTP connection that has just answered a request
// waits, in its goroutine, for the next one before it parks; pipeParkAfter the
// same for a TCP relay direction after a burst. Under load the next request
// comes within microseconds and costs no epoll_ctl; an idle connection gives
// its goroutine back after this. With 256 HTTP connections on one core a
// client's next request often came after 5 ms, so that a large share of
// requests went through the parking loop (an epoll_ctl and a new goroutine
// each): 20 ms keeps them in their goroutine. A lingering connection holds its
// goroutine's stack, so the longer linger raises the memory peak while many
// connections open (about +0.3 KiB per idle HTTP connection in halb bench
// --idle). A per-connection choice (20 ms only for a client that came back
// soon after its connection parked) kept the memory but showed no gain for
// HTTP (docs/benchmarks.md). TCP relay directions make that choice: 5 ms,
// and 20 ms (pipeParkAfterBusy) for a direction woken within 20 ms of parking.
// With 256 sessions on one core, 5 ms for all cost about one epoll_ctl per
// request (most bursts parked); 20 ms for all, +0.2 KiB per idle session.
const (
	parkAfter         = 20 * time.Millisecond
	pipeParkAfter     = 5 * time.Millisecond
	pipeParkAfterBusy = 20 * time.Millisecond
)

// parked is one parked connection: what to do when it becomes readable and
// when its idle time runs out. Exactly one of the two runs, once per park.
// It lives inside its owner (h1conn, pipeDir): parking allocates nothing.
type parked struct {
	fd     int32
	slot   int32 // its wheel slot while armed, -1 otherwise
	rounds int32 // turns of the wheel left before it expires
	state  atomic.Uint32
	rc     syscall.RawConn
	loop   *parkLoop
	prev   *parked // the wheel slot's list
	next   *parked
	owner  parkOwner
}

// parkOwner is what a parked connection belongs to: wake runs in a new
// goroutine, expire in the wheel's.
type parkOwner interface {
	wake()
	expire()
}

// state is gen<<2 | one of these; gen counts parks, so that an expiry
// collected for one park never ends the next.
const (
	parkIdle uint32 = iota // not in the epoll set's armed state
	parkArmed
	parkWoken
	parkExpired
)

// parker owns the loops.
type parker struct {
	loops []*parkLoop
	next  atomic.Uint32
	once  sync.Once
	err   error
}

type parkLoop struct {
	epfd  int
	efd   int             // eventfd: stop
	ep    *os.File        // epfd, registered with Go's poller
	rc    syscall.RawConn // ep's
	mu    sync.Mutex
	conns map[int32]*parked
	done  chan struct{}
	wheel wheel // guarded by mu
}

// start opens one epoll set per core, lazily.
func (pk *parker) start() error {
	pk.once.Do(func() {
		n := max(runtime.GOMAXPROCS(0), 1)
		for range n {
			l, err := newParkLoop()
			if err != nil {
				pk.err = err
				pk.stop()
				return
			}
			pk.loops = append(pk.loops, l)
			go l.run()
		}
	})
	return pk.err
}

// register prepares p, a parking slot for the descriptor of rc. It costs
// nothing in the kernel until the first park.
func (pk *parker) register(p *parked, rc syscall.RawConn) error {
	if err := pk.start(); err != nil {
		return err
	}
	var fd int32 = -1
	if err := rc.Control(func(f uintptr) { fd = int32(f) }); err != nil {
		return err
	}
	*p = parked{fd: fd, slot: -1, rc: rc, loop: pk.loops[pk.next.Add(1)%uint32(len(pk.loops))]}
	return nil
}

var errParkClosed = errors.New("proxy: parked connection closed")

// park arms the slot: o.wake runs in a new goroutine once the descriptor is
// readable (or hung up), o.expire after idle if it does not become readable
// first. The caller's goroutine must not touch the connection afterwards.
func (p *parked) park(idle time.Duration, o parkOwner) error {
	p.owner = o
	l := p.loop
	l.mu.Lock()
	_, known := l.conns[p.fd]
	l.conns[p.fd] = p
	st := p.state.Load()
	p.state.Store((st>>2+1)<<2 | parkArmed)
	l.wheel.add(p, idle, l)
	l.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: p.fd}
	op := unix.EPOLL_CTL_MOD
	if !known {
		op = unix.EPOLL_CTL_ADD
	}
	var err error
	arm := func(fd uintptr) {
		err = unix.EpollCtl(l.epfd, op, int(fd), &ev)
		if err == unix.ENOENT && op == unix.EPOLL_CTL_MOD { // a closed descriptor whose number came back
			err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
	}
	if p.rc == nil {
		// A detached descriptor (see detach): only its owner closes it.
		arm(uintptr(p.fd))
	} else if cerr := p.rc.Control(arm); err == nil {
		// Control holds the descriptor open: a concurrent Close cannot
		// hand its number to another connection while it is being armed.
		err = cerr
	}
	if err != nil {
		p.cancel()
		return fmt.Errorf("proxy: park: epoll_ctl: %w", err)
	}
	return nil
}

// to moves an armed p to state to (woken, expired, idle) if it is still in
// the park whose state was st; it reports whether it did.
func (p *parked) to(st, to uint32) bool {
	return st&3 == parkArmed && p.state.CompareAndSwap(st, st&^3|to)
}

// cancel takes a parked connection back (a drain or a forced close): it
// reports whether the caller now owns it (it was armed and has neither woken
// nor expired).
func (p *parked) cancel() bool {
	if !p.to(p.state.Load(), parkIdle) {
		return false
	}
	l := p.loop
	l.mu.Lock()
	l.wheel.remove(p)
	l.mu.Unlock()
	return true
}

// forget drops the slot before the descriptor is closed.
func (p *parked) forget() {
	l := p.loop
	l.mu.Lock()
	if l.conns[p.fd] == p {
		delete(l.conns, p.fd)
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(p.fd), nil)
	}
	l.wheel.remove(p)
	l.mu.Unlock()
}

// detach takes an idle connection's descriptor away from Go's runtime: it
// keeps a duplicate of the descriptor and closes c, so that the connection
// holds no *net.TCPConn, no addresses and no runtime poll record (about 600
// bytes, with the heap's headroom) while it waits, only its record here.
// p must not be armed, and its owner must own c. On error nothing changed.
func (p *parked) detach(c *net.TCPConn) error {
	nfd := -1
	var err error
	if cerr := p.rc.Control(func(fd uintptr) { nfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("proxy: detach: %w", err)
	}
	p.forget()
	c.Close() // the socket stays open through nfd; no FIN
	p.fd, p.rc = int32(nfd), nil
	return nil
}

// attach gives a detached descriptor back to Go's runtime as a new
// *net.TCPConn (the same socket) and prepares p for it; p must not be armed.
// On error the descriptor is closed.
func (p *parked) attach() (*net.TCPConn, error) {
	p.forget()
	fd := int(p.fd)
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f) // a duplicate of fd, in Go's poller
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("proxy: attach: %w", err)
	}
	tc, _ := c.(*net.TCPConn)
	var rc syscall.RawConn
	if tc != nil {
		rc, err = tc.SyscallConn()
	}
	if tc == nil || err != nil {
		c.Close()
		return nil, fmt.Errorf("proxy: attach: not a TCP connection")
	}
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		tc.Close()
		return nil, fmt.Errorf("proxy: attach: %w", err)
	}
	p.fd, p.rc = int32(fd), rc
	return tc, nil
}

// closeDetached closes a detached descriptor (its owner's close).
func (p *parked) closeDetached() {
	p.forget()
	unix.Close(int(p.fd))
}

// wheel holds the idle timeouts of a loop's parked connections: a timing
// wheel of wheelSlots lists, turned every wheelTick by one timer while any
// connection is in it, instead of one runtime timer per connection (about
// 150 bytes each, for ten thousand idle connections). An expiry comes up to
// one tick late.
type wheel struct {
	slots   [wheelSlots]*parked
	cur     int
	n       int // connections in it
	last    time.Time
	ticking bool
	timer   *time.Timer
	due     []dueParked
}

type dueParked struct {
	p  *parked
	st uint32
}

const (
	wheelTick  = 10 * time.Millisecond
	wheelSlots = 256
)

func (w *wheel) add(p *parked, d time.Duration, l *parkLoop) {
	w.remove(p)
	ticks := max(int((d+wheelTick-1)/wheelTick), 1)
	p.rounds = int32((ticks - 1) / wheelSlots)
	p.slot = int32((w.cur + ticks) % wheelSlots)
	p.prev, p.next = nil, w.slots[p.slot]
	if p.next != nil {
		p.next.prev = p
	}
	w.slots[p.slot] = p
	w.n++
	if !w.ticking {
		w.ticking = true
		w.last = time.Now()
		if w.timer == nil {
			w.timer = time.AfterFunc(wheelTick, l.tick)
		} else {
			w.timer.Reset(wheelTick)
		}
	}
}

func (w *wheel) remove(p *parked) {
	if p.slot < 0 {
		return
	}
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		w.slots[p.slot] = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	}
	p.prev, p.next, p.slot = nil, nil, -1
	w.n--
}

// tick turns the wheel by the ticks elapsed and expires what is due, each in
// turn in this goroutine (an expiry closes a connection or parks it again).
func (l *parkLoop) tick() {
	l.mu.Lock()
	w := &l.wheel
	steps := min(max(int(time.Since(w.last)/wheelTick), 1), wheelSlots)
	w.last = w.last.Add(time.Duration(steps) * wheelTick)
	due := w.due[:0]
	for range steps {
		w.cur = (w.cur + 1) % wheelSlots
		for p := w.slots[w.cur]; p != nil; {
			next := p.next
			if p.rounds > 0 {
				p.rounds--
			} else {
				w.remove(p)
				due = append(due, dueParked{p, p.state.Load()})
			}
			p = next
		}
	}
	w.due = nil // not reused while its entries run
	l.mu.Unlock()
	for i, d := range due {
		if d.p.to(d.st, parkExpired) {
			d.p.owner.expire()
		}
		due[i] = dueParked{}
	}
	l.mu.Lock()
	w.due = due[:0]
	if w.n > 0 {
		w.timer.Reset(max(time.Until(w.last.Add(wheelTick)), time.Millisecond))
	} else {
		w.ticking = false
	}
	l.mu.Unlock()
}

func newParkLoop() (*parkLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("proxy: epoll_create1: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("proxy: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(ep)
		unix.Close(efd)
		return nil, fmt.Errorf("proxy: epoll_ctl eventfd: %w", err)
	}
	// The epoll set is itself a pollable descriptor: Go's poller waits for it to be ready, so the
	// loop never blocks a thread (and its P) in epoll_wait. A blocking epoll_wait held the only P
	// of GOMAXPROCS=1 until sysmon took it back, up to milliseconds per wake-up: 0.08x HAProxy's
	// req/s at 256 connections on one core.
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		unix.Close(efd)
		return nil, fmt.Errorf("proxy: epoll nonblock: %w", err)
	}
	f := os.NewFile(uintptr(ep), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(efd)
		return nil, fmt.Errorf("proxy: epoll poller: %w", err)
	}
	return &parkLoop{epfd: ep, efd: efd, ep: f, rc: rc, conns: make(map[int32]*parked), done: make(chan struct{})}, nil
}

// stop ends the loops (Server.Shutdown, after every connection is gone).
func (pk *parker) stop() {
	for _, l := range pk.loops {
		var one = [8]byte{1}
		unix.Write(l.efd, one[:])
		<-l.done
		l.ep.Close()
		unix.Close(l.efd)
	}
	pk.loops = nil
}

// run waits for readiness and wakes parked connections, until stop.
func (l *parkLoop) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 256)
	var n int
	var werr error
	wait := func(fd uintptr) bool {
		for {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr != unix.EINTR {
				return werr != nil || n > 0
			}
		}
	}
	for {
		if err := l.rc.Read(wait); err != nil || werr != nil {
			return
		}
		l.mu.Lock()
		for i := range n {
			if int(events[i].Fd) == l.efd {
				l.mu.Unlock()
				return
			}
			p := l.conns[events[i].Fd]
			if p == nil || !p.to(p.state.Load(), parkWoken) {
				continue
			}
			l.wheel.remove(p)
			go p.owner.wake()
		}
		l.mu.Unlock()
	}
}
