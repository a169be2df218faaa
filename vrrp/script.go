package vrrp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// splitCommand splits a keepalived command line on blanks; single or double
// quotes group words. (Hand-written: keepalived's rule is this simple.)
func splitCommand(s string) []string {
	var out []string
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// credential resolves a user name ("user" or "user group") for exec.
func credential(spec string) (*syscall.Credential, error) {
	f := strings.Fields(spec)
	if len(f) == 0 {
		return nil, nil
	}
	u, err := user.Lookup(f[0])
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if len(f) > 1 {
		g, err := user.LookupGroup(f[1])
		if err != nil {
			return nil, err
		}
		gid, _ = strconv.ParseUint(g.Gid, 10, 32)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// runCommand runs argv with a timeout in its own process group and kills
// the whole group when the timeout expires.
func runCommand(ctx context.Context, argv []string, timeout time.Duration, cred *syscall.Credential) error {
	if len(argv) == 0 {
		return errors.New("empty command")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error {
		// Negative pid: the process group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("timed out after %v", timeout)
	}
	return err
}

// checkScriptSecurity refuses a script that others than root can write
// (keepalived's enable_script_security, simplified to the file itself).
func checkScriptSecurity(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others", path)
	}
	return nil
}

// scriptRunner runs one vrrp_script periodically and reports rise/fall
// transitions of its verdict.
type scriptRunner struct {
	cfg      ScriptConfig
	log      *zap.Logger
	cred     *syscall.Credential
	security bool
	report   func(name string, ok bool, reason string)

	cancel context.CancelFunc
	done   chan struct{}
}

func newScriptRunner(log *zap.Logger, cfg ScriptConfig, defUser string, security bool, report func(string, bool, string)) (*scriptRunner, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = cfg.Interval
	}
	if cfg.Rise <= 0 {
		cfg.Rise = 1
	}
	if cfg.Fall <= 0 {
		cfg.Fall = 1
	}
	u := cfg.User
	if u == "" {
		u = defUser
	}
	cred, err := credential(u)
	if err != nil {
		return nil, fmt.Errorf("vrrp: vrrp_script %s: user %q: %w", cfg.Name, u, err)
	}
	return &scriptRunner{cfg: cfg, log: log.With(zap.String("script", cfg.Name)), cred: cred, security: security, report: report}, nil
}

// verdict is the rise/fall counter of a script; pure.
type verdict struct {
	ok         bool
	rise, fall int
	n          int // consecutive results against the current verdict
}

// add records one result and reports whether the verdict changed.
func (v *verdict) add(success bool) bool {
	if success == v.ok {
		v.n = 0
		return false
	}
	v.n++
	need := v.fall
	if success {
		need = v.rise
	}
	if v.n >= need {
		v.ok, v.n = success, 0
		return true
	}
	return false
}

func (s *scriptRunner) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go s.loop(ctx)
}

func (s *scriptRunner) stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

func (s *scriptRunner) loop(ctx context.Context) {
	defer close(s.done)
	v := verdict{ok: !s.cfg.InitFail, rise: s.cfg.Rise, fall: s.cfg.Fall}
	reason := "initial state"
	if s.cfg.InitFail {
		reason = "init_fail"
	}
	s.report(s.cfg.Name, v.ok, reason)
	argv := splitCommand(s.cfg.Script)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		var err error
		if s.security && len(argv) > 0 {
			err = checkScriptSecurity(argv[0])
		}
		if err == nil {
			err = runCommand(ctx, argv, s.cfg.Timeout, s.cred)
		}
		if ctx.Err() != nil {
			return
		}
		if v.add(err == nil) {
			reason := "succeeded"
			if err != nil {
				reason = "failed: " + err.Error()
			}
			s.log.Info("vrrp_script state changed", zap.Bool("ok", v.ok), zap.String("reason", reason))
			s.report(s.cfg.Name, v.ok, reason)
		} else {
			s.log.Debug("vrrp_script result", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// notifier runs notify scripts asynchronously, each with a timeout.
type notifier struct {
	log     *zap.Logger
	timeout time.Duration
	wg      sync.WaitGroup
}

func (n *notifier) run(cmdline string, args ...string) {
	argv := splitCommand(cmdline)
	if len(argv) == 0 {
		return
	}
	argv = append(argv, args...)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := runCommand(context.Background(), argv, n.timeout, nil); err != nil {
			n.log.Warn("notify script failed", zap.Strings("argv", argv), zap.Error(err))
		}
	}()
}

func (n *notifier) wait() { n.wg.Wait() }
