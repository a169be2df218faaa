package health

// Quorum is the pure quorum state of one virtual server, keepalived's rule
// (check/ipwrapper.c, update_quorum_state):
//
//   - a DOWN service comes UP when the live weight (the sum of the weights
//     of its up real servers) reaches quorum + hysteresis;
//   - an UP service goes DOWN when the live weight is zero or falls below
//     quorum - hysteresis.
//
// A service starts DOWN; its first Update reports changed when it is UP.
// VRRP tracks it: a node with nothing to serve gives up the VIP.
type Quorum struct {
	quorum, hysteresis int
	up                 bool
	live               int
}

// NewQuorum returns a Quorum; quorum is at least 1 (keepalived's minimum and
// default) and hysteresis at least 0.
func NewQuorum(quorum, hysteresis int) *Quorum {
	return &Quorum{quorum: max(quorum, 1), hysteresis: max(hysteresis, 0)}
}

// Update takes the current live weight and returns the state and whether it
// changed.
func (q *Quorum) Update(liveWeight int) (up bool, changed bool) {
	q.live = liveWeight
	switch {
	case !q.up && liveWeight >= q.quorum+q.hysteresis:
		q.up = true
		return true, true
	case q.up && (liveWeight <= 0 || liveWeight < q.quorum-q.hysteresis):
		q.up = false
		return false, true
	}
	return q.up, false
}

// Up reports the current state.
func (q *Quorum) Up() bool { return q.up }

// LiveWeight is the weight given to the last Update.
func (q *Quorum) LiveWeight() int { return q.live }

// Thresholds returns the live weight needed to come up and the weight below
// which an up service goes down.
func (q *Quorum) Thresholds() (upAt, downBelow int) {
	return q.quorum + q.hysteresis, q.quorum - q.hysteresis
}
