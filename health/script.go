package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ScriptOptions say how scripts (MISC_CHECK, notify_up/down, quorum_up/down)
// run, as keepalived's global_defs do.
type ScriptOptions struct {
	// User and Group are script_user [group]: scripts run with their uid and
	// gid when halb runs as root. Empty: the current user.
	User, Group string
	// Security is enable_script_security: refuse to run a script that a
	// non-root user could change.
	Security bool
	// OutputLimit bounds the stdout+stderr kept from a script (default 4 KiB);
	// the rest is read and discarded, so a flooding script never blocks.
	OutputLimit int
}

const defaultOutputLimit = 4 << 10

// ErrInsecureScript is returned (wrapped) for a script refused by
// enable_script_security.
var ErrInsecureScript = errors.New("insecure script")

// shellMeta are the characters that need a shell when they appear outside
// quotes. Anything else is split and executed directly, as keepalived does.
const shellMeta = "|&;<>()$`\\*?[]#~{}\n"

// ParseCommand splits a configured command line into words the way
// keepalived does for scripts: on spaces and tabs, with single or double
// quotes grouping words (quotes removed, no escapes inside single quotes;
// backslash escapes the next character inside double quotes). useShell
// reports that the line contains shell syntax outside quotes (pipes,
// redirections, variables, globs, ...): such a line runs as
// `/bin/sh -c LINE` instead.
func ParseCommand(line string) (words []string, useShell bool, err error) {
	var (
		cur    strings.Builder
		inWord bool
		quote  rune
		escape bool
	)
	for _, r := range line {
		switch {
		case escape:
			cur.WriteRune(r)
			escape = false
		case quote == '"' && r == '\\':
			escape = true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote = r
			inWord = true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			if strings.ContainsRune(shellMeta, r) {
				useShell = true
			}
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, false, fmt.Errorf("script: parse %q: unterminated %c quote", line, quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, false, fmt.Errorf("script: parse %q: empty command", line)
	}
	return words, useShell, nil
}

// CheckScriptSecurity applies keepalived's check_script_secure rule to the
// program of a command line: resolved through PATH when bare, then each
// path component from / down to the file itself (and again for the
// symlink-resolved path) must be owned by root and not writable by group
// (unless the group is root) or others; a directory with the sticky bit is
// allowed to be writable. It returns nil for a safe script, an error
// wrapping ErrInsecureScript for an unsafe one, another error when the
// program cannot be found.
func CheckScriptSecurity(line string) error {
	words, shell, err := ParseCommand(line)
	if err != nil {
		return err
	}
	prog := words[0]
	if shell {
		prog = "/bin/sh"
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		return fmt.Errorf("script: find %q: %w", prog, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("script: find %q: %w", prog, err)
	}
	if err := checkPathSecure(abs); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("script: resolve %q: %w", abs, err)
	}
	if real != abs {
		return checkPathSecure(real)
	}
	return nil
}

func checkPathSecure(path string) error {
	parts := strings.Split(filepath.Clean(path), "/")
	cur := "/"
	for i, p := range parts {
		if i > 0 {
			cur = filepath.Join(cur, p)
		} else if p != "" {
			return fmt.Errorf("script: %q is not absolute", path)
		}
		fi, err := os.Lstat(cur)
		if err != nil {
			return fmt.Errorf("script: check %q: %w", cur, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("script: check %q: no owner information", cur)
		}
		mode := fi.Mode()
		last := i == len(parts)-1
		if !last && !mode.IsDir() {
			return fmt.Errorf("script: %q: %w: %s is not a directory", path, ErrInsecureScript, cur)
		}
		if st.Uid != 0 {
			return fmt.Errorf("script: %q: %w: %s is owned by uid %d, not root", path, ErrInsecureScript, cur, st.Uid)
		}
		checkWrite := (mode.IsDir() && mode&fs.ModeSticky == 0) || mode.IsRegular()
		if checkWrite && ((st.Gid != 0 && mode.Perm()&0o020 != 0) || mode.Perm()&0o002 != 0) {
			return fmt.Errorf("script: %q: %w: %s is writable by non-root (mode %s, gid %d)", path, ErrInsecureScript, cur, mode.Perm(), st.Gid)
		}
	}
	return nil
}

// boundedBuffer keeps the first limit bytes written and counts the rest.
type boundedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	limit   int
	dropped int64
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.limit - b.buf.Len()
	if room > len(p) {
		room = len(p)
	}
	if room > 0 {
		b.buf.Write(p[:room])
	}
	b.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scriptRun is the outcome of one script run.
type scriptRun struct {
	exitCode int // -1 when killed by a signal or not started
	signal   syscall.Signal
	timedOut bool
	output   string
	err      error // could not start, or refused
}

// runScript runs line with opts, in its own process group; at ctx's end the
// whole group gets SIGKILL. Output goes to a bounded buffer.
func runScript(ctx context.Context, line string, opts ScriptOptions) scriptRun {
	words, shell, err := ParseCommand(line)
	if err != nil {
		return scriptRun{exitCode: -1, err: err}
	}
	if opts.Security {
		if err := CheckScriptSecurity(line); err != nil {
			return scriptRun{exitCode: -1, err: err}
		}
	}
	if shell {
		words = []string{"/bin/sh", "-c", line}
	}
	cmd := exec.CommandContext(ctx, words[0], words[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cred, err := scriptCredential(opts); err != nil {
		return scriptRun{exitCode: -1, err: err}
	} else if cred != nil {
		cmd.SysProcAttr.Credential = cred
	}
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	limit := opts.OutputLimit
	if limit <= 0 {
		limit = defaultOutputLimit
	}
	out := &boundedBuffer{limit: limit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error {
		// The negative pid names the process group (Setpgid made the
		// child its leader): grandchildren die too.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A grandchild that left the group and holds our pipes must not keep
	// Wait blocked.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	run := scriptRun{exitCode: -1, output: out.String()}
	if cmd.ProcessState != nil {
		run.exitCode = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			run.signal = ws.Signal()
		}
	} else if err != nil {
		run.err = fmt.Errorf("script: start %s: %w", words[0], err)
	}
	if ctx.Err() != nil && (run.signal == syscall.SIGKILL || cmd.ProcessState == nil) {
		run.timedOut = true
	}
	return run
}

func scriptCredential(opts ScriptOptions) (*syscall.Credential, error) {
	if opts.User == "" || os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(opts.User)
	if err != nil {
		return nil, fmt.Errorf("script: user %q: %w", opts.User, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("script: user %q: uid %q: %w", opts.User, u.Uid, err)
	}
	gidStr := u.Gid
	if opts.Group != "" {
		g, err := user.LookupGroup(opts.Group)
		if err != nil {
			return nil, fmt.Errorf("script: group %q: %w", opts.Group, err)
		}
		gidStr = g.Gid
	}
	gid, err := strconv.ParseUint(gidStr, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("script: group %q: gid %q: %w", opts.Group, gidStr, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: false}, nil
}

// firstLine is the first non-empty line of a script's output, clipped.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return clip(l, 80)
		}
	}
	return ""
}
