// Package health checks real servers and decides when they leave and rejoin
// the farm, with keepalived's checkers and timing.
//
// It has three layers:
//
//   - Checkers (TCPChecker, HTTPChecker, PingChecker, MiscChecker): one small
//     type each behind the Checker interface. A Check is one attempt; it
//     returns a Result with a short, precise Reason.
//   - Monitor and Quorum: pure state machines. Monitor turns Results and an
//     explicit clock into transitions (rise, fall, retry, delay_before_retry,
//     alpha) and the time of the next check. Quorum computes a virtual
//     server's state from the live weight, as keepalived does.
//   - Scheduler: the thin shell. It runs each target's checkers on timers,
//     feeds the Monitors, reports every transition once through a callback,
//     runs notify scripts and keeps counters for Status.
//
// The package imports nothing of the project; the daemon wires transitions
// into the proxy's pools and quorum changes into VRRP tracking.
// docs/health.md describes the semantics and the choices made.
package health
