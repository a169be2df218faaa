package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// proc is a child process in its own process group; stop ends the whole group.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

// startProc starts argv in a new process group with stdout and stderr to dir/name.log.
// env is added to the harness's environment.
func startProc(dir, name string, env []string, argv ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	defer logf.Close() // the child holds its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: Ctrl-C on the terminal reaches only the harness, which stops the
	// group; Pdeathsig covers the harness being killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pgid() int { return p.cmd.Process.Pid }

// exited reports whether the process (the group leader) has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, waits up to grace for the leader and then sends
// SIGKILL to whatever is left of the group. It is safe to call more than once.
func (p *proc) stop(grace time.Duration) {
	pg := p.pgid()
	if p.exited() && len(groupPIDs(pg)) == 0 {
		return // nothing left; don't signal a group id that may be reused
	}
	_ = syscall.Kill(-pg, syscall.SIGTERM)
	t := time.NewTimer(grace)
	select {
	case <-p.done:
	case <-t.C:
	}
	t.Stop()
	_ = syscall.Kill(-pg, syscall.SIGKILL) // workers that outlived their master
	<-p.done
}

// logTail returns the last n bytes of the process's log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// groupSample is the resident memory and CPU time of the live processes of a process group.
type groupSample struct {
	rssKiB   int64   // sum of VmRSS
	anonKiB  int64   // sum of RssAnon: VmRSS less the pages of files (the executable, libraries) and shared memory
	cpuTicks uint64  // sum of utime+stime, in USER_HZ ticks
	procs    int     // processes found
	cpuSecs  float64 // cpuTicks in seconds
}

// userHZ is the unit of /proc/PID/stat times; it is 100 on every Linux ABI Go supports.
const userHZ = 100

// sampleGroup reads /proc for the processes whose process group is pgid. Processes that
// exited are not counted (their CPU time is lost), which is fine for long-lived proxies.
func sampleGroup(pgid int) (groupSample, error) {
	var s groupSample
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return s, fmt.Errorf("bench: sample process group: %w", err)
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		pg, ticks, ok := parseStat(st)
		if !ok || pg != pgid {
			continue
		}
		status, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		s.procs++
		s.cpuTicks += ticks
		s.rssKiB += statusKiB(status, "VmRSS:")
		s.anonKiB += statusKiB(status, "RssAnon:")
	}
	if s.procs == 0 {
		return s, fmt.Errorf("bench: sample process group %d: %w", pgid, errNoProcs)
	}
	s.cpuSecs = float64(s.cpuTicks) / userHZ
	return s, nil
}

var errNoProcs = errors.New("no live process")

// parseStat returns the process group and utime+stime from /proc/PID/stat.
func parseStat(b []byte) (pgrp int, ticks uint64, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	// f[0] state, f[1] ppid, f[2] pgrp, ..., f[11] utime, f[12] stime
	if len(f) < 13 {
		return 0, 0, false
	}
	pg, err1 := strconv.Atoi(string(f[2]))
	ut, err2 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err3 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return pg, ut + st, true
}

// statusKiB returns the field named key ("VmRSS:") in KiB from /proc/PID/status (0 for kernel
// threads or when absent).
func statusKiB(b []byte, key string) int64 {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte(key))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		v, _ := strconv.ParseInt(string(f[0]), 10, 64)
		return v
	}
	return 0
}

// machineSecs reads the first line of /proc/stat: the machine-wide CPU time
// spent in tasks or stolen by the hypervisor (busy: user, nice, system, steal;
// not irq or softirq) and the time no CPU had anything to run (idle: idle and
// iowait), in seconds. Interrupt and softirq time is left out of busy because
// the kernel charges it to no task (with IRQ_TIME_ACCOUNTING), so loopback
// traffic would look like someone else's work.
func machineSecs() (busy, idle float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("bench: read /proc/stat: %w", err)
	}
	return parseProcStat(b)
}

func parseProcStat(b []byte) (busy, idle float64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("bench: /proc/stat: unexpected first line %q", line)
	}
	var nb, ni uint64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("bench: /proc/stat: %w", err)
		}
		switch i {
		case 0, 1, 2, 7:
			nb += n
		case 3, 4:
			ni += n
		}
	}
	return float64(nb) / userHZ, float64(ni) / userHZ, nil
}

// selfCPUSecs is this process's user+system CPU time.
func selfCPUSecs() (float64, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, fmt.Errorf("bench: read /proc/self/stat: %w", err)
	}
	_, ticks, ok := parseStat(b)
	if !ok {
		return 0, fmt.Errorf("bench: /proc/self/stat: %w", errMalformed)
	}
	return float64(ticks) / userHZ, nil
}

// groupFDs counts the open file descriptors of the live processes of a process group.
func groupFDs(pgid int) int {
	n := 0
	for _, pid := range groupPIDs(pgid) {
		ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
		if err == nil {
			n += len(ents)
		}
	}
	return n
}

// groupPIDs lists the live processes whose process group is pgid.
func groupPIDs(pgid int) []int {
	var pids []int
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if pg, _, ok := parseStat(st); ok && pg == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}
