package proxy

import (
	"net"
	"testing"
	"time"
)

type testOwner struct {
	woke, expired chan time.Time
}

func newTestOwner() *testOwner {
	return &testOwner{woke: make(chan time.Time, 1), expired: make(chan time.Time, 1)}
}

func (o *testOwner) wake()   { o.woke <- time.Now() }
func (o *testOwner) expire() { o.expired <- time.Now() }

// TestParkWheel: a parked connection expires after its idle time, never
// before; one that becomes readable wakes instead; a cancelled one does
// neither; many at once each expire in their own time.
func TestParkWheel(t *testing.T) {
	var pk parker
	defer pk.stop()
	park := func(d time.Duration) (*parked, *testOwner, *net.TCPConn) {
		a, b := tcpPair(t)
		rc, err := a.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		p := new(parked)
		if err := pk.register(p, rc); err != nil {
			t.Fatal(err)
		}
		o := newTestOwner()
		if err := p.park(d, o); err != nil {
			t.Fatal(err)
		}
		return p, o, b
	}

	start := time.Now()
	p, o, _ := park(50 * time.Millisecond)
	select {
	case at := <-o.expired:
		if at.Sub(start) < 50*time.Millisecond {
			t.Fatalf("expired after %v, before its 50ms", at.Sub(start))
		}
	case <-o.woke:
		t.Fatal("woken without bytes")
	case <-time.After(5 * time.Second):
		t.Fatal("never expired")
	}
	if p.cancel() {
		t.Fatal("an expired park could be cancelled")
	}
	p.forget()

	p, o, peer := park(10 * time.Second)
	peer.Write([]byte("x"))
	select {
	case <-o.woke:
	case <-o.expired:
		t.Fatal("expired instead of waking")
	case <-time.After(5 * time.Second):
		t.Fatal("never woken")
	}
	if p.cancel() {
		t.Fatal("a woken park could be cancelled")
	}
	p.forget()

	p, o, _ = park(20 * time.Millisecond)
	if !p.cancel() {
		t.Fatal("an armed park could not be cancelled")
	}
	p.forget()
	select {
	case <-o.expired:
		t.Fatal("a cancelled park expired")
	case <-o.woke:
		t.Fatal("a cancelled park woke")
	case <-time.After(200 * time.Millisecond): // ten times its idle time: a wrong expiry would have come
	}

	// Many, over more than one turn of the wheel.
	const n = 100
	type rec struct {
		d time.Duration
		o *testOwner
		p *parked
	}
	var recs []rec
	start = time.Now()
	for i := range n {
		d := time.Duration(i*37%n)*wheelTick*wheelSlots/n*3/2 + time.Millisecond
		p, o, _ := park(d)
		recs = append(recs, rec{d, o, p})
	}
	for _, r := range recs {
		select {
		case at := <-r.o.expired:
			if el := at.Sub(start); el < r.d {
				t.Errorf("idle %v: expired after %v", r.d, el)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("idle %v: never expired", r.d)
		}
		r.p.forget()
	}
	for _, l := range pk.loops {
		l.mu.Lock()
		left := l.wheel.n
		l.mu.Unlock()
		if left != 0 {
			t.Errorf("%d left in a wheel", left)
		}
	}
}

func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}
