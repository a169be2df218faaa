package admin

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseCommandGood(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Command
	}{
		{"help", Command{Op: OpHelp}},
		{"show info\n", Command{Op: OpShowInfo}},
		{"show services\r\n", Command{Op: OpShowServices}},
		{"  show \t backends  ", Command{Op: OpShowBackends}},
		{"show backends web", Command{Op: OpShowBackends, Service: "web"}},
		{"show vrrp", Command{Op: OpShowVRRP}},
		{"show ipvs", Command{Op: OpShowIPVS}},
		{"enable backend web/web1", Command{Op: OpEnableBackend, Service: "web", Backend: "web1"}},
		{"disable backend web/198.18.0.11:80", Command{Op: OpDisableBackend, Service: "web", Backend: "198.18.0.11:80"}},
		{"drain backend web/[2001:db8::1]:80", Command{Op: OpDrainBackend, Service: "web", Backend: "[2001:db8::1]:80"}},
		{"set weight web/web1 0", Command{Op: OpSetWeight, Service: "web", Backend: "web1", Weight: 0}},
		{"set weight web/web1 256", Command{Op: OpSetWeight, Service: "web", Backend: "web1", Weight: 256}},
		{"set weight web/web1 007", Command{Op: OpSetWeight, Service: "web", Backend: "web1", Weight: 7}},
		{"reload", Command{Op: OpReload}},
		{"set loglevel debug", Command{Op: OpSetLogLevel, Level: "debug"}},
		{"prompt", Command{Op: OpPrompt}},
		{"quit", Command{Op: OpQuit}},
		{`drain backend "fwmark 5/198.18.0.11:80"`, Command{Op: OpDrainBackend, Service: "fwmark 5", Backend: "198.18.0.11:80"}},
		{`show backends "group web farm"`, Command{Op: OpShowBackends, Service: "group web farm"}},
		{`set weight "fwmark 5/198.18.0.11:80" 3`, Command{Op: OpSetWeight, Service: "fwmark 5", Backend: "198.18.0.11:80", Weight: 3}},
		{`"show" "info"`, Command{Op: OpShowInfo}},
	} {
		got, err := ParseCommand(tc.line)
		if err != nil {
			t.Errorf("ParseCommand(%q): %v", tc.line, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseCommand(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
		again, err := ParseCommand(got.String())
		if err != nil || again != got {
			t.Errorf("round trip of %q via %q: %+v, %v", tc.line, got.String(), again, err)
		}
	}
}

func TestParseCommandBad(t *testing.T) {
	for _, tc := range []struct{ line, wantErr string }{
		{"", "empty command"},
		{"   \t ", "empty command"},
		{"frobnicate", `unknown command "frobnicate"`},
		{"SHOW INFO", `unknown command "SHOW"`},
		{"show", "show: what?"},
		{"show stat", `unknown object "stat"`},
		{"show info now", `show info: unexpected argument "now"`},
		{"show backends web extra", `unexpected argument "extra"`},
		{"show backends a/b", "contains '/'"},
		{"help me", `unexpected argument "me"`},
		{"reload now", `unexpected argument "now"`},
		{"enable web/web1", "usage: enable backend SERVICE/BACKEND"},
		{"enable backend", "missing SERVICE/BACKEND"},
		{"drain backend web", "want SERVICE/BACKEND"},
		{"drain backend /web1", "empty service name"},
		{"drain backend web/", "empty backend name"},
		{"disable backend web/web1 now", `unexpected argument "now"`},
		{"set", "set: what?"},
		{"set weight web/web1", "usage: set weight"},
		{"set weight web/web1 257", "not an integer in 0..256"},
		{"set weight web/web1 -1", "not an integer in 0..256"},
		{"set weight web/web1 +5", "not an integer in 0..256"},
		{"set weight web/web1 1.5", "not an integer in 0..256"},
		{"set weight web/web1 0x10", "not an integer in 0..256"},
		{"set weight web/web1 99999999999999999999", "not an integer in 0..256"},
		{"set weight web/web1 10 20", `unexpected argument "20"`},
		{"set weight web 10", "want SERVICE/BACKEND"},
		{"set loglevel", "usage: set loglevel"},
		{"set loglevel verbose", `unknown level "verbose"`},
		{"set loglevel info x", `unexpected argument "x"`},
		{"set maxconn web 10", `unknown setting "maxconn"`},
		{"show info\x00", "NUL byte at offset 9"},
		{"drain backend web/we\x00b1", "NUL byte"},
		{"show\x1binfo", "control character 0x1b"},
		{"show info\rshow vrrp", "control character 0x0d"},
		{"show info\nshow vrrp", "control character 0x0a"},
		{"show \xff", "not valid UTF-8"},
		{`drain backend "fwmark 5/x`, "unterminated quote"},
		{`drain backend "fwmark 5"/x`, "closing quote at offset 23 must end the word"},
		{`drain backend fwmark"5/x"`, "quote inside a word"},
		{`drain backend fwmark 5/x`, "want SERVICE/BACKEND"},
		{`drain backend " web/x"`, "leading or trailing blanks"},
		{`drain backend "web/x "`, "leading or trailing blanks"},
		{`drain backend "web/ "`, "empty backend name"},
		{`show backends ""`, "empty service name"},
		{strings.Repeat("a", MaxLine), "longer than 4095 bytes"},
		{"show backends " + strings.Repeat("x", MaxLine), "longer than"},
	} {
		c, err := ParseCommand(tc.line)
		if err == nil {
			t.Errorf("ParseCommand(%.40q) = %+v, want error containing %q", tc.line, c, tc.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseCommand(%.40q) error %q, want it to contain %q", tc.line, err, tc.wantErr)
		}
	}
	if _, err := ParseCommand(strings.Repeat(" ", MaxLine-1)); !errors.Is(err, ErrEmpty) {
		t.Errorf("longest blank line: %v, want ErrEmpty", err)
	}
	if _, err := ParseCommand("help" + strings.Repeat(" ", MaxLine-5) + "\n"); err != nil {
		t.Errorf("line of exactly MaxLine bytes with newline: %v", err)
	}
}

func TestHelpCoversEveryOp(t *testing.T) {
	seen := map[Op]bool{}
	for _, h := range Help() {
		// Fill placeholders to make each help line a valid command.
		line := strings.NewReplacer("[SERVICE]", "web", "SERVICE/BACKEND", "web/web1", " N", " 3", "LEVEL", "info").Replace(h.Command)
		c, err := ParseCommand(line)
		if err != nil {
			t.Errorf("help entry %q does not parse as %q: %v", h.Command, line, err)
			continue
		}
		seen[c.Op] = true
	}
	for op := OpHelp; op <= OpQuit; op++ {
		if !seen[op] {
			t.Errorf("op %v (%q) missing from Help()", op, Command{Op: op}.String())
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"help", "show info", "show backends web", "drain backend web/198.18.0.11:80",
		"set weight web/web1 256", "set weight web/web1 257", "set loglevel warn",
		"show info\x00", "enable backend a/b/c", "  show\tvrrp \r\n", "set weight a/ 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCommand(line)
		if err != nil {
			if c != (Command{}) {
				t.Fatalf("error %v with non-zero command %+v", err, c)
			}
			return
		}
		if len(line) > MaxLine {
			t.Fatalf("accepted a %d-byte line", len(line))
		}
		if strings.ContainsRune(line, 0) {
			t.Fatalf("accepted a NUL byte: %q", line)
		}
		if c.Weight < 0 || c.Weight > MaxWeight {
			t.Fatalf("weight %d out of range from %q", c.Weight, line)
		}
		if c.Op == OpSetWeight || c.Op == OpEnableBackend || c.Op == OpDisableBackend || c.Op == OpDrainBackend {
			if c.Service == "" || c.Backend == "" || strings.Contains(c.Service, "/") {
				t.Fatalf("bad target %q/%q from %q", c.Service, c.Backend, line)
			}
		}
		again, err := ParseCommand(c.String())
		if err != nil || again != c {
			t.Fatalf("round trip %q -> %+v -> %q -> %+v, %v", line, c, c.String(), again, err)
		}
	})
}

func TestCommandsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatalf("operations guide: %v", err)
	}
	for _, h := range Help() {
		if !strings.Contains(string(doc), "`"+h.Command) {
			t.Errorf("command %q is not documented in docs/operations.md", h.Command)
		}
	}
}
