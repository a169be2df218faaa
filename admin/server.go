package admin

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Options configure the runtime API and the stats listener.
type Options struct {
	// SocketPath is the unix socket of the runtime API, e.g.
	// /run/halb/halb.sock. Empty: no socket.
	SocketPath string
	// Mode is the socket file's permission bits (default 0600).
	Mode os.FileMode
	// Owner is "user[:group]" or ":group" (names or numeric ids) to chown
	// the socket to; empty keeps the daemon's own.
	Owner string
	// StatsListen is the TCP address of the stats page, /metrics and
	// /healthz, e.g. 127.0.0.1:8404. Empty: off.
	StatsListen string
	// StatsAuth is "user:pass" to require HTTP basic auth on the stats
	// listener (all paths but /healthz). Empty: no auth.
	StatsAuth string
	// Timeout bounds a runtime API connection's wait for each request line
	// and the writing of each reply (default 10s).
	Timeout time.Duration
	// MaxConns caps concurrent runtime API connections (default 16); more
	// are answered with an error and closed.
	MaxConns int
	// Refresh is the stats page's self-refresh period (default 5s).
	Refresh time.Duration
	// Now is the clock for "time in state" and "ago" columns (default
	// time.Now).
	Now func() time.Time
}

// Response is the runtime API's reply envelope, one JSON object per line.
type Response struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Data  any    `json:"data,omitempty"`
}

// Server serves the runtime API and the stats listener.
type Server struct {
	log  *zap.Logger
	src  Source
	ctl  Controller
	o    Options
	reg  *prometheus.Registry
	tmpl *template.Template

	ctlMu sync.Mutex // one Controller call at a time (no two reloads at once)

	mu       sync.Mutex
	started  bool
	closed   bool
	ln       *net.UnixListener
	sockFile os.FileInfo
	httpLn   net.Listener
	httpSrv  *http.Server
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	sem      chan struct{}
	stop     chan struct{}
}

// NewServer returns a server reading src and writing through ctl (nil ctl:
// read-only API). Nothing listens until Start.
func NewServer(log *zap.Logger, src Source, ctl Controller, o Options) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 16
	}
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(src),
	)
	return &Server{
		log:   log.Named("admin"),
		src:   src,
		ctl:   ctl,
		o:     o,
		reg:   reg,
		tmpl:  newStatsTemplate(),
		conns: make(map[net.Conn]struct{}),
		sem:   make(chan struct{}, o.MaxConns),
		stop:  make(chan struct{}),
	}
}

// Start opens the runtime API socket and the stats listener (those
// configured) and serves them until ctx is done or Close is called. The
// socket's directory is created if needed; a socket file left by a dead
// process is removed, one that something still listens on is an error.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("admin: start: already started or closed")
	}
	s.started = true
	if s.o.StatsAuth != "" {
		if u, _, ok := strings.Cut(s.o.StatsAuth, ":"); !ok || u == "" {
			return errors.New("admin: start: stats auth must be user:password")
		}
	}
	if s.o.SocketPath != "" {
		if err := s.listenUnix(); err != nil {
			return err
		}
		s.wg.Add(1)
		go s.acceptLoop()
	}
	if s.o.StatsListen != "" {
		ln, err := net.Listen("tcp", s.o.StatsListen)
		if err != nil {
			s.closeLocked()
			return fmt.Errorf("admin: stats listen %s: %w", s.o.StatsListen, err)
		}
		s.httpLn = ln
		s.httpSrv = &http.Server{
			Handler:           s.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          zap.NewStdLog(s.log.Named("http")),
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("stats listener stopped", zap.Error(err))
			}
		}()
		s.log.Info("stats listener up", zap.Stringer("addr", ln.Addr()))
	}
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.stop:
		}
	}()
	return nil
}

// SocketPath returns the runtime API socket's path ("" when none).
func (s *Server) SocketPath() string { return s.o.SocketPath }

