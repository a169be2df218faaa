package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"halb/proxy/balance"
)

var (
	errNoServer    = errors.New("no server available")
	errBackendFull = errors.New("all eligible servers are at maxconn")
)

// dialBackend connects to a server. (Not Dialer.DialTCP: with no local address it still binds
// before connecting, which takes ephemeral ports from one shared range and ran out at about
// 5,000 connections to one server in `halb bench --idle`.)
func dialBackend(a netip.AddrPort, timeout time.Duration) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", a.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// sendProxyFor returns the PROXY version to send to b.
func (svc *service) sendProxyFor(b *balance.Backend) ProxyProto {
	if o, ok := b.Data().(*BackendOpts); ok && o != nil {
		return o.SendProxy
	}
	return svc.spec.SendProxy
}

// connect picks a backend from pool and dials it, redispatching to another
// backend on failure up to Retries times. The returned backend is acquired.
func (svc *service) connect(se *session, pool *balance.Pool) (*balance.Backend, *net.TCPConn, error) {
	if pool == nil {
		return nil, nil, errNoServer
	}
	var failedArr [8]*balance.Backend
	failed := failedArr[:0]
	var queueDeadline time.Time
	for attempts := 0; ; {
		b, err := svc.acquire(pool, se.src.Addr(), failed, &queueDeadline, time.Now())
		if err != nil {
			return nil, nil, err
		}
		tc, err := dialBackend(b.Addr(), svc.to.Connect)
		if err == nil {
			if err = svc.writeProxy(tc, b, se); err == nil {
				svc.passiveResult(b, true)
				return b, tc, nil
			}
			tc.Close()
		}
		svc.releaseBackend(b)
		svc.passiveResult(b, false)
		failed = append(failed, b)
		attempts++
		if attempts > svc.spec.Retries {
			return nil, nil, fmt.Errorf("connect %v: %w", b.Addr(), err)
		}
	}
}

// acquire picks a backend not in failed and takes one of its connection
// slots. When every candidate is at its maxconn, the connection waits in the
// service's queue (bounded by MaxQueue, for up to the queue timeout counted
// from the first wait) for a backend to release a slot, as HAProxy queues on
// a backend whose servers are full. now: a clock reading taken moments
// before, for the first pick.
func (svc *service) acquire(pool *balance.Pool, client netip.Addr, failed []*balance.Backend, deadline *time.Time, now time.Time) (*balance.Backend, error) {
	s := svc.srv
	for {
		b, full := tryPick(pool, client, failed, now)
		if b != nil {
			return b, nil
		}
		if !full {
			if len(failed) > 0 {
				return nil, fmt.Errorf("%w (all candidates failed)", errNoServer)
			}
			return nil, errNoServer
		}
		if deadline.IsZero() {
			*deadline = time.Now().Add(svc.to.Queue)
		}
		if svc.st.queued.Add(1) > int64(svc.spec.MaxQueue) {
			svc.st.queued.Add(-1)
			return nil, errBackendFull
		}
		// Register as a waiter before the last try so that a release in
		// between is not missed.
		s.waiters.Add(1)
		s.wakeMu.Lock()
		ch := s.wake
		s.wakeMu.Unlock()
		b, _ = tryPick(pool, client, failed, time.Now())
		if b == nil {
			t := time.NewTimer(time.Until(*deadline))
			select {
			case <-ch:
			case <-t.C:
			}
			t.Stop()
		}
		s.waiters.Add(-1)
		svc.st.queued.Add(-1)
		if b != nil {
			return b, nil
		}
		now = time.Now()
		if !now.Before(*deadline) || s.draining.Load() {
			if b, _ := tryPick(pool, client, failed, now); b != nil {
				return b, nil
			}
			return nil, errBackendFull
		}
	}
}

// tryPick picks from pool, skipping failed and backends at their maxconn.
// full reports that some candidate was skipped for being full.
func tryPick(pool *balance.Pool, client netip.Addr, failed []*balance.Backend, now time.Time) (b *balance.Backend, full bool) {
	var excl [8]*balance.Backend
	exclude := append(excl[:0], failed...)
	for {
		b := pool.Pick(client, now, exclude)
		if b == nil {
			// Pick itself passes over members at their maxconn: eligible
			// members beyond the failed ones can only be full.
			return nil, full || pool.Eligible() > len(failed)
		}
		if b.Acquire() {
			return b, full
		}
		full = true
		exclude = append(exclude, b)
	}
}

// releaseBackend ends a connection counted by acquire and wakes queued ones.
func (svc *service) releaseBackend(b *balance.Backend) {
	b.Release()
	svc.srv.notify()
}

func (svc *service) writeProxy(c net.Conn, b *balance.Backend, se *session) error {
	pp := svc.sendProxyFor(b)
	if pp == ProxyNone {
		return nil
	}
	var buf [232]byte
	hdr := AppendProxyHeader(buf[:0], pp, se.src, se.dstAddr())
	c.SetWriteDeadline(time.Now().Add(svc.to.Connect))
	_, err := c.Write(hdr)
	c.SetWriteDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("send proxy header: %w", err)
	}
	return nil
}
