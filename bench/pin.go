package bench

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// With Options.Pin the proxy under test gets CPU 0 and everything else (this process with its
// load generator, the backends, wrk) gets the other CPUs, like anchor-bench.sh's PIN=1.

// proxyCPUs and loadCPUs are the taskset lists for the two sides.
func proxyCPUs() string { return "0" }

func loadCPUs(ncpu int) string {
	if ncpu == 2 {
		return "1"
	}
	return "1-" + strconv.Itoa(ncpu-1)
}

// pinSelf sets the affinity of every thread of this process to CPUs 1..ncpu-1 and returns a
// function that restores the previous affinity. Threads started later inherit the mask of the
// thread that starts them, so two passes over /proc/self/task catch the ones that appear
// during the first.
func pinSelf(ncpu int) (restore func(), err error) {
	if ncpu < 2 {
		return nil, fmt.Errorf("bench: pin: needs 2 CPUs, have %d", ncpu)
	}
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("bench: pin: get affinity: %w", err)
	}
	for c := 1; c < ncpu; c++ {
		set.Set(c)
	}
	apply := func(s *unix.CPUSet) error {
		for range 2 {
			ents, err := os.ReadDir("/proc/self/task")
			if err != nil {
				return err
			}
			for _, e := range ents {
				tid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				if err := unix.SchedSetaffinity(tid, s); err != nil && err != unix.ESRCH {
					return err
				}
			}
		}
		return nil
	}
	if err := apply(&set); err != nil {
		apply(&old)
		return nil, fmt.Errorf("bench: pin: set affinity: %w", err)
	}
	return func() { _ = apply(&old) }, nil
}

// selfAffinity is the CPU count this thread may run on.
func selfAffinity() int {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		return 0
	}
	return s.Count()
}
