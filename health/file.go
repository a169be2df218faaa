package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// FileChecker is keepalived's FILE_CHECK: the number at the start of Path
// (a track_file's file; missing or not a number reads as 0) times Weight
// (negated with Reverse) is the file's status, bounded to -254..253. With
// Weight 0 any non-zero value takes the server down. Otherwise a status of
// -254 takes it down, and with Dynamic the status is added to BaseWeight
// (the real server's weight) as the server's dynamic weight.
type FileChecker struct {
	Path       string
	Weight     int
	Reverse    bool
	Dynamic    bool
	BaseWeight int
}

const maxFileCheck = 4096 // bytes read

// Check implements Checker.
func (c *FileChecker) Check(ctx context.Context) Result {
	start := time.Now()
	v, note := readNumberFile(c.Path)
	down, status := fileStatus(v, c.Weight, c.Reverse)
	if down {
		return fail(start, fmt.Sprintf("file %s: %s", c.Path, note))
	}
	r := pass(start)
	if c.Dynamic {
		r.Weight, r.HasWeight = max(c.BaseWeight+status, 0), true
	}
	return r
}

// fileStatus is keepalived's track_file arithmetic for a checker.
func fileStatus(v int64, weight int, reverse bool) (down bool, status int) {
	if weight == 0 {
		return v != 0, 0
	}
	w := int64(weight)
	if reverse {
		w = -w
	}
	s := v * w
	if v != 0 && s/v != w { // overflow: saturate with the product's sign
		s = -254
		if (v > 0) == (w > 0) {
			s = 253
		}
	}
	s = min(max(s, -254), 253)
	return s <= -254, int(s)
}

// readNumberFile reads the number at the start of path as strtol does
// (blanks, a sign, digits), saturating at ±2^31. note says what was read.
func readNumberFile(path string) (int64, string) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, "missing, read as 0"
		}
		return 0, fmt.Sprintf("unreadable (%v), read as 0", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileCheck))
	if err != nil {
		return 0, fmt.Sprintf("unreadable (%v), read as 0", err)
	}
	s := strings.TrimLeft(string(b), " \t\r\n\v\f")
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var v int64
	digits := 0
	for ; digits < len(s) && s[digits] >= '0' && s[digits] <= '9'; digits++ {
		if v < 1<<31 {
			v = v*10 + int64(s[digits]-'0')
		}
	}
	if digits == 0 {
		return 0, "not a number, read as 0"
	}
	v = min(v, 1<<31)
	if neg {
		v = -v
	}
	return v, fmt.Sprintf("value %d", v)
}

func (c *FileChecker) String() string { return "FILE_CHECK " + c.Path }

func (c *FileChecker) sameConfig(o Checker) bool {
	oc, ok := o.(*FileChecker)
	return ok && *oc == *c
}
