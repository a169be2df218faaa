package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"halb/internal/netlab"
	"halb/internal/poll"
)

// The BGP lab (internal/netlab's NewBGP): lb1..lb3 announce the VIP 198.18.10.10 to a BIRD 2
// router (198.18.0.254, AS 65000) that spreads flows by ECMP with L4 hashing; web1 and web2 serve;
// the client sits behind the router.

const (
	labBGPVIP      = "198.18.10.10"
	labBGPVIP6     = "2001:db8:10::10"
	labBGPLocalAS  = 65011
	labBGPRouterAS = 65000
	// labBGPPassword signs lb1's and lb2's IPv4 sessions with TCP MD5 (RFC 2385).
	labBGPPassword = "halblab-md5"
)

// labBGPNodeAddr is a balancer's address on the lab bridge.
func labBGPNodeAddr(node string) string {
	return map[string]string{"lb1": "198.18.0.1", "lb2": "198.18.0.2", "lb3": "198.18.0.3"}[node]
}

// labBGPNodeAddr6 is a balancer's IPv6 address on the lab bridge.
func labBGPNodeAddr6(node string) string { return "2001:db8::" + node[2:] }

// labBGPPassive says whether node waits for the router to connect (lb3, IPv4): the lab covers
// both directions of session setup.
func labBGPPassive(node string) bool { return node == "lb3" }

// labBGPWebPort is the port the web servers serve node's traffic on: each balancer has its own,
// so that stopping one node's web servers costs only that node its quorum.
func labBGPWebPort(node string) int { return 8080 + int(node[2]-'0') }

// labBGPNodeConfig is a balancer's config. extra is added inside the bgp block (test neighbors).
func labBGPNodeConfig(dir, node, extra string) string {
	port := labBGPWebPort(node)
	// lb3 waits for the router, unsigned: Go's listeners are MPTCP sockets, which refuse TCP MD5
	// keys (docs/bgp.md). lb1 and lb2 connect out with TCP MD5.
	auth := "\n        password " + labBGPPassword
	if labBGPPassive(node) {
		auth = "\n        passive"
	}
	return fmt.Sprintf(`! halb BGP lab node %[1]s
global_defs {
    router_id lab-%[1]s
    admin_socket %[2]s/%[1]s.sock
    log_sample 0
    shutdown_timeout 5s
}
bgp {
    router_id %[3]s
    local_as %[4]d
    drain_time 2s
    neighbor 198.18.0.254 {
        remote_as %[5]d
        hold_time 3%[10]s
    }
    neighbor 2001:db8::fe {
        remote_as %[5]d
        hold_time 3
    }
%[8]s}
virtual_server %[6]s 80 {
    proxy_mode http
    lb_algo mh
    delay_loop 1
    retries 2
    timeout_connect 1s
    bgp_announce
    real_server 198.18.0.11 %[7]d {
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
    real_server 198.18.0.12 %[7]d {
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
}
virtual_server %[9]s 80 {
    proxy_mode http
    lb_algo mh
    delay_loop 1
    timeout_connect 1s
    bgp_announce
    real_server 198.18.0.11 %[7]d {
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
    real_server 198.18.0.12 %[7]d {
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
}
`, node, dir, labBGPNodeAddr(node), labBGPLocalAS, labBGPRouterAS, labBGPVIP, port, extra, labBGPVIP6, auth)
}

// labBirdConfig is the router's BIRD 2 config: passive eBGP sessions to the balancers (hold 3 s),
// and the kernel protocol merging equal routes into one multipath route (ECMP).
func labBirdConfig(dir string) string {
	var peers strings.Builder
	for _, n := range []string{"lb1", "lb2", "lb3"} {
		active := fmt.Sprintf(" password %q;", labBGPPassword)
		if labBGPPassive(n) {
			active = " passive off; connect delay time 1; connect retry time 1;"
		}
		fmt.Fprintf(&peers, "protocol bgp %s from balancers { neighbor %s as %d;%s }\n", n, labBGPNodeAddr(n), labBGPLocalAS, active)
		fmt.Fprintf(&peers, "protocol bgp %s_v6 from balancers6 { neighbor %s as %d; }\n", n, labBGPNodeAddr6(n), labBGPLocalAS)
	}
	return fmt.Sprintf(`# halb BGP lab router
log "%[1]s/bird.log" all;
router id 198.18.0.254;
protocol device { scan time 10; }
protocol kernel {
    ipv4 { import none; export all; };
    merge paths on;
}
protocol kernel {
    ipv6 { import none; export all; };
    merge paths on;
}
template bgp balancers {
    local 198.18.0.254 as %[2]d;
    passive on;
    hold time 3;
    keepalive time 1;
    error wait time 1, 5;
    ipv4 { import all; export none; };
}
template bgp balancers6 {
    local 2001:db8::fe as %[2]d;
    passive on;
    hold time 3;
    keepalive time 1;
    error wait time 1, 5;
    ipv6 { import all; export none; };
}
%[3]s`, dir, labBGPRouterAS, peers.String())
}

