//go:build !race

package config

// raceEnabled is true when the tests run under the race detector.
const raceEnabled = false
