package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"

	"halb/admin"
	"halb/bench"
	"halb/ipvs"
)

func cmdCtl(args []string, stdout, stderr io.Writer) int { return admin.CtlMain(args, stdout, stderr) }

func cmdLab(args []string, stdout, stderr io.Writer) int { return labMain(args, stdout, stderr) }

func cmdBench(args []string, stdout, stderr io.Writer) int { return bench.Main(args, stdout, stderr) }

// cmdRealServer prints (or with --apply, applies in the current network namespace) what a DR real
// server needs: the VIPs on lo as /32 (/128) and arp_ignore=1 / arp_announce=2.
func cmdRealServer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("realserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apply := fs.Bool("apply", false, "apply the steps in the current network namespace (needs CAP_NET_ADMIN)")
	pos, code, done := parseFlags(fs, args, "halb realserver VIP... [--apply]", true, stdout, stderr)
	if done {
		return code
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "usage: halb realserver VIP... [--apply]")
		return exitUsage
	}
	var vips []netip.Addr
	for _, a := range pos {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			fmt.Fprintf(stderr, "halb realserver: %q is not an IP address\n", a)
			return exitUsage
		}
		vips = append(vips, ip)
	}
	steps := ipvs.RealServerSteps(vips)
	if !*apply {
		fmt.Fprintln(stdout, "# On each DR real server (run as root, or pass --apply):")
		for _, s := range steps {
			fmt.Fprintf(stdout, "# %s\n%s\n", s.Description, s.Command)
		}
		return exitOK
	}
	if err := ipvs.ApplyRealServer(vips); err != nil {
		fmt.Fprintf(stderr, "halb realserver: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "applied %d steps\n", len(steps))
	return exitOK
}
