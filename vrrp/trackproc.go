package vrrp

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// ProcConfig is one vrrp_track_process (keepalived's track_process): the
// instance is healthy while between Quorum and QuorumMax processes match.
type ProcConfig struct {
	Name    string
	Process string   // the command name (or with FullCommand the whole command line)
	Params  []string // arguments to match
	// ParamMatch: "" (all arguments equal), "partial" (the first len(Params)
	// equal) or "initial" (as partial, the last one a prefix).
	ParamMatch     string
	ParamsSet      bool // match arguments even if Params is empty (param_match given)
	FullCommand    bool
	Weight         int
	Reverse        bool
	Quorum         int // default 1
	QuorumMax      int // <0: unlimited
	ForkDelay      time.Duration
	TerminateDelay time.Duration
}

// TrackProcRef is a track_process entry of an instance.
type TrackProcRef struct {
	Name      string
	Weight    int
	WeightSet bool // Weight and Reverse override the process tracker's
	Reverse   bool
}

const trackProcPrefix = "process "

// procValue is a tracker's reported verdict and the pending one (delays).
type procValue struct {
	ok      bool
	count   int
	reason  string
	pending bool      // the raw verdict differs from ok
	since   time.Time // when it started to differ
}

// procInfo is what the scan knows of one process.
type procInfo struct {
	comm string   // /proc/PID/stat's name (at most 15 bytes)
	argv []string // /proc/PID/cmdline, when needed
}

// scanProcs lists the running (not zombie) processes under root (/proc).
func scanProcs(root string, withArgs bool) []procInfo {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	out := make([]procInfo, 0, len(ents))
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(root, e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		i, j := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if i < 0 || j < i || j+2 >= len(stat) || stat[j+2] == 'Z' || stat[j+2] == 'X' {
			continue
		}
		p := procInfo{comm: string(stat[i+1 : j])}
		if withArgs {
			if cl, err := os.ReadFile(filepath.Join(root, e.Name(), "cmdline")); err == nil && len(cl) > 0 {
				p.argv = strings.Split(strings.TrimSuffix(string(cl), "\x00"), "\x00")
			}
		}
		out = append(out, p)
	}
	return out
}

// needsArgs reports whether matching pc reads command lines.
func (pc ProcConfig) needsArgs() bool { return pc.FullCommand || pc.ParamsSet || len(pc.Params) > 0 }

// matches applies keepalived's rules: the process name (as in
// /proc/PID/status, 15 bytes at most) without arguments; argv[0] (or its base
// name) and the arguments with them; the whole command line with
// full_command.
func (pc ProcConfig) matches(p procInfo) bool {
	if pc.FullCommand {
		want := strings.Join(append([]string{pc.Process}, pc.Params...), " ")
		return len(p.argv) > 0 && strings.Join(p.argv, " ") == want
	}
	if !pc.needsArgs() {
		name := pc.Process
		if len(name) > 15 {
			name = name[:15]
		}
		return p.comm == name
	}
	if len(p.argv) == 0 || (p.argv[0] != pc.Process && filepath.Base(p.argv[0]) != pc.Process) {
		return false
	}
	args := p.argv[1:]
	switch pc.ParamMatch {
	case "partial":
		return len(args) >= len(pc.Params) && slices.Equal(args[:len(pc.Params)], pc.Params)
	case "initial":
		n := len(pc.Params)
		if n == 0 {
			return true
		}
		return len(args) >= n && slices.Equal(args[:n-1], pc.Params[:n-1]) && strings.HasPrefix(args[n-1], pc.Params[n-1])
	}
	return slices.Equal(args, pc.Params)
}

// verdict is whether count meets the quorum.
func (pc ProcConfig) verdict(count int) (bool, string) {
	ok := count >= pc.Quorum && (pc.QuorumMax < 0 || count <= pc.QuorumMax)
	q := strconv.Itoa(pc.Quorum)
	if pc.QuorumMax >= 0 {
		q += ".." + strconv.Itoa(pc.QuorumMax)
	}
	return ok, fmt.Sprintf("%d running, quorum %s", count, q)
}

// step moves a tracker's value to the raw verdict of a scan at now, after
// fork_delay (to OK) or terminate_delay (to failed).
func (pc ProcConfig) step(v procValue, count int, now time.Time) procValue {
	ok, reason := pc.verdict(count)
	v.count, v.reason = count, reason
	if ok == v.ok {
		v.pending = false
		return v
	}
	delay := pc.TerminateDelay
	if ok {
		delay = pc.ForkDelay
	}
	if !v.pending {
		v.pending, v.since = true, now
	}
	if now.Sub(v.since) >= delay {
		v.ok, v.pending = ok, false
	}
	return v
}

// procState applies the script weight rule (keepalived uses the same table
// for track_process) to a verdict.
func procState(name string, weight int, reverse bool, v procValue) TrackerState {
	st := scriptState(name, weight, reverse, scriptResult{ok: v.ok, reason: v.reason})
	st.Reason = "process " + strings.TrimPrefix(st.Reason, "script ")
	return st
}

// scanProcsLocked counts the matching processes of every tracker now and
// moves their verdicts; it reports whether one changed. At start (first)
// there is no delay. r.mu held.
func (r *Router) scanProcsLocked(now time.Time, first bool) bool {
	if len(r.cfg.Procs) == 0 {
		r.procVals = map[string]procValue{}
		return false
	}
	withArgs := slices.ContainsFunc(r.cfg.Procs, ProcConfig.needsArgs)
	procs := scanProcs(r.procRoot, withArgs)
	changed := false
	vals := make(map[string]procValue, len(r.cfg.Procs))
	for _, pc := range r.cfg.Procs {
		count := 0
		for _, p := range procs {
			if pc.matches(p) {
				count++
			}
		}
		old, known := r.procVals[pc.Name]
		var v procValue
		if first || !known {
			v.ok, v.reason = pc.verdict(count)
			v.count = count
		} else {
			v = pc.step(old, count, now)
		}
		if !known || v.ok != old.ok || v.reason != old.reason {
			changed = true
			if known && v.ok != old.ok {
				r.log.Info("track_process changed", zap.String("process", pc.Name), zap.Bool("ok", v.ok), zap.String("state", v.reason))
			}
		}
		vals[pc.Name] = v
	}
	r.procVals = vals
	return changed
}

// pushProcTrackers sets the track_process contributions of in. r.mu held.
func (r *Router) pushProcTrackers(in *instance, cfg InstanceConfig, want map[string]bool) {
	for _, ref := range cfg.TrackProcs {
		i := slices.IndexFunc(r.cfg.Procs, func(p ProcConfig) bool { return p.Name == ref.Name })
		if i < 0 {
			continue
		}
		pc := r.cfg.Procs[i]
		w, rev := pc.Weight, pc.Reverse
		if ref.WeightSet {
			w, rev = ref.Weight, ref.Reverse
		}
		name := trackProcPrefix + ref.Name
		want[name] = true
		in.setTracker(name, procState(ref.Name, w, rev, r.procVals[ref.Name]))
	}
}
