package ipvs

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
)

// defaultInfo is what Format prints in the version line: the kernel's IPVS
// version code and default connection table size.
func defaultInfo() Info { return Info{Version: 0x010201, ConnTabSize: 4096} }

// Format prints svcs as `ipvsadm -Ln` does, with the version line of a
// default kernel (use FormatInfo with NetlinkTable.Info for the real one).
func Format(w io.Writer, svcs []Service) error { return FormatInfo(w, defaultInfo(), svcs) }

// FormatInfo prints svcs as `ipvsadm -Ln` does, services and destinations
// sorted by address so that two tables can be compared line by line.
func FormatInfo(w io.Writer, info Info, svcs []Service) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "IP Virtual Server version %s (size=%d)\n", info.VersionString(), info.ConnTabSize)
	fmt.Fprintf(bw, "Prot LocalAddress:Port Scheduler Flags\n")
	fmt.Fprintf(bw, "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	svcs = slices.Clone(svcs)
	sortServices(svcs)
	for _, s := range svcs {
		f := s.family()
		if s.FWMark != 0 {
			if f == IPv6 {
				fmt.Fprintf(bw, "FWM  %d IPv6 %s", s.FWMark, s.scheduler())
			} else {
				fmt.Fprintf(bw, "FWM  %d %s", s.FWMark, s.scheduler())
			}
		} else {
			fmt.Fprintf(bw, "%-4s %s %s", s.Protocol, addrPort(s.Addr), s.scheduler())
		}
		flags := s.effFlags()
		if sf := schedFlagNames(s.scheduler(), flags); sf != "" {
			fmt.Fprintf(bw, " (%s)", sf)
		}
		if flags&FlagPersistent != 0 {
			fmt.Fprintf(bw, " persistent %d", s.timeoutSeconds())
			if n := s.netmaskBits(); n != f.Bits() {
				if f == IPv4 {
					m := netmaskBytes(IPv4, n)
					fmt.Fprintf(bw, " mask %s", netip.AddrFrom4([4]byte(m)))
				} else {
					fmt.Fprintf(bw, " mask %d", n)
				}
			}
		}
		if flags&FlagOnePacket != 0 {
			fmt.Fprintf(bw, " ops")
		}
		fmt.Fprintln(bw)
		ds := slices.Clone(s.Dests)
		slices.SortFunc(ds, func(a, b Dest) int { return a.Addr.Compare(b.Addr) })
		for _, d := range ds {
			fmt.Fprintf(bw, "  -> %-28s %-7s %-6d %-10d %-10d\n",
				addrPort(d.Addr), d.Method, d.Weight, d.ActiveConns, d.InactConns)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ipvs: format: %w", err)
	}
	return nil
}

// schedFlagNames names the scheduler flags as ipvsadm does: sh-fallback,
// sh-port for sh, mh-fallback, mh-port for mh, flag-N otherwise.
func schedFlagNames(sched string, flags uint32) string {
	names := [3]string{"flag-1", "flag-2", "flag-3"}
	switch sched {
	case "sh", "mh":
		names[0], names[1] = sched+"-fallback", sched+"-port"
	}
	var out []string
	for i, f := range []uint32{FlagSched1, FlagSched2, FlagSched3} {
		if flags&f != 0 {
			out = append(out, names[i])
		}
	}
	return strings.Join(out, ",")
}

// addrPort is "198.18.0.1:80" or "[2001:db8::1]:80", as ipvsadm -n prints.
func addrPort(a netip.AddrPort) string { return unmapPort(a).String() }
