package daemon

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"halb/ipvs"
)

func TestOwnedFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "ipvs-owned.json")
	keys := []ipvs.ServiceKey{
		ipvs.Service{Addr: netip.MustParseAddrPort("198.18.0.10:80"), Protocol: ipvs.TCP}.Key(),
		ipvs.Service{FWMark: 7}.Key(),
	}
	if err := writeOwned(path, keys); err != nil {
		t.Fatal(err)
	}
	if got := readOwned(path); !slices.Equal(got, keys) {
		t.Fatalf("read back %v, want %v", got, keys)
	}
	if got := readOwned(filepath.Join(t.TempDir(), "missing.json")); got != nil {
		t.Fatalf("missing file: %v", got)
	}
}
