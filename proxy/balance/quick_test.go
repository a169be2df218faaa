package balance

import (
	"net/netip"
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	p := NewPool(WRR, []Member{
		{Name: "a", Addr: netip.MustParseAddrPort("198.18.1.1:80"), Weight: 5},
		{Name: "b", Addr: netip.MustParseAddrPort("198.18.1.2:80"), Weight: 1},
		{Name: "c", Addr: netip.MustParseAddrPort("198.18.1.3:80"), Weight: 1},
	}, Options{})
	got := ""
	for range 7 {
		got += p.Pick(netip.Addr{}, time.Time{}, nil).Name()
	}
	if got != "aabacaa" {
		t.Fatalf("got %q", got)
	}
}
