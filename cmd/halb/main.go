// Command halb is a high-availability load balancer: a userspace proxy, health checks, a VRRP
// speaker and optional IPVS programming in one daemon, configured with keepalived.conf.
//
//	halb run [-f FILE] [--demo]     run the daemon
//	halb check -f FILE [--dump]     validate a config without touching the network
//	halb ctl [-s SOCK] [--json] CMD talk to a running daemon
//	halb bench [flags]              side-by-side benchmark against HAProxy / nginx
//	halb lab up|status|down         two balancers and two web servers in network namespaces
//	halb realserver VIP... [--apply] the steps a DR real server needs
//	halb version                    version and build information
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes shared by the subcommands.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (bad config, refused command, runtime error)
	exitUsage   = 2 // bad flags or arguments
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type command struct {
	name, usage string
	run         func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run the daemon (halb run -f FILE | --demo)", cmdRun},
		{"check", "validate a config file without touching the network (halb check -f FILE [--dump])", cmdCheck},
		{"ctl", "talk to a running daemon over its admin socket (halb ctl help)", cmdCtl},
		{"bench", "side-by-side benchmark against HAProxy and nginx (halb bench -h)", cmdBench},

		{"lab", "the two-balancer, two-web-server lab in network namespaces (halb lab up|status|kill|start|down)", cmdLab},
		{"realserver", "print or apply the steps a DR real server needs (halb realserver VIP... [--apply])", cmdRealServer},
		{"version", "print the version and build information", cmdVersion},
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	case "-v", "--version":
		return cmdVersion(nil, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "halb: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: halb COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.usage)
	}
}