// labUpBGP starts the holder of a BGP lab and waits for the three next hops.
func labUpBGP(dir string, stdout, stderr io.Writer) int {
	if _, err := exec.LookPath("bird"); err != nil {
		fmt.Fprintln(stderr, "halb lab: the BGP lab needs BIRD 2 (Debian package bird2)")
		return exitFailure
	}
	if !startHolder(dir, stderr, "-topo", "bgp") {
		return exitFailure
	}
	fmt.Fprintln(stdout, "building the BGP lab (router with BIRD, three halb nodes, two web servers, client)...")
	ok := poll.Until(40*time.Second, 100*time.Millisecond, func() bool {
		st, err := readLabState(dir)
		return err == nil && len(labBGPHops(&netlab.Lab{ID: st.ID})) == 3
	})
	if ok {
		return labStatusBGP(dir, stdout, stderr)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "holder.log"))
	fmt.Fprintf(stderr, "halb lab: the BGP lab did not come up in time; holder log:\n%s", b)
	return exitFailure
}

// labBGPHops lists the next hops of the router's route to the VIP.
func labBGPHops(l *netlab.Lab) []string {
	out, err := l.IP("router", "route", "show", labBGPVIP+"/32")
	if err != nil {
		return nil
	}
	var hops []string
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			hops = append(hops, f[i+1])
		}
	}
	return hops
}