// StatsAddr returns the stats listener's bound address, nil when off or not
// started.
func (s *Server) StatsAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Close stops both listeners, closes open API connections, waits for the
// serving goroutines and removes the socket file (if it is still ours).
func (s *Server) Close() error {
	s.mu.Lock()
	err := s.closeLocked()
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) closeLocked() error {
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.stop)
	var errs []error
	if s.ln != nil {
		if err := s.ln.Close(); err != nil {
			errs = append(errs, fmt.Errorf("admin: close socket: %w", err))
		}
		if fi, err := os.Lstat(s.o.SocketPath); err == nil && s.sockFile != nil && os.SameFile(fi, s.sockFile) {
			if err := os.Remove(s.o.SocketPath); err != nil {
				errs = append(errs, fmt.Errorf("admin: remove socket: %w", err))
			}
		}
	}
	for c := range s.conns {
		_ = c.Close()
	}
	if s.httpSrv != nil {
		if err := s.httpSrv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("admin: close stats listener: %w", err))
		}
	} else if s.httpLn != nil {
		_ = s.httpLn.Close()
	}
	return errors.Join(errs...)
}

// listenUnix binds the socket under a temporary name, sets its mode and
// owner, then renames it into place, so that it is never reachable with
// looser permissions.
func (s *Server) listenUnix() error {
	path := s.o.SocketPath
	uid, gid, err := lookupOwner(s.o.Owner)
	if err != nil {
		return fmt.Errorf("admin: socket owner: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("admin: create socket dir: %w", err)
	}
	if err := removeStale(path); err != nil {
		return err
	}
	if len(path) > maxSunPath {
		return fmt.Errorf("admin: socket path %s is %d bytes long, the limit is %d", path, len(path), maxSunPath)
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".halb-%d.tmp", os.Getpid()))
	if len(tmp) > maxSunPath {
		// No room for the temporary name: bind in place (the umask
		// still applies until the chmod below).
		tmp = path
	}
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return fmt.Errorf("admin: listen %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(op string, err error) error {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("admin: %s %s: %w", op, path, err)
	}
	if err := os.Chmod(tmp, s.o.Mode.Perm()); err != nil {
		return fail("chmod", err)
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(tmp, uid, gid); err != nil {
			return fail("chown", err)
		}
	}
	if tmp != path {
		if err := os.Rename(tmp, path); err != nil {
			return fail("rename socket to", err)
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail("stat", err)
	}
	s.ln, s.sockFile = ln, fi
	s.log.Info("runtime API listening", zap.String("socket", path), zap.Stringer("mode", s.o.Mode.Perm()))
	return nil
}

// maxSunPath is the longest unix socket path Linux accepts (sun_path is 108
// bytes with the terminating NUL).
const maxSunPath = 107

// removeStale removes a socket file nothing listens on. A live socket or a
// file that is not a socket is an error.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin: stat socket: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("admin: %s exists and is not a socket; not removing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("admin: %s: another process is listening on it (is halb already running?)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("admin: probe old socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("admin: remove stale socket: %w", err)
	}
	return nil
}

// lookupOwner parses "user[:group]" or ":group" (names or numeric ids) for
// os.Lchown: -1 leaves that id unchanged; user without group takes the
// user's primary group.
func lookupOwner(owner string) (uid, gid int, err error) {
	if owner == "" {
		return -1, -1, nil
	}
	un, gn, hasGroup := strings.Cut(owner, ":")
	if un == "" && !hasGroup {
		return 0, 0, fmt.Errorf("%q: empty user", owner)
	}
	if hasGroup && gn == "" {
		return 0, 0, fmt.Errorf("%q: empty group", owner)
	}
	uid, gid = -1, -1
	if un != "" {
		if n, err := strconv.Atoi(un); err == nil && n >= 0 {
			uid = n // numeric: no passwd entry needed
			if u, err := user.LookupId(un); err == nil {
				gid, _ = strconv.Atoi(u.Gid)
			}
		} else if u, err := user.Lookup(un); err != nil {
			return 0, 0, err
		} else {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
	}
	if hasGroup {
		if n, err := strconv.Atoi(gn); err == nil && n >= 0 {
			gid = n
		} else if g, err := user.LookupGroup(gn); err != nil {
			return 0, 0, err
		} else {
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	return uid, gid, nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Error("runtime API accept", zap.Error(err))
			// EMFILE and friends: back off a little instead of spinning.
			select {
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Second))
				writeResponse(c, Response{Error: "too many runtime API connections; try again"})
				lingerClose(c)
			}()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			<-s.sem
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				<-s.sem
				s.wg.Done()
			}()
			s.serveConn(c)
		}()
	}
}

