package ipvs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// procIPVS exists in every network namespace once the ip_vs module is loaded.
const procIPVS = "/proc/net/ip_vs"

// Available reports whether the running kernel has IPVS. Its error names the
// missing module and the two ways out, so the daemon can refuse DR and TUN
// services at start with it as it is.
func Available() error { return availableAt(procIPVS) }

func availableAt(path string) error {
	_, err := os.Stat(path)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipvs: the kernel has no IPVS (%s missing): load the ip_vs kernel module "+
			"(modprobe ip_vs; add ip_vs to /etc/modules-load.d/ to keep it), "+
			"or serve the virtual_server through halb's userspace proxy with the keyword use_proxy "+
			"(lb_kind DR and TUN need IPVS)", path)
	}
	return fmt.Errorf("ipvs: check kernel support: %w", err)
}