// labHoldBGP builds the BGP lab, runs it until signalled, then tears it down.
func labHoldBGP(dir string, stderr io.Writer) int {
	l, err := netlab.NewBGP()
	if err != nil {
		fmt.Fprintf(stderr, "halb lab hold: %v\n", err)
		return exitFailure
	}
	defer l.Close()
	st := &labState{ID: l.ID, Holder: os.Getpid(), PIDs: map[string]int{}, Topo: "bgp"}
	self, _ := os.Executable()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "halb lab hold: %v\n", err)
		for _, p := range st.PIDs {
			stopPID(p, time.Second)
		}
		return exitFailure
	}
	argvs, _, err := labRouterArgv("bird", dir)
	if err != nil {
		return fail(err)
	}
	pid, err := labSpawn(l, dir, "router", argvs[0]...)
	if err != nil {
		return fail(err)
	}
	st.PIDs["router"] = pid
	for _, n := range netlab.BGPNodes {
		for _, w := range []struct{ host, addr string }{{"web1", "198.18.0.11"}, {"web2", "198.18.0.12"}} {
			addr := fmt.Sprintf("%s:%d", w.addr, labBGPWebPort(n))
			pid, err := labSpawn(l, dir, w.host, self, "lab", "web", w.host, addr)
			if err != nil {
				return fail(err)
			}
			st.PIDs[w.host+"@"+addr] = pid
		}
		c := filepath.Join(dir, n+".conf")
		if err := os.WriteFile(c, []byte(labBGPNodeConfig(dir, n, "")), 0o600); err != nil {
			return fail(err)
		}
		pid, err := labSpawn(l, dir, n, self, "run", "-f", c)
		if err != nil {
			return fail(err)
		}
		st.PIDs[n] = pid
	}
	if err := writeLabState(dir, st); err != nil {
		return fail(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	<-sigs
	if cur, err := readLabState(dir); err == nil {
		st = cur
	}
	for _, n := range netlab.BGPNodes { // graceful: withdraw, drain, close
		stopPID(st.PIDs[n], 10*time.Second)
	}
	for name, p := range st.PIDs {
		if !strings.HasPrefix(name, "lb") {
			stopPID(p, 2*time.Second)
		}
	}
	_ = os.Remove(filepath.Join(dir, "state.json"))
	return exitOK
}

// labStatusBGP shows the nodes, the router's route to the VIP and what the client sees.
func labStatusBGP(dir string, stdout, stderr io.Writer) int {
	st, err := readLabState(dir)
	if err != nil {
		fmt.Fprintf(stderr, "halb lab: %v\n", err)
		return exitFailure
	}
	l := &netlab.Lab{ID: st.ID}
	hops := labBGPHops(l)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPID\tRUNNING\tNEXT HOP AT THE ROUTER")
	for _, n := range netlab.BGPNodes {
		fmt.Fprintf(tw, "%s\t%d\t%v\t%v\n", n, st.PIDs[n], alivePID(st.PIDs[n]), slices.Contains(hops, labBGPNodeAddr(n)))
	}
	_ = tw.Flush()
	route, _ := l.IP("router", "route", "show", labBGPVIP+"/32")
	fmt.Fprintf(stdout, "\nrouter (BIRD 2, ECMP, L4 hash): %s\n", strings.Join(strings.Fields(route), " "))
	fmt.Fprintf(stdout, "\nthe client (%s) sees:\n", netlab.BGPClient)
	for range 3 {
		line, err := labGet(l, "client", netip.MustParseAddrPort(labBGPVIP+":80"))
		if err != nil {
			line = "ERROR " + err.Error()
		}
		fmt.Fprintf(stdout, "  http://%s/  ->  %s\n", labBGPVIP, line)
	}
	fmt.Fprintf(stdout, "\nlogs and configs: %s ; per node: halb ctl -s %s/lb1.sock show bgp ; router: birdc -s %s/bird.ctl show protocols\n", dir, dir, dir)
	return exitOK
}

// labFRRConfig is the router's FRR config (bgpd), the same sessions and ECMP as labBirdConfig:
// passive eBGP sessions to the balancers, IPv4 ones for IPv4, IPv6 ones for IPv6, and
// maximum-paths for the multipath route that zebra installs.
func labFRRConfig(dir string) string {
	var nb, v4, v6 strings.Builder
	for _, n := range []string{"lb1", "lb2", "lb3"} {
		for _, a := range []string{labBGPNodeAddr(n), labBGPNodeAddr6(n)} {
			fmt.Fprintf(&nb, " neighbor %s remote-as %d\n neighbor %s timers 1 3\n", a, labBGPLocalAS, a)
			if !labBGPPassive(n) || a != labBGPNodeAddr(n) {
				fmt.Fprintf(&nb, " neighbor %s passive\n", a)
			} else {
				fmt.Fprintf(&nb, " neighbor %s timers connect 1\n", a)
			}
		}
		if !labBGPPassive(n) {
			fmt.Fprintf(&nb, " neighbor %s password %s\n", labBGPNodeAddr(n), labBGPPassword)
		}
		fmt.Fprintf(&v4, "  neighbor %s activate\n  neighbor %s route-map halb-none out\n", labBGPNodeAddr(n), labBGPNodeAddr(n))
		fmt.Fprintf(&v6, "  neighbor %s activate\n  neighbor %s route-map halb-none out\n", labBGPNodeAddr6(n), labBGPNodeAddr6(n))
	}
	return fmt.Sprintf(`! halb BGP lab router (FRR)
frr defaults traditional
hostname router
log file %[1]s/frr.log
!
route-map halb-none deny 10
!
router bgp %[2]d
 bgp router-id 198.18.0.254
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 timers bgp 1 3
%[3]s !
 address-family ipv4 unicast
%[4]s  maximum-paths 8
 exit-address-family
 !
 address-family ipv6 unicast
%[5]s  maximum-paths 8
 exit-address-family
!
`, dir, labBGPRouterAS, nb.String(), v4.String(), v6.String())
}

// labRouterArgv returns the commands that run the lab router (BIRD, or FRR's zebra and bgpd) and
// the directory of the router's files. FRR drops its privileges to the user frr, which must read
// its config and write its sockets: its files go to a fresh directory of its own under the
// system's temporary directory (the caller removes it).
func labRouterArgv(kind, dir string) ([][]string, string, error) {
	switch kind {
	case "bird":
		conf := filepath.Join(dir, "bird.conf")
		if err := os.WriteFile(conf, []byte(labBirdConfig(dir)), 0o600); err != nil {
			return nil, "", err
		}
		return [][]string{{"bird", "-f", "-c", conf, "-s", filepath.Join(dir, "bird.ctl"), "-P", filepath.Join(dir, "bird.pid")}}, dir, nil
	case "frr":
		u, err := user.Lookup("frr")
		if err != nil {
			return nil, "", fmt.Errorf("FRR's user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		fdir, err := os.MkdirTemp("", "halb-lab-frr-")
		if err != nil {
			return nil, "", err
		}
		zconf, bconf := filepath.Join(fdir, "zebra.conf"), filepath.Join(fdir, "bgpd.conf")
		files := map[string]string{zconf: "hostname router\nlog file " + fdir + "/zebra.log\n", bconf: labFRRConfig(fdir)}
		for name, text := range files {
			if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
				return nil, fdir, err
			}
		}
		for _, name := range []string{fdir, zconf, bconf} {
			if err := os.Chown(name, uid, gid); err != nil {
				return nil, fdir, err
			}
		}
		if err := os.Chmod(fdir, 0o750); err != nil {
			return nil, fdir, err
		}
		common := []string{"-u", "frr", "-g", "frr", "--vty_socket", fdir, "-z", filepath.Join(fdir, "zserv.api")}
		return [][]string{
			append([]string{"/usr/lib/frr/zebra", "-f", zconf, "-i", filepath.Join(fdir, "zebra.pid")}, common...),
			append([]string{"/usr/lib/frr/bgpd", "-f", bconf, "-i", filepath.Join(fdir, "bgpd.pid")}, common...),
		}, fdir, nil
	}
	return nil, "", fmt.Errorf("unknown router %q (bird, frr)", kind)
}