// peer identifies the process on the other end of a connection for the
// audit log.
type peer struct{ pid, uid int32 }

func peerOf(c *net.UnixConn) peer {
	p := peer{pid: -1, uid: -1}
	rc, err := c.SyscallConn()
	if err != nil {
		return p
	}
	_ = rc.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			p.pid, p.uid = cred.Pid, int32(cred.Uid)
		}
	})
	return p
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer c.Close()
	who := peerOf(c)
	br := bufio.NewReaderSize(c, MaxLine)
	interactive := false
	for {
		_ = c.SetDeadline(time.Now().Add(s.o.Timeout))
		line, rerr := br.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			writeResponse(c, Response{Error: ErrLineTooLong.Error()})
			lingerClose(c)
			return
		}
		if rerr != nil && (!errors.Is(rerr, io.EOF) || len(line) == 0) {
			if !errors.Is(rerr, io.EOF) {
				s.log.Debug("runtime API connection dropped", zap.Error(rerr), zap.Int32("peer_pid", who.pid))
			}
			return
		}
		cmd, perr := ParseCommand(string(line))
		if perr != nil {
			if errors.Is(perr, ErrEmpty) && interactive {
				continue
			}
			writeResponse(c, Response{Error: perr.Error()})
			if !interactive {
				return
			}
			continue
		}
		switch cmd.Op {
		case OpQuit:
			return
		case OpPrompt:
			interactive = true
			writeResponse(c, Response{OK: true, Data: "interactive mode: one command per line, quit to end"})
			continue
		}
		resp := s.execute(cmd, who)
		// A slow command (reload) must not eat the time to write the reply.
		_ = c.SetWriteDeadline(time.Now().Add(s.o.Timeout))
		writeResponse(c, resp)
		if !interactive || rerr != nil {
			return
		}
	}
}

// lingerClose half-closes c and discards what the client still sends (up to
// 1 MiB, for at most a second), so that a client still writing reads our
// reply instead of a broken pipe or a reset.
func lingerClose(c *net.UnixConn) {
	_ = c.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

func writeResponse(w io.Writer, r Response) {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(Response{Error: "admin: encode reply: " + err.Error()})
	}
	b = append(b, '\n')
	_, _ = w.Write(b)
}

// Execute runs one parsed command and returns its reply, as the socket
// would (OpPrompt and OpQuit excepted): for in-process use.
func (s *Server) Execute(cmd Command) Response {
	return s.execute(cmd, peer{pid: -1, uid: -1})
}

