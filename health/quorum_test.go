package health

import "testing"

func TestQuorumHysteresis(t *testing.T) {
	q := NewQuorum(4, 1) // up at >= 5, down below 3
	steps := []struct {
		live        int
		up, changed bool
	}{
		{4, false, false}, // starts down, 4 < 5
		{5, true, true},
		{4, true, false}, // inside the band
		{3, true, false},
		{2, false, true},
		{4, false, false},
		{5, true, true},
		{0, false, true},
	}
	for i, s := range steps {
		up, changed := q.Update(s.live)
		if up != s.up || changed != s.changed {
			t.Fatalf("step %d live %d: got up=%v changed=%v, want %v %v", i, s.live, up, changed, s.up, s.changed)
		}
	}
}

func TestQuorumZeroLiveAlwaysDown(t *testing.T) {
	q := NewQuorum(1, 3) // down threshold 1-3 = -2: only "live == 0" takes it down
	if up, _ := q.Update(4); !up {
		t.Fatal("want up at 4")
	}
	if up, _ := q.Update(1); !up {
		t.Fatal("want still up at 1")
	}
	if up, changed := q.Update(0); up || !changed {
		t.Fatal("no live weight must lose quorum")
	}
	if q2 := NewQuorum(0, 0); q2.quorum != 1 {
		t.Fatal("quorum must be at least 1")
	}
}
