package vrrp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// FileConfig is one vrrp_track_file: a file holding a number (keepalived's
// track_file). With weight 0 a non-zero value means FAULT; otherwise value ×
// weight is added to the priority, and a result below -253 means FAULT.
type FileConfig struct {
	Name      string
	Path      string
	Weight    int // keepalived's default is 1
	Reverse   bool
	Init      bool // init_file: write InitValue at start if the file is missing
	InitValue int
	Overwrite bool // init_file ... overwrite: write it even if the file exists
}

// TrackFileRef is a track_file entry of an instance.
type TrackFileRef struct {
	Name      string
	Weight    int
	WeightSet bool // Weight and Reverse override the file's
	Reverse   bool
}

const (
	trackFilePrefix = "file "
	// defaultTrackPoll is how often tracked files are looked at (a stat; the
	// file is read only when its size, time or inode changed) and processes
	// counted.
	defaultTrackPoll = time.Second
	maxTrackFile     = 4096 // bytes read from a tracked file
)

// fileValue is what a tracked file said last.
type fileValue struct {
	val    int64
	reason string // "value N", or why the value is 0
}

// readTrackFile reads the number at the start of path as keepalived does
// (strtol: blanks, a sign, digits; anything else ends it). A missing,
// unreadable or non-numeric file counts as 0, and the reason says so.
func readTrackFile(path string) fileValue {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fileValue{reason: "missing, read as 0"}
		}
		return fileValue{reason: fmt.Sprintf("unreadable (%v), read as 0", err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTrackFile))
	if err != nil {
		return fileValue{reason: fmt.Sprintf("unreadable (%v), read as 0", err)}
	}
	v, ok := parseLeadingInt(string(b))
	if !ok {
		return fileValue{reason: "not a number, read as 0"}
	}
	return fileValue{val: v, reason: "value " + strconv.FormatInt(v, 10)}
}

// parseLeadingInt parses an optional sign and decimal digits after leading
// white space, saturating at ±2^31 (keepalived's range for the value).
func parseLeadingInt(s string) (int64, bool) {
	s = strings.TrimLeft(s, " \t\r\n\v\f")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var v int64
	n := 0
	for ; n < len(s) && s[n] >= '0' && s[n] <= '9'; n++ {
		v = min(v*10+int64(s[n]-'0'), 1<<31)
	}
	if n == 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// fileState applies keepalived's track_file rule to a value.
func fileState(name string, weight int, reverse bool, fv fileValue) TrackerState {
	rev := ""
	if reverse {
		rev = ", reverse"
	}
	if weight == 0 {
		bad := fv.val != 0
		if reverse {
			bad = !bad
		}
		if bad {
			return TrackerState{Fault: true, Reason: fmt.Sprintf("file %s %s (weight 0%s)", name, fv.reason, rev)}
		}
		return TrackerState{Reason: fmt.Sprintf("file %s %s", name, fv.reason)}
	}
	res := fv.val * int64(weight)
	if reverse {
		res = -res
	}
	if res < -253 {
		return TrackerState{Fault: true, Reason: fmt.Sprintf("file %s %s × weight %d%s = %d, below -253", name, fv.reason, weight, rev, res)}
	}
	res = min(res, 253)
	return TrackerState{Weight: int(res), Reason: fmt.Sprintf("file %s %s × weight %d%s", name, fv.reason, weight, rev)}
}

// initTrackFile writes init_file's value, when asked and needed.
func initTrackFile(log *zap.Logger, f FileConfig) {
	if !f.Init {
		return
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !f.Overwrite {
		flags |= os.O_EXCL
	}
	fh, err := os.OpenFile(f.Path, flags, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return
	}
	if err == nil {
		_, err = fmt.Fprintf(fh, "%d\n", f.InitValue)
		err = errors.Join(err, fh.Close())
	}
	if err != nil {
		log.Warn("track_file: init_file", zap.String("file", f.Name), zap.String("path", f.Path), zap.Error(err))
	}
}

// fileStamp tells whether a file may have changed since it was read.
type fileStamp struct {
	path  string
	err   bool
	mod   time.Time
	size  int64
	inode uint64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{path: path, err: true}
	}
	st := fileStamp{path: path, mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.inode = sys.Ino
	}
	return st
}

// watchTracked looks at the tracked files and processes every interval until
// done closes, and reports changed values to the router.
func (r *Router) watchTracked(done <-chan struct{}, every time.Duration) {
	defer r.fileWG.Done()
	last := map[string]fileStamp{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		r.mu.Lock()
		files := r.cfg.Files
		r.mu.Unlock()
		seen := map[string]bool{}
		for _, f := range files {
			seen[f.Name] = true
			st := stampOf(f.Path)
			if old, ok := last[f.Name]; ok && old == st {
				continue
			}
			last[f.Name] = st
			r.fileChanged(f.Name, f.Path, readTrackFile(f.Path))
		}
		for name := range last {
			if !seen[name] {
				delete(last, name)
			}
		}
		r.mu.Lock()
		if r.started && r.scanProcsLocked(time.Now(), false) {
			for _, in := range r.instances {
				r.pushTrackers(in)
			}
		}
		r.mu.Unlock()
	}
}

// readFilesLocked reads every tracked file now (at start and on a reload),
// running init_file for files new to the router. r.mu held.
func (r *Router) readFilesLocked(old []FileConfig) {
	vals := map[string]fileValue{}
	for _, f := range r.cfg.Files {
		known := false
		for _, o := range old {
			known = known || (o.Name == f.Name && o.Path == f.Path)
		}
		if !known {
			initTrackFile(r.log, f)
		}
		vals[f.Name] = readTrackFile(f.Path)
	}
	r.fileVals = vals
}

// fileChanged records a tracked file's value and updates the instances.
func (r *Router) fileChanged(name, path string, fv fileValue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		return
	}
	for _, f := range r.cfg.Files {
		if f.Name != name || f.Path != path {
			continue
		}
		if old, ok := r.fileVals[name]; ok && old == fv {
			return
		}
		r.log.Info("track_file changed", zap.String("file", name), zap.String("path", path), zap.String("state", fv.reason))
		r.fileVals[name] = fv
		for _, in := range r.instances {
			r.pushTrackers(in)
		}
		return
	}
}

// pushFileTrackers sets the track_file contributions of in. r.mu held.
func (r *Router) pushFileTrackers(in *instance, cfg InstanceConfig, want map[string]bool) {
	for _, ref := range cfg.TrackFiles {
		i := slices.IndexFunc(r.cfg.Files, func(f FileConfig) bool { return f.Name == ref.Name })
		if i < 0 {
			continue
		}
		fc := r.cfg.Files[i]
		w, rev := fc.Weight, fc.Reverse
		if ref.WeightSet {
			w, rev = ref.Weight, ref.Reverse
		}
		name := trackFilePrefix + ref.Name
		want[name] = true
		in.setTracker(name, fileState(ref.Name, w, rev, r.fileVals[ref.Name]))
	}
}
