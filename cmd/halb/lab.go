package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"halb/internal/demo"
	"halb/internal/netlab"
)

// The lab: the classic two balancers + two web servers, in network namespaces on this machine.
// `halb lab up` starts a holder process that owns the namespaces (so they outlive the command and
// are never mistaken for leftovers), two halb nodes with crossed priorities for two VIPs
// (dual-active), and two web servers; `status`, `kill`, `stop`, `start` and `down` act on it.

const labDefaultDir = "/run/halb-lab"

type labState struct {
	ID     string         `json:"id"`
	Holder int            `json:"holder_pid"`
	PIDs   map[string]int `json:"pids"`           // lb1, lb2, web1, web2 (bgp: lb3, router too)
	Topo   string         `json:"topo,omitempty"` // "" (VRRP pair) or "bgp" (lab_bgp.go)
}

var labVIPs = []netip.Addr{netlab.VIP1, netlab.VIP2}

func labMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", labDefaultDir, "lab state directory (configs, logs, sockets)")
	topo := fs.String("topo", "vrrp", "topology for up: vrrp (a pair) or bgp (three nodes behind a BIRD router, ECMP)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: halb lab [-dir DIR] [-topo vrrp|bgp] COMMAND
  up              build the lab: lb1 and lb2 (halb, dual-active VIPs 198.18.0.10 and .20), web1, web2, client;
                  with -topo bgp: lb1..lb3 announce 198.18.10.10 over BGP to a BIRD 2 router (ECMP), client behind it
  status          who holds each VIP, VRRP state of each node, and what the client sees on each VIP
  kill lb1|lb2    kill -9 a node (watch the VIP move with 'status'; bgp: lb1..lb3)
  stop lb1|lb2    SIGTERM a node (graceful handover: priority 0 advert)
  start lb1|lb2   start a stopped node again (it preempts back)
  down            stop everything and delete the namespaces`)
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	bgpLab := *topo == "bgp"
	if st, err := readLabState(*dir); err == nil && cmd != "up" && cmd != "hold" {
		bgpLab = st.Topo == "bgp"
	}
	switch cmd {
	case "up":
		if bgpLab {
			return labUpBGP(*dir, stdout, stderr)
		}
		return labUp(*dir, stdout, stderr)
	case "status":
		if bgpLab {
			return labStatusBGP(*dir, stdout, stderr)
		}
		return labStatus(*dir, stdout, stderr)
	case "kill", "stop", "start":
		if len(rest) == 1 && rest[0] == "lb3" && bgpLab {
			return labNode(*dir, cmd, rest[0], stdout, stderr)
		}
		if len(rest) != 1 || (rest[0] != "lb1" && rest[0] != "lb2") {
			fmt.Fprintf(stderr, "usage: halb lab %s lb1|lb2\n", cmd)
			return exitUsage
		}
		return labNode(*dir, cmd, rest[0], stdout, stderr)
	case "down":
		return labDown(*dir, stdout, stderr)
	case "hold": // internal: the process that owns the lab
		if bgpLab {
			return labHoldBGP(*dir, stderr)
		}
		return labHold(*dir, stderr)
	case "web": // internal: a web server inside a web namespace
		if len(rest) != 2 {
			return exitUsage
		}
		return labWeb(rest[0], rest[1], stderr)
	}
	fmt.Fprintf(stderr, "halb lab: unknown command %q\n", cmd)
	fs.Usage()
	return exitUsage
}

func readLabState(dir string) (*labState, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, fmt.Errorf("no lab running (%w); start one with `halb lab up`", err)
	}
	var st labState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab state %s: %w", dir, err)
	}
	return &st, nil
}

func writeLabState(dir string, st *labState) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := filepath.Join(dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "state.json"))
}

func labUp(dir string, stdout, stderr io.Writer) int {
	if !startHolder(dir, stderr) {
		return exitFailure
	}
	fmt.Fprintln(stdout, "building the lab (namespaces, two halb nodes, two web servers)...")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := readLabState(dir); err == nil {
			// Give VRRP time to elect (3 adverts + skew) before showing the status.
			if waitVIPs(dir, 10*time.Second) {
				return labStatus(dir, stdout, stderr)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "holder.log"))
	fmt.Fprintf(stderr, "halb lab: the lab did not come up in time; holder log:\n%s", b)
	return exitFailure
}

// startHolder starts `halb lab hold` (with extra arguments, such as the topology) detached, its
// output in DIR/holder.log, after checking that no lab is up; false: it said why on stderr.
func startHolder(dir string, stderr io.Writer, extra ...string) bool {
	if err := netlab.Available(); err != nil {
		fmt.Fprintf(stderr, "halb lab: %v\n", err)
		return false
	}
	if st, err := readLabState(dir); err == nil && alivePID(st.Holder) {
		fmt.Fprintf(stderr, "halb lab: a lab is already up (holder pid %d); `halb lab down` first\n", st.Holder)
		return false
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintf(stderr, "halb lab: %v\n", err)
		return false
	}
	_ = os.Remove(filepath.Join(dir, "state.json"))
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "halb lab: %v\n", err)
		return false
	}
	logf, err := os.Create(filepath.Join(dir, "holder.log"))
	if err != nil {
		fmt.Fprintf(stderr, "halb lab: %v\n", err)
		return false
	}
	defer logf.Close()
	h := exec.Command(self, append(append([]string{"lab", "-dir", dir}, extra...), "hold")...)
	h.Stdout, h.Stderr = logf, logf
	h.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := h.Start(); err != nil {
		fmt.Fprintf(stderr, "halb lab: start holder: %v\n", err)
		return false
	}
	_ = h.Process.Release()
	return true
}

func waitVIPs(dir string, d time.Duration) bool {
	st, err := readLabState(dir)
	if err != nil {
		return false
	}
	l := &netlab.Lab{ID: st.ID}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		n := 0
		for _, v := range labVIPs {
			for _, lb := range []string{"lb1", "lb2"} {
				if ok, _ := l.HasAddr(lb, v); ok {
					n++
					break
				}
			}
		}
		if n == len(labVIPs) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// labNodeConfig is the config of lb1 (prio 150 for VIP1, 100 for VIP2) or lb2 (crossed).
func labNodeConfig(dir, node string) string {
	p1, p2 := 150, 100
	if node == "lb2" {
		p1, p2 = 100, 150
	}
	addr := map[string]string{"lb1": "198.18.0.1", "lb2": "198.18.0.2"}[node]
	vs := ""
	for _, vip := range labVIPs {
		vs += fmt.Sprintf(`
virtual_server %s 80 {
    proxy_mode http
    lb_algo rr
    delay_loop 1
    retries 2
    timeout_connect 1s
    real_server 198.18.0.11 80 {
        weight 1
        HTTP_GET {
            url {
                path /health
            }
            connect_timeout 1
            retry 0
        }
    }
    real_server 198.18.0.12 80 {
        weight 1
        HTTP_GET {
            url {
                path /health
            }
            connect_timeout 1
            retry 0
        }
    }
}
`, vip)
	}
	return fmt.Sprintf(`! halb lab node %[1]s (generated by halb lab up)
global_defs {
    router_id lab-%[1]s
    admin_socket %[2]s/%[1]s.sock
    stats_listen %[3]s:8404
    log_sample 0
    shutdown_timeout 5s
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %[4]d
    advert_int 1
    fast_handover
    authentication {
        auth_type PASS
        auth_pass halblab1
    }
    virtual_ipaddress {
        198.18.0.10/24 dev eth0
    }
    track_virtual_server {
        198.18.0.10 80 weight -60
    }
}
vrrp_instance VI_2 {
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority %[5]d
    advert_int 1
    fast_handover
    authentication {
        auth_type PASS
        auth_pass halblab2
    }
    virtual_ipaddress {
        198.18.0.20/24 dev eth0
    }
    track_virtual_server {
        198.18.0.20 80 weight -60
    }
}
%[6]s`, node, dir, addr, p1, p2, vs)
}

func labHold(dir string, stderr io.Writer) int {
	l, err := netlab.New()
	if err != nil {
		fmt.Fprintf(stderr, "halb lab hold: %v\n", err)
		return exitFailure
	}
	defer l.Close()
	st := &labState{ID: l.ID, Holder: os.Getpid(), PIDs: map[string]int{}}
	self, _ := os.Executable()
	for _, w := range []struct{ host, addr string }{{"web1", "198.18.0.11:80"}, {"web2", "198.18.0.12:80"}} {
		pid, err := labSpawn(l, dir, w.host, self, "lab", "web", w.host, w.addr)
		if err != nil {
			fmt.Fprintf(stderr, "halb lab hold: %v\n", err)
			return exitFailure
		}
		st.PIDs[w.host] = pid
	}
	for _, lb := range []string{"lb1", "lb2"} {
		conf := filepath.Join(dir, lb+".conf")
		if err := os.WriteFile(conf, []byte(labNodeConfig(dir, lb)), 0o600); err != nil {
			fmt.Fprintf(stderr, "halb lab hold: %v\n", err)
			return exitFailure
		}
		pid, err := labSpawn(l, dir, lb, self, "run", "-f", conf)
		if err != nil {
			fmt.Fprintf(stderr, "halb lab hold: %v\n", err)
			return exitFailure
		}
		st.PIDs[lb] = pid
	}
	if err := writeLabState(dir, st); err != nil {
		fmt.Fprintf(stderr, "halb lab hold: %v\n", err)
		return exitFailure
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	<-sigs
	// Tear down: the nodes first (SIGTERM: graceful), then the web servers, then the namespaces.
	if cur, err := readLabState(dir); err == nil {
		st = cur
	}
	for _, name := range []string{"lb1", "lb2", "web1", "web2"} {
		stopPID(st.PIDs[name], 6*time.Second)
	}
	_ = os.Remove(filepath.Join(dir, "state.json"))
	return exitOK
}

// labSpawn starts argv inside host's namespace, detached, logging to DIR/HOST.log; it returns the pid.
func labSpawn(l *netlab.Lab, dir, host string, argv ...string) (int, error) {
	logf, err := os.OpenFile(filepath.Join(dir, host+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	c := l.Exec(host, argv...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("start %s on %s: %w", argv[0], host, err)
	}
	go func() { _ = c.Wait() }() // reap it when it dies (kill -9 from `halb lab kill`)
	return c.Process.Pid, nil
}

func alivePID(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func stopPID(pid int, grace time.Duration) {
	if !alivePID(pid) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for alivePID(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func labNode(dir, cmd, node string, stdout, stderr io.Writer) int {
	st, err := readLabState(dir)
	if err != nil {
		fmt.Fprintf(stderr, "halb lab: %v\n", err)
		return exitFailure
	}
	pid := st.PIDs[node]
	switch cmd {
	case "kill":
		if !alivePID(pid) {
			fmt.Fprintf(stderr, "halb lab: %s is not running\n", node)
			return exitFailure
		}
		// A dead node: the process gets SIGKILL (no goodbye advert, no VIP removal) and its link
		// goes down, as when the machine loses power; `start` brings both back.
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if st.Topo == "bgp" {
			// The kernel closes the BGP session: the router drops the next hop at once.
			fmt.Fprintf(stdout, "killed %s (pid %d, SIGKILL); the router drops its next hop when the session closes\n", node, pid)
			break
		}
		_ = (&netlab.Lab{ID: st.ID}).SetLink(node, false)
		fmt.Fprintf(stdout, "killed %s (pid %d, SIGKILL, link down); its VIPs move after Master_Down_Interval (~3 s)\n", node, pid)
	case "stop":
		stopPID(pid, 10*time.Second)
		if st.Topo == "bgp" {
			fmt.Fprintf(stdout, "stopped %s (SIGTERM: withdrawn, drained, closed)\n", node)
			break
		}
		fmt.Fprintf(stdout, "stopped %s (SIGTERM: priority 0 advert, VIPs handed over)\n", node)
	case "start":
		if alivePID(pid) {
			fmt.Fprintf(stderr, "halb lab: %s is already running (pid %d)\n", node, pid)
			return exitFailure
		}
		self, _ := os.Executable()
		l := &netlab.Lab{ID: st.ID}
		if err := l.SetLink(node, true); err != nil {
			fmt.Fprintf(stderr, "halb lab: %v\n", err)
			return exitFailure
		}
		npid, err := labSpawn(l, dir, node, self, "run", "-f", filepath.Join(dir, node+".conf"))
		if err != nil {
			fmt.Fprintf(stderr, "halb lab: %v\n", err)
			return exitFailure
		}
		st.PIDs[node] = npid
		if err := writeLabState(dir, st); err != nil {
			fmt.Fprintf(stderr, "halb lab: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "started %s (pid %d)\n", node, npid)
	}
	return exitOK
}

func labStatus(dir string, stdout, stderr io.Writer) int {
	st, err := readLabState(dir)
	if err != nil {
		fmt.Fprintf(stderr, "halb lab: %v\n", err)
		return exitFailure
	}
	l := &netlab.Lab{ID: st.ID}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPID\tRUNNING\tLINK\tVRRP\tHOLDS")
	for _, lb := range []string{"lb1", "lb2"} {
		var holds []string
		for _, v := range labVIPs {
			if ok, _ := l.HasAddr(lb, v); ok {
				holds = append(holds, v.String())
			}
		}
		link := "up"
		if out, err := l.IP(lb, "-o", "link", "show", "eth0"); err == nil && !strings.Contains(out, ",UP") {
			link = "down"
		}
		fmt.Fprintf(tw, "%s\t%d\t%v\t%s\t%s\t%s\n", lb, st.PIDs[lb], alivePID(st.PIDs[lb]), link,
			labVRRP(filepath.Join(dir, lb+".sock")), strings.Join(holds, " "))
	}
	_ = tw.Flush()
	fmt.Fprintln(stdout, "\nthe client (198.18.0.100) sees:")
	for _, v := range labVIPs {
		line, err := labGet(l, "client", netip.AddrPortFrom(v, 80))
		if err != nil {
			line = "ERROR " + err.Error()
		}
		fmt.Fprintf(stdout, "  http://%s/  ->  %s\n", v, line)
	}
	fmt.Fprintf(stdout, "\nnode logs and configs: %s ; per-node admin: halb ctl -s %s/lb1.sock show vrrp\n", dir, dir)
	return exitOK
}

// labGet makes one HTTP request from inside host's namespace and returns the first line of the body.
func labGet(l *netlab.Lab, host string, to netip.AddrPort) (string, error) {
	var conn net.Conn
	err := l.Do(host, func() error {
		var derr error
		conn, derr = (&net.Dialer{Timeout: 2 * time.Second}).Dial("tcp", to.String())
		return derr
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", to.Addr())
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	for { // skip headers
		h, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if h == "\r\n" {
			break
		}
	}
	body, _ := br.ReadString('\n')
	return strings.TrimSpace(status) + ": " + strings.TrimSpace(body), nil
}

func labDown(dir string, stdout, stderr io.Writer) int {
	st, err := readLabState(dir)
	if err != nil {
		fmt.Fprintf(stderr, "halb lab: %v\n", err)
		return exitFailure
	}
	stopPID(st.Holder, 20*time.Second)
	// A holder that died without cleaning up leaves namespaces: remove them now.
	netlab.Cleanup(st.ID)
	for _, pid := range st.PIDs {
		stopPID(pid, time.Second)
	}
	_ = os.Remove(filepath.Join(dir, "state.json"))
	fmt.Fprintln(stdout, "lab down: nodes stopped, namespaces removed")
	return exitOK
}

func labWeb(name, addr string, stderr io.Writer) int {
	b, err := demo.StartNamed([]string{name}, []string{addr})
	if err != nil {
		fmt.Fprintf(stderr, "halb lab web: %v\n", err)
		return exitFailure
	}
	defer b.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	return exitOK
}

func netipPort(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
