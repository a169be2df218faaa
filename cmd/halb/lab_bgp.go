package main

import (
	"fmt"
	"strings"
)

// The BGP lab (internal/netlab's NewBGP): lb1..lb3 announce the VIP 198.18.10.10 to a BIRD 2
// router (198.18.0.254, AS 65000) that spreads flows by ECMP with L4 hashing; web1 and web2 serve;
// the client sits behind the router.

const (
	labBGPVIP      = "198.18.10.10"
	labBGPVIP6     = "2001:db8:10::10"
	labBGPLocalAS  = 65011
	labBGPRouterAS = 65000
)

// labBGPNodeAddr is a balancer's address on the lab bridge.
func labBGPNodeAddr(node string) string {
	return map[string]string{"lb1": "198.18.0.1", "lb2": "198.18.0.2", "lb3": "198.18.0.3"}[node]
}

// labBGPNodeAddr6 is a balancer's IPv6 address on the lab bridge.
func labBGPNodeAddr6(node string) string { return "2001:db8::" + node[2:] }

// labBGPWebPort is the port the web servers serve node's traffic on: each balancer has its own,
// so that stopping one node's web servers costs only that node its quorum.
func labBGPWebPort(node string) int { return 8080 + int(node[2]-'0') }

// labBGPNodeConfig is a balancer's config. extra is added inside the bgp block (test neighbors).
func labBGPNodeConfig(dir, node, extra string) string {
	port := labBGPWebPort(node)
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
        hold_time 3
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
`, node, dir, labBGPNodeAddr(node), labBGPLocalAS, labBGPRouterAS, labBGPVIP, port, extra, labBGPVIP6)
}

// labBirdConfig is the router's BIRD 2 config: passive eBGP sessions to the balancers (hold 3 s),
// and the kernel protocol merging equal routes into one multipath route (ECMP).
func labBirdConfig(dir string) string {
	var peers strings.Builder
	for _, n := range []string{"lb1", "lb2", "lb3"} {
		fmt.Fprintf(&peers, "protocol bgp %s from balancers { neighbor %s as %d; }\n", n, labBGPNodeAddr(n), labBGPLocalAS)
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
