package balance

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// FuzzParseAlgo: lb_algo comes from the configuration file. Whatever it
// parses must print as a name that parses to the same Algo.
func FuzzParseAlgo(f *testing.F) {
	for _, s := range []string{"rr", "wrr", "lc", "wlc", "sh", "dh", "mh", "lblc", "lblcr", "sed", "nq", "fo", "ovf", "", "RR", " wlc\t", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAlgo(s)
		if err != nil {
			return
		}
		if a > MH {
			t.Fatalf("ParseAlgo(%q) = %d, out of range", s, a)
		}
		if b, err := ParseAlgo(a.String()); err != nil || b != a {
			t.Fatalf("round trip %q -> %v -> %v, %v", s, a, b, err)
		}
	})
}

// FuzzPool drives a pool with an arbitrary sequence of operations and checks
// the invariants after each: Eligible and LiveWeight agree with Views, and
// Pick returns only an allowed backend (eligible, in the right tier; the
// sorry server exactly when nothing is eligible), never an excluded one.
func FuzzPool(f *testing.F) {
	f.Add([]byte{0, 3, 4, 0, 4, 1, 0, 0x08, 4, 2})
	f.Add([]byte{0x81, 5, 2, 0x12, 0, 3, 4, 7, 3, 0x1f, 4, 9})
	f.Add([]byte{0xc4, 8, 1, 0x01, 2, 1, 5, 2, 4, 4, 0, 0, 4, 5})
	f.Add([]byte{0x46, 2, 0, 1, 0, 0, 4, 3, 5, 0, 5, 0, 4, 1})
	f.Add([]byte{0x02, 6, 5, 1, 6, 0xc4, 5, 3, 0, 0x02, 6, 0x07, 5, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		algo := Algo(data[0] % 7)
		o := Options{}
		if data[0]&0x80 != 0 {
			o.Sorry = &Member{Name: "sorry", Addr: netip.MustParseAddrPort("127.0.0.1:9")}
		}
		persist := data[0]&0x40 != 0
		if persist {
			o.PersistTimeout = time.Minute
			o.PersistMax = 64
		}
		all := make([]Member, 8)
		for i := range all {
			all[i] = Member{
				Name:    fmt.Sprintf("m%d", i),
				Addr:    netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}), 80),
				Weight:  i%4 + 1,
				MaxConn: i % 3, // 0 (unlimited), 1 or 2
				Backup:  i >= 6,
			}
		}
		n := int(data[1]%8) + 1
		p := NewPool(algo, all[:n], o)
		now := t0
		var held []*Backend
		defer func() {
			for _, b := range held {
				b.Release()
			}
		}()
		for i := 2; i+1 < len(data); i += 2 {
			op, arg := data[i]%7, data[i+1]
			name := fmt.Sprintf("m%d", arg%8)
			switch op {
			case 0:
				_ = p.SetUp(name, arg&0x08 != 0)
			case 1:
				_ = p.SetWeight(name, int(arg>>4))
			case 2:
				_ = p.SetAdmin(name, AdminState(arg>>4%3))
			case 3:
				var ms []Member
				for j := range all {
					if arg&(1<<j) != 0 {
						ms = append(ms, all[j])
					}
				}
				p.Update(ms)
			case 4:
				now = now.Add(time.Duration(arg) * time.Second)
			case 5:
				if b := p.Pick(clientAddr(int(arg), arg&1 == 1), now, nil); b != nil && b.Acquire() {
					held = append(held, b)
				}
			case 6: // reload with another scheduler and options
				o := Options{}
				if arg&0x80 != 0 {
					o.Sorry = &Member{Name: "sorry", Addr: netip.MustParseAddrPort("127.0.0.1:9")}
				}
				persist = arg&0x40 != 0
				if persist {
					o.PersistTimeout = time.Minute
					o.PersistMax = 64
					o.PersistMask4 = int(arg>>3&7) + 24
				}
				p.Reconfigure(Algo(arg%8), all[:n], o)
			}
			checkPool(t, p, p.Algo(), persist, clientAddr(int(arg), arg&2 == 2), now)
		}
	})
}

func checkPool(t *testing.T, p *Pool, algo Algo, persist bool, c netip.Addr, now time.Time) {
	t.Helper()
	views := p.Views()
	byName := map[string]BackendView{}
	var primaries, backups, livePrim, liveBack int
	for _, v := range views {
		byName[v.Name] = v
		if v.Sorry || !v.Eligible {
			continue
		}
		if v.Backup {
			backups++
			liveBack += v.Weight
		} else {
			primaries++
			livePrim += v.Weight
		}
	}
	live := livePrim
	if primaries == 0 {
		live = liveBack
	}
	if p.Eligible() != primaries+backups || p.LiveWeight() != live {
		t.Fatalf("Eligible %d LiveWeight %d, views say %d and %d: %+v", p.Eligible(), p.LiveWeight(), primaries+backups, live, views)
	}
	allowed := func(b *Backend) bool {
		v := byName[b.Name()]
		if persist && !v.Sorry && v.Up && v.Admin != Maint && (!v.Backup || primaries == 0) {
			return true // a persistent client may stay on a drained member
		}
		if primaries+backups == 0 {
			return v.Sorry
		}
		return !v.Sorry && v.Eligible && v.Backup == (primaries == 0)
	}
	b := p.Pick(c, now, nil)
	if b == nil {
		if primaries+backups == 0 {
			if _, sorry := byName["sorry"]; sorry {
				t.Fatal("nothing eligible and no sorry server returned")
			}
			return
		}
		// Only the non-hash schedulers may find every candidate full.
		if algo == SH || algo == DH || algo == MH {
			t.Fatalf("%v returned nil with %d eligible", algo, primaries+backups)
		}
		for _, v := range views {
			if v.Eligible && v.Backup == (primaries == 0) && (v.MaxConn == 0 || v.Active < int64(v.MaxConn)) {
				t.Fatalf("%v returned nil while %s has room", algo, v.Name)
			}
		}
		return
	}
	if !allowed(b) {
		t.Fatalf("%v picked %s: %+v (all: %+v)", algo, b.Name(), byName[b.Name()], views)
	}
	if b2 := p.Pick(c, now, []*Backend{b}); b2 == b {
		t.Fatalf("%v picked excluded %s", algo, b.Name())
	} else if b2 != nil && !allowed(b2) {
		t.Fatalf("%v retry picked %s: %+v", algo, b2.Name(), byName[b2.Name()])
	}
}
