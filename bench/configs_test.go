package bench

import (
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

var testBackends = []netip.AddrPort{lo(18081), lo(18082)}

func TestHalbConfig(t *testing.T) {
	for _, mode := range []string{"http", "tcp"} {
		golden(t, "halb-"+mode+".conf", halbConfig(mode, lo(18080), testBackends))
	}
	// The exact shape halb's config package was promised.
	want := "virtual_server 127.0.0.1 18080 {\n    proxy_mode http\n    timeout_http_keep_alive 60s\n    lb_algo rr\n" +
		"    real_server 127.0.0.1 18081 { weight 1 }\n    real_server 127.0.0.1 18082 { weight 1 }\n}\n"
	if got := halbConfig("http", lo(18080), testBackends); !strings.HasSuffix(got, want) {
		t.Errorf("halb config:\n%s\nwant it to end with:\n%s", got, want)
	}
}

func TestHAProxyConfig(t *testing.T) {
	for _, mode := range []string{"http", "tcp"} {
		cfg := haproxyConfig(mode, lo(18090), testBackends, 3, 20000)
		golden(t, "haproxy-"+mode+".cfg", cfg)
		for _, want := range []string{"nbthread 3\n", "maxconn 20000\n", "mode " + mode + "\n", "bind 127.0.0.1:18090\n", "server s2 127.0.0.1:18082\n"} {
			if !strings.Contains(cfg, want) {
				t.Errorf("%s config lacks %q", mode, want)
			}
		}
		if got := strings.Contains(cfg, "http-reuse safe"); got != (mode == "http") {
			t.Errorf("%s config: http-reuse safe present = %v", mode, got)
		}
		if got := strings.Contains(cfg, "option forwardfor") && strings.Contains(cfg, "set-header Forwarded "); got != (mode == "http") {
			t.Errorf("%s config: the forwarding fields halb sets present = %v", mode, got)
		}
		if _, err := exec.LookPath("haproxy"); err != nil {
			continue
		}
		path := filepath.Join(t.TempDir(), "h.cfg")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("haproxy", "-c", "-q", "-f", path).CombinedOutput(); err != nil {
			t.Errorf("haproxy -c rejects the %s config: %v: %s", mode, err, out)
		}
	}
}

func TestNginxConfigs(t *testing.T) {
	dir := "/run/halb-bench-x"
	golden(t, "nginx-backend.conf", nginxBackendConfig(dir, lo(18081), 1024, true))
	golden(t, "nginx-proxy-http.conf", nginxProxyConfig(dir, "http", lo(18092), testBackends, 2, 1024, false, ""))
	golden(t, "nginx-proxy-tcp.conf", nginxProxyConfig(dir, "tcp", lo(18092), testBackends, 2, 1024, false, "/usr/lib/nginx/modules/ngx_stream_module.so"))
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx not installed: configs not checked with nginx -t")
	}
	// nginx -t on the real configs, in a scratch prefix.
	tmp := t.TempDir()
	os.MkdirAll(filepath.Join(tmp, "www"), 0o755)
	os.MkdirAll(filepath.Join(tmp, "t"), 0o755)
	asRoot := os.Geteuid() == 0
	confs := map[string]string{
		"backend": nginxBackendConfig(tmp, lo(18081), 1024, asRoot),
		"http":    nginxProxyConfig(tmp, "http", lo(18092), testBackends, 2, 1024, asRoot, ""),
	}
	if mod, ok := nginxStreamModule(); ok {
		confs["tcp"] = nginxProxyConfig(tmp, "tcp", lo(18092), testBackends, 2, 1024, asRoot, mod)
	}
	for name, conf := range confs {
		path := filepath.Join(tmp, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("nginx", "-t", "-q", "-p", tmp, "-e", filepath.Join(tmp, "error.log"), "-c", path).CombinedOutput(); err != nil {
			t.Errorf("nginx -t rejects the %s config: %v: %s", name, err, out)
		}
	}
}
