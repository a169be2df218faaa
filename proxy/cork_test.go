package proxy

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

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

// TestCorkConnOrderAndClose: writes from many goroutines, small and large,
// arrive whole and each writer's in order; Close sends what is pending.
func TestCorkConnOrderAndClose(t *testing.T) {
	a, b := tcpPair(t)
	cc := newCorkConn(a)
	cc.cork(5 * time.Second)
	const writers, each = 20, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				msg := fmt.Sprintf("%d %d\n", g, i)
				if i%50 == 0 {
					msg = fmt.Sprintf("%d %d %0*d\n", g, i, corkDirect, 0) // past corkDirect: written at once
				}
				if _, err := cc.Write([]byte(msg)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	read := make(chan error, 1)
	go func() {
		next := make([]int, writers)
		sc := bufio.NewScanner(b)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var g, i int
			if _, err := fmt.Sscan(sc.Text(), &g, &i); err != nil || g >= writers || next[g] != i {
				read <- fmt.Errorf("line %.40q out of order (want %v)", sc.Text(), next)
				return
			}
			next[g]++
		}
		for g, n := range next {
			if n != each {
				read <- fmt.Errorf("writer %d: %d lines arrived, want %d", g, n, each)
				return
			}
		}
		read <- sc.Err()
	}()
	wg.Wait()
	cc.Close()
	if err := <-read; err != nil {
		t.Fatal(err)
	}
}

// TestCorkConnStalledPeer: a peer that reads nothing fails the writer
// after the idle time instead of holding it forever.
func TestCorkConnStalledPeer(t *testing.T) {
	a, _ := tcpPair(t)
	cc := newCorkConn(a)
	cc.cork(200 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1000)
		for {
			if _, err := cc.Write(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		t.Logf("writer failed as it should: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("a writer to a peer that reads nothing never failed")
	}
	cc.Close()
}
