package admin

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStatsPage(t *testing.T) {
	e := start(t, true, nil)
	e.src.mu.Lock()
	e.src.services[0].Backends[0].LastCheck.Reason = `<script>alert("x")</script>`
	e.src.mu.Unlock()
	base := "http://" + e.srv.StatsAddr().String()
	if !strings.HasPrefix(e.srv.StatsAddr().String(), "127.0.0.1:") {
		t.Fatalf("stats bound to %v, want 127.0.0.1", e.srv.StatsAddr())
	}
	code, hdr, body := httpGet(t, base+"/")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %v", code, hdr)
	}
	contains(t, "stats page", body,
		`<meta http-equiv="refresh" content="5">`,
		`id="svc-web"`, `id="svc-db"`,
		`<tr class="state-up" data-backend="web1">`,
		`<tr class="state-drain" data-backend="web2">`,
		`<tr class="state-down" data-backend="web3">`,
		`<tr class="state-maint" data-backend="web4">`,
		`<tr class="state-up backup" data-backend="sorry">`,
		`<tr class="vrrp-master" data-instance="VI_WEB1">`,
		"chk_haproxy -20 FAULT (exit 1)",
		"backup → master, 1h00m ago (master down timer)",
		"2/5 backends up", "0/1 backends up",
		"123,456", "5.0 MiB", "3.0 GiB", "120,000",
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;",
		"uptime <b>3h04m</b>", "version <b>1.2.3</b>",
	)
	if strings.Contains(body, "<script>") {
		t.Errorf("unescaped script in the page")
	}
	for _, bad := range []string{"http://", "https://", "<script"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q: nothing may be fetched from outside, no JavaScript", bad)
		}
	}

	// A failed reload is shown in a banner.
	e.src.mu.Lock()
	e.src.info.LastReload = Reload{At: t0.Add(-time.Minute), Error: "halb.conf:3: unknown keyword \"foo\""}
	e.src.mu.Unlock()
	_, _, body = httpGet(t, base+"/")
	contains(t, "stats page after a failed reload", body, `id="reload-error"`, "running configuration kept", "halb.conf:3: unknown keyword &#34;foo&#34;")

	code, _, body = httpGet(t, base+"/healthz")
	if code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	code, _, body = httpGet(t, base+"/stats.json")
	var st struct {
		Info     Info
		Services []Service
		VRRP     []VRRPInstance
	}
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Info.PID != 4242 || len(st.Services) != 2 || !reflect.DeepEqual(st.VRRP, e.src.vrrp) {
		t.Errorf("/stats.json: %d %.200s", code, body)
	}
	if code, _, _ := httpGet(t, base+"/nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}
}

func TestStatsEmpty(t *testing.T) {
	e := start(t, true, nil)
	e.src.mu.Lock()
	e.src.services, e.src.vrrp = nil, nil
	e.src.mu.Unlock()
	code, _, body := httpGet(t, "http://"+e.srv.StatsAddr().String()+"/")
	if code != 200 {
		t.Fatalf("GET /: %d", code)
	}
	contains(t, "empty page", body, "No VRRP instance configured.", "No service configured.")
}

func TestStatsAuth(t *testing.T) {
	e := start(t, true, func(o *Options) { o.StatsAuth = "admin:s3cret" })
	base := "http://" + e.srv.StatsAddr().String()
	for _, p := range []string{"/", "/metrics", "/stats.json"} {
		code, hdr, _ := httpGet(t, base+p)
		if code != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s without auth: %d", p, code)
		}
		// admin:wrong, adminx:s3cret
		for _, bad := range []string{"Basic YWRtaW46d3Jvbmc=", "Basic YWRtaW54OnMzY3JldA=="} {
			if code, _, _ := httpGet(t, base+p, "Authorization", bad); code != 401 {
				t.Errorf("%s with bad credentials: %d", p, code)
			}
		}
		if code, _, _ := httpGet(t, base+p, "Authorization", "Basic YWRtaW46czNjcmV0"); code != 200 {
			t.Errorf("%s with good credentials: %d", p, code)
		}
	}
	if code, _, _ := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz must not need auth: %d", code)
	}
	s := NewServer(nil, newFakeSource(), nil, Options{StatsListen: "127.0.0.1:0", StatsAuth: "nocolon"})
	if err := s.Start(context.Background()); err == nil {
		t.Errorf("StatsAuth without ':' accepted")
	}
	_ = s.Close()
}

// chromium runs Debian's headless Chromium with the flags that keep it off
// the network, returning its stdout.
func chromium(t *testing.T, ctx context.Context, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if _, err2 := os.Stat("/usr/bin/chromium"); err2 != nil {
			t.Skip("headless test skipped: chromium not installed (apt install chromium)")
		}
		bin = "/usr/bin/chromium"
	}
	profile := t.TempDir()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + profile, "--window-size=1280,900"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

func TestStatsPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("headless browser test skipped in -short mode")
	}
	e := start(t, true, nil)
	url := "http://" + e.srv.StatsAddr().String() + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dom := string(chromium(t, ctx, "--dump-dom", url))
	contains(t, "rendered DOM", dom,
		`<section class="service svc-up" id="svc-web" data-service="web">`,
		`<section class="service svc-down" id="svc-db" data-service="db">`,
		`<table class="backends">`, `<table class="vrrp">`,
		`class="state-up" data-backend="web1"`,
		`class="state-drain" data-backend="web2"`,
		`class="state-down" data-backend="web3"`,
		`class="state-maint" data-backend="web4"`,
		`class="state-up backup" data-backend="sorry"`,
		`class="vrrp-master" data-instance="VI_WEB1"`,
	)
	// The browser built the tables (tbody rows), not just echoed text.
	if n := strings.Count(dom, "<tr "); n < 7 {
		t.Errorf("rendered DOM has %d data rows, want >= 7", n)
	}

	shot := filepath.Join(t.TempDir(), "stats-page.png")
	chromium(t, ctx, "--screenshot="+shot, "--hide-scrollbars", url)
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(b) < 10000 || string(b[1:4]) != "PNG" {
		t.Fatalf("screenshot is not a plausible PNG (%d bytes)", len(b))
	}
	if dir := os.Getenv("HALB_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, "stats-page.png")
		if err := copyFile(shot, dst); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot kept at %s", dst)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
