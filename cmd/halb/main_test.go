package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for the halb binary: with HALB_MAIN=1 it runs halb's
// main (the lab tests start halb nodes and web servers this way inside network namespaces).
func TestMain(m *testing.M) {
	if os.Getenv("HALB_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func runHalb(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestCheckExamples(t *testing.T) {
	examples := filepath.Join("..", "..", "..", "shared", "examples")
	if _, err := os.Stat(examples); err != nil {
		examples = filepath.Join("..", "..", "config", "testdata", "examples")
	}
	cases := map[string]string{
		"dual-master-dr-lvs1.conf":     "2 vrrp instances, 2 VIPs, 2 virtual servers, 4 real servers, 4 checkers",
		"dual-master-dr-lvs2.conf":     "2 vrrp instances, 2 VIPs, 2 virtual servers, 4 real servers, 4 checkers",
		"haproxy-pair-keepalived.conf": "2 vrrp instances, 2 VIPs, 0 virtual servers, 0 real servers, 0 checkers",
	}
	for name, summary := range cases {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runHalb("check", "-f", filepath.Join(examples, name))
			if code != exitOK {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if !strings.Contains(out, "configuration valid: "+summary) {
				t.Fatalf("summary: %s", out)
			}
			if strings.HasPrefix(name, "dual-master") && !strings.Contains(out, "needs the kernel's IPVS") {
				t.Fatalf("DR services not listed as needing IPVS: %s", out)
			}
		})
	}
}

func TestCheckBrokenFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "bad.conf")
	src := "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 300\n    priorty 100\n}\nvirtual_server 198.18.0.10 80 {\n    real_server 198.18.0.999 80 {\n    }\n"
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runHalb("check", "-f", f)
	if code != exitFailure {
		t.Fatalf("exit %d, want %d; stderr: %s", code, exitFailure, errOut)
	}
	for _, want := range []string{f + ":3:", f + ":4:", f + ":7:", "configuration invalid"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestCheckDumpIsJSON(t *testing.T) {
	code, out, errOut := runHalb("check", "--dump", "-f", filepath.Join("..", "..", "config", "testdata", "examples", "haproxy-pair-keepalived.conf"))
	if code != exitOK || !strings.HasPrefix(strings.TrimSpace(out), "{") || !strings.Contains(out, `"virtual_router_id": 51`) ||
		strings.Contains(out, "webpair1") || !strings.Contains(out, `"auth_pass": "********"`) {
		t.Fatalf("exit %d\nstdout: %.400s\nstderr: %s", code, out, errOut)
	}
}

func TestDemoConfigIsValid(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "demo.conf")
	if err := os.WriteFile(f, demoConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runHalb("check", "-f", f)
	if code != exitOK || errOut != "" {
		t.Fatalf("embedded demo config: exit %d, stdout %q, stderr %q (it must load without warnings)", code, out, errOut)
	}
}

func TestUsageAndVersion(t *testing.T) {
	if code, _, _ := runHalb(); code != exitUsage {
		t.Errorf("no args: exit %d, want %d", code, exitUsage)
	}
	if code, _, errOut := runHalb("frobnicate"); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := runHalb("version"); code != exitOK || !strings.HasPrefix(out, "halb ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if code, _, _ := runHalb("check", "-f", "/nonexistent/halb.conf"); code != exitFailure {
		t.Errorf("missing file: exit %d, want %d", code, exitFailure)
	}
}

func TestRunRefusesDRWithoutIPVS(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		t.Skip("this kernel has IPVS: the refusal path does not apply")
	}
	code, _, errOut := runHalb("run", "-admin-socket", "-", "-f", filepath.Join("..", "..", "config", "testdata", "examples", "dual-master-dr-lvs1.conf"))
	if code != exitFailure || !strings.Contains(errOut, "ip_vs") || !strings.Contains(errOut, "use_proxy") {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
}

// TestRunProfiles: --cpuprofile, --memprofile and --mutexprofile leave pprof files (gzip)
// behind however halb run ends, here on a configuration it cannot read.
func TestRunProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, mem, mutex := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof"), filepath.Join(dir, "mutex.pprof")
	code, _, errOut := runHalb("run", "-admin-socket", "-", "-cpuprofile", cpu, "-memprofile", mem, "-mutexprofile", mutex,
		"-f", filepath.Join(dir, "missing.conf"))
	if code != exitFailure {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	for _, p := range []string{cpu, mem, mutex} {
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: %d bytes, %v: not a pprof file", p, len(b), err)
		}
	}
}

func TestRealServerPrintsSteps(t *testing.T) {
	code, out, _ := runHalb("realserver", "198.18.0.10")
	if code != exitOK || !strings.Contains(out, "198.18.0.10/32") || !strings.Contains(out, "arp_ignore") || !strings.Contains(out, "arp_announce") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if code, _, _ := runHalb("realserver", "not-an-ip"); code != exitUsage {
		t.Fatalf("bad VIP: exit %d, want %d", code, exitUsage)
	}
}

// TestSubcommandHelp: run, check and realserver print a synopsis on -h and exit 0, like ctl.
func TestSubcommandHelp(t *testing.T) {
	for _, c := range []string{"run", "check", "realserver", "ctl"} {
		for _, h := range []string{"-h", "--help"} {
			code, out, errOut := runHalb(c, h)
			if code != exitOK || !strings.Contains(out+errOut, "usage: halb "+c) {
				t.Errorf("halb %s %s: exit %d, output %q %q", c, h, code, out, errOut)
			}
		}
	}
	if code, _, errOut := runHalb("check", "--nope"); code != exitUsage || !strings.Contains(errOut, "usage: halb check") {
		t.Errorf("bad flag: exit %d, %q", code, errOut)
	}
}

// TestInterleavedFlags: `halb realserver VIP... --apply` takes the flag after the addresses
// (parsed here without applying anything).
func TestInterleavedFlags(t *testing.T) {
	fs := flag.NewFlagSet("realserver", flag.ContinueOnError)
	apply := fs.Bool("apply", false, "")
	pos, code, done := parseFlags(fs, []string{"198.18.0.1", "2001:db8::1", "--apply"}, "halb realserver VIP... [--apply]", true, io.Discard, io.Discard)
	if done || code != exitOK || !*apply || strings.Join(pos, " ") != "198.18.0.1 2001:db8::1" {
		t.Fatalf("pos %q apply %v code %d done %v", pos, *apply, code, done)
	}
	if code, _, _ := runHalb("realserver", "198.18.0.1", "--bogus"); code != exitUsage {
		t.Fatalf("unknown flag after the addresses: exit %d", code)
	}
}
