// Package poll waits for a condition in tests: it checks cond on a ticker until it holds or the
// deadline passes, instead of sleeping a guessed time.
package poll

import "time"

// Until calls cond every interval until it returns true (then Until returns true) or timeout
// passes (then it returns cond's last answer).
func Until(timeout, interval time.Duration, cond func() bool) bool {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-deadline:
			return cond()
		case <-tick.C:
		}
	}
	return true
}
