package balance_test

import (
	"fmt"
	"net/netip"
	"time"

	"halb/proxy/balance"
)

// The caller's loop: Pick, Acquire, and on a full (or failing) backend Pick
// again with it excluded.
func ExamplePool_Pick() {
	algo, err := balance.ParseAlgo("wrr")
	if err != nil {
		panic(err)
	}
	pool := balance.NewPool(algo, []balance.Member{
		{Name: "web1", Addr: netip.MustParseAddrPort("198.18.1.10:80"), Weight: 2, MaxConn: 1},
		{Name: "web2", Addr: netip.MustParseAddrPort("198.18.1.11:80"), Weight: 1},
	}, balance.Options{
		Sorry: &balance.Member{Name: "sorry", Addr: netip.MustParseAddrPort("127.0.0.1:8080")},
	})
	client := netip.MustParseAddr("198.18.0.1")

	connect := func() *balance.Backend {
		var tried []*balance.Backend
		for {
			b := pool.Pick(client, time.Now(), tried)
			if b == nil || b.Acquire() {
				return b // nil: no server (answer 503 or queue)
			}
			tried = append(tried, b)
		}
	}
	b1 := connect() // web1 (weight 2), now at its MaxConn
	b2 := connect() // web1 is full: web2
	fmt.Println(b1.Name(), b2.Name(), pool.Eligible(), pool.LiveWeight())
	b1.Release()
	b2.Release()

	_ = pool.SetUp("web1", false) // health verdicts
	_ = pool.SetUp("web2", false)
	fmt.Println(connect().Name())
	// Output:
	// web1 web2 2 3
	// sorry
}
