// Package version reports halb's version and build information.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time (-X halb/internal/version.Version=...); "dev" otherwise.
var Version = "dev"

// Info is the build information printed by `halb version`.
type Info struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
}

// Get returns the version and the VCS data the Go toolchain embedded.
func Get() Info {
	in := Info{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	return in
}

// String is the one-line form: "halb dev (go1.26.8 linux/amd64, rev abc123)".
func (i Info) String() string {
	s := fmt.Sprintf("halb %s (%s %s", i.Version, i.GoVersion, i.Platform)
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += ", rev " + rev
		if i.Modified {
			s += "+dirty"
		}
	}
	return s + ")"
}
