// Command udpload is a DNS-style UDP load generator and responder for comparing halb's userspace
// UDP proxy with nginx's stream proxy (bench/udp-vs-nginx.sh):
//
//	udpload -serve 127.0.0.1:15353              answer every datagram with itself
//	udpload -target 127.0.0.1:25353 -clients 64 -duration 10s
//
// Each client sends a small datagram, waits for the answer (1 s at most) and sends the next; with
// -fresh (the default) every query comes from a new source port, as resolvers do, so every query
// is a new flow for the proxy. It prints queries per second, the latency median and 99th
// percentile, and the queries that got no answer.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	serve := flag.String("serve", "", "answer datagrams on this address instead of sending load")
	target := flag.String("target", "", "address to load")
	clients := flag.Int("clients", 64, "concurrent clients")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	size := flag.Int("size", 40, "query size in bytes (a DNS query is about 40)")
	fresh := flag.Bool("fresh", true, "a new source port for every query")
	flag.Parse()
	if *serve != "" {
		if err := respond(*serve); err != nil {
			fmt.Fprintln(os.Stderr, "udpload:", err)
			os.Exit(1)
		}
		return
	}
	if *target == "" {
		flag.Usage()
		os.Exit(2)
	}
	qps, p50, p99, lost := load(*target, *clients, *duration, *size, *fresh)
	fmt.Printf("qps %.0f p50 %s p99 %s lost %d\n", qps, p50, p99, lost)
}

func respond(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 65535)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}()
	}
	wg.Wait()
	return nil
}

func load(target string, clients int, d time.Duration, size int, fresh bool) (qps float64, p50, p99 time.Duration, lost int64) {
	var done atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := make([]byte, size)
			buf := make([]byte, 65535)
			var mine []time.Duration
			var c net.Conn
			for time.Now().Before(deadline) {
				if c == nil || fresh {
					if c != nil {
						c.Close()
					}
					var err error
					if c, err = net.Dial("udp", target); err != nil {
						atomic.AddInt64(&lost, 1)
						c = nil
						continue
					}
				}
				start := time.Now()
				_, _ = c.Write(q)
				_ = c.SetReadDeadline(start.Add(time.Second))
				if _, err := c.Read(buf); err != nil {
					atomic.AddInt64(&lost, 1)
					continue
				}
				mine = append(mine, time.Since(start))
				done.Add(1)
			}
			if c != nil {
				c.Close()
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	if len(lat) > 0 {
		p50, p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return float64(done.Load()) / d.Seconds(), p50, p99, lost
}
