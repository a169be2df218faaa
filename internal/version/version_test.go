package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	in := Info{Version: "1.2.3", GoVersion: "go1.26", Platform: "linux/amd64", Revision: "0123456789abcdef", Modified: true}
	want := "halb 1.2.3 (go1.26 linux/amd64, rev 0123456789ab+dirty)"
	if got := in.String(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	g := Get()
	if g.GoVersion != runtime.Version() || !strings.HasPrefix(g.String(), "halb "+Version+" (") {
		t.Fatalf("Get() = %+v", g)
	}
}