func (s *Server) execute(cmd Command, who peer) (resp Response) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("runtime API command panicked", zap.Stringer("command", cmd), zap.Any("panic", r))
			resp = Response{Error: fmt.Sprintf("internal error running %q", cmd.String())}
		}
	}()
	if cmd.Mutates() {
		return s.mutate(cmd, who)
	}
	s.log.Debug("runtime API command", zap.Stringer("command", cmd), zap.Int32("peer_uid", who.uid))
	switch cmd.Op {
	case OpHelp:
		return Response{OK: true, Data: Help()}
	case OpShowInfo:
		return Response{OK: true, Data: s.src.Info()}
	case OpShowServices:
		return Response{OK: true, Data: nonNil(s.src.Services())}
	case OpShowBackends:
		rows, err := backendRows(s.src.Services(), cmd.Service)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Data: rows}
	case OpShowVRRP:
		return Response{OK: true, Data: nonNil(s.src.VRRP())}
	case OpShowBGP:
		v, ok := s.bgpView()
		if !ok {
			return Response{Error: "BGP is not configured (no bgp block)"}
		}
		return Response{OK: true, Data: v}
	case OpShowIPVS:
		t, err := s.src.IPVS()
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Data: t}
	}
	return Response{Error: fmt.Sprintf("command %q is not available here", cmd.String())}
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func backendRows(svcs []Service, only string) ([]ServiceBackend, error) {
	rows := []ServiceBackend{}
	found := only == ""
	for _, sv := range svcs {
		if only != "" && sv.Name != only {
			continue
		}
		found = true
		for _, b := range sv.Backends {
			rows = append(rows, ServiceBackend{Service: sv.Name, Backend: b})
		}
	}
	if !found {
		return nil, fmt.Errorf("unknown service %q", only)
	}
	return rows, nil
}

func (s *Server) mutate(cmd Command, who peer) Response {
	if s.ctl == nil {
		return Response{Error: "the runtime API is read-only here"}
	}
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	var (
		err error
		msg string
	)
	target := cmd.Service + "/" + cmd.Backend
	switch cmd.Op {
	case OpEnableBackend:
		err, msg = s.ctl.SetBackendState(cmd.Service, cmd.Backend, AdminReady), target+": enabled"
	case OpDisableBackend:
		err, msg = s.ctl.SetBackendState(cmd.Service, cmd.Backend, AdminMaint), target+": in maintenance"
	case OpDrainBackend:
		err, msg = s.ctl.SetBackendState(cmd.Service, cmd.Backend, AdminDrain), target+": draining"
	case OpSetWeight:
		err, msg = s.ctl.SetWeight(cmd.Service, cmd.Backend, cmd.Weight), fmt.Sprintf("%s: weight %d", target, cmd.Weight)
	case OpSetLogLevel:
		err, msg = s.ctl.SetLogLevel(cmd.Level), "log level "+cmd.Level
	case OpDrainService, OpEnableService:
		sd, ok := s.ctl.(ServiceDrainer)
		if !ok {
			err = errors.New("BGP is not available here")
			break
		}
		drain := cmd.Op == OpDrainService
		err, msg = sd.SetServiceDrain(cmd.Service, drain), cmd.Service+": "+map[bool]string{true: "withdrawn (draining)", false: "announced"}[drain]
	case OpReload:
		err = s.ctl.Reload()
		if err == nil {
			msg = "reloaded"
			if h := s.src.Info().ConfigHash; h != "" {
				msg += " (config " + h + ")"
			}
		}
	default:
		err = fmt.Errorf("command %q is not a change", cmd.String())
	}
	fields := []zap.Field{zap.Stringer("command", cmd), zap.Int32("peer_uid", who.uid), zap.Int32("peer_pid", who.pid)}
	if err != nil {
		s.log.Warn("runtime API change refused", append(fields, zap.Error(err))...)
		return Response{Error: err.Error()}
	}
	s.log.Info("runtime API change", fields...)
	return Response{OK: true, Data: msg}
}

// Handler serves the stats page (/), /stats.json, /metrics and /healthz,
// with basic auth (all but /healthz) when Options.StatsAuth is set. Start
// serves it on Options.StatsListen; the daemon may also mount it elsewhere.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveStats)
	mux.HandleFunc("GET /stats.json", s.serveStatsJSON)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:      zap.NewStdLog(s.log.Named("metrics")),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	if s.o.StatsAuth == "" {
		return mux
	}
	wantUser, wantPass, _ := strings.Cut(s.o.StatsAuth, ":")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			u, p, ok := r.BasicAuth()
			// Compare both even when the first differs: no early exit.
			uok := subtle.ConstantTimeCompare([]byte(u), []byte(wantUser))
			pok := subtle.ConstantTimeCompare([]byte(p), []byte(wantPass))
			if !ok || uok&pok != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="halb stats", charset="UTF-8"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}
