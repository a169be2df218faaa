package daemon

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap/zaptest"

	"halb/admin"
	"halb/config"
	"halb/health"
	"halb/internal/testkit"
	"halb/proxy"
)

func writeTestPEM(t *testing.T, path, name string) {
	t.Helper()
	c, k := testkit.SelfSigned(t, time.Now().Add(24*time.Hour), name)
	b := append(c, k...)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

const l7DaemonConf = `pool api {
    lb_algo rr
    real_server 198.18.0.31 8080 {
        TCP_CHECK {
        }
    }
    real_server 198.18.0.32 8080
}
pool static {
    real_server 198.18.0.41 80
}
virtual_server 198.18.0.10 443 {
    proxy_mode http
    tls_certificate a.pem
    alpn h2 http/1.1
    route {
        host api.example.com
        pool api
    }
    route {
        path_prefix /static/
        pool static
    }
    route {
        path_prefix /v1/
        pool api
    }
    route {
        path_prefix /old/
        redirect 301 https://www.example.com/new/
    }
    http_request {
        set_header X-Forwarded-Port 443
    }
    persistence_cookie SRVID prefix
    request_id X-Request-ID
    max_body_size 1m
    real_server 198.18.0.11 80
}
virtual_server 198.18.0.10 80 {
    proxy_mode http
    redirect_scheme https 301
}
`

func loadL7(t *testing.T, dir string) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse(filepath.Join(dir, "halb.conf"), []byte(l7DaemonConf))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestL7PoolsAndSpec(t *testing.T) {
	dir := t.TempDir()
	writeTestPEM(t, filepath.Join(dir, "a.pem"), "a.test")
	cfg := loadL7(t, dir)
	g, err := buildPools(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := g.byName["pool api"]
	if api == nil || len(api.pools) != 1 || len(api.pools[0].pool.Views()) != 2 {
		t.Fatalf("pool api service = %+v", api)
	}
	if g.refs["pool api/198.18.0.31:8080"] != api || g.refs["pool static/198.18.0.41:80"] != g.byName["pool static"] {
		t.Error("pool real servers are not health-check references")
	}
	targets, services := healthTargets(cfg, health.ScriptOptions{})
	var found bool
	for _, tg := range targets {
		if tg.ID == "pool api/198.18.0.31:8080" {
			found = len(tg.Checkers) == 1 && tg.Service == "pool api"
		}
	}
	if !found {
		t.Errorf("no health target for the pool's checked server in %d targets", len(targets))
	}
	if !strings.Contains(strings.Join(func() []string {
		var s []string
		for _, x := range services {
			s = append(s, x.ID)
		}
		return s
	}(), ","), "pool static") {
		t.Error("pool has no quorum service")
	}

	if err := buildL7(zaptest.NewLogger(t), g, nil); err != nil {
		t.Fatal(err)
	}
	spec := g.byName["198.18.0.10:443"].l7
	if spec == nil || spec.Router.Len() != 4 || len(spec.Pools) != 2 || spec.PoolNames[0] != "api" || spec.PoolNames[1] != "static" ||
		spec.Pools[0] != api.pools[0].pool || !spec.H2 || spec.TLS == nil || spec.Cookie == nil || spec.Cookie.Mode != proxy.CookiePrefix ||
		spec.RequestIDs == nil || spec.MaxBodySize != 1<<20 || spec.Request.Len() != 1 {
		t.Fatalf("spec = %+v", spec)
	}
	for raw, want := range map[string]int{
		"GET /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n": 0,
		"GET /static/a HTTP/1.1\r\nHost: www\r\n\r\n":      1,
		"GET /v1/a HTTP/1.1\r\nHost: www\r\n\r\n":          0,
		"GET /old/a HTTP/1.1\r\nHost: www\r\n\r\n":         -2,
		"GET /elsewhere HTTP/1.1\r\nHost: www\r\n\r\n":     -1,
		"GET /static/../v1/ HTTP/1.1\r\nHost: www\r\n\r\n": 0,
	} {
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Fatal(err)
		}
		tg, _, ok := spec.Router.Match(&h, netip.MustParseAddr("198.18.1.1"))
		got := -1
		switch {
		case ok && tg.Redirect != nil:
			got = -2
		case ok:
			got = tg.Pool
		}
		if got != want {
			t.Errorf("%q: pool %d, want %d", raw, got, want)
		}
	}
	if s := g.byName["198.18.0.10:80"].l7; s == nil || s.SchemeRedirect == nil || s.SchemeRedirect.Code != 301 || s.TLS != nil {
		t.Errorf("port 80 spec = %+v", s)
	}

	// A reload keeps the certificate store (listeners keep their tls.Config) and its new
	// certificate is served.
	writeTestPEM(t, filepath.Join(dir, "a.pem"), "renewed.test")
	g2, err := buildPools(loadL7(t, dir), g)
	if err != nil {
		t.Fatal(err)
	}
	if err := buildL7(zaptest.NewLogger(t), g2, g); err != nil {
		t.Fatal(err)
	}
	s2 := g2.byName["198.18.0.10:443"].l7
	if s2.TLS != spec.TLS || s2.TLS.Certificates()[0].Names[0] != "renewed.test" {
		t.Errorf("reload: store kept %v, names %v", s2.TLS == spec.TLS, s2.TLS.Certificates()[0].Names)
	}
	if g2.byName["pool api"].pools[0].pool != api.pools[0].pool {
		t.Error("reload replaced the pool api balance pool (its backends lose their state)")
	}
}

// TestHTTPFrontDefaultsAgree: config's defaults for the HTTP front are the proxy's.
func TestHTTPFrontDefaultsAgree(t *testing.T) {
	cfg, _, err := config.Parse("t.conf", []byte("virtual_server 198.18.0.10 80 {\n proxy_mode http\n real_server 198.18.0.11 80\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	vs := cfg.VirtualServers[0]
	if vs.TimeoutHTTPKeepAlive != proxy.DefaultHTTPKeepAliveTimeout || vs.MaxHeaderSize != proxy.DefaultMaxHeaderSize ||
		vs.MaxURISize != proxy.DefaultMaxURISize {
		t.Errorf("config %v %d %d, proxy %v %d %d", vs.TimeoutHTTPKeepAlive, vs.MaxHeaderSize, vs.MaxURISize,
			proxy.DefaultHTTPKeepAliveTimeout, proxy.DefaultMaxHeaderSize, proxy.DefaultMaxURISize)
	}
	for _, h := range []string{"Content-Length", "transfer-encoding", "Connection", "Upgrade", "TE", "Trailer", "Keep-Alive", "Proxy-Connection"} {
		if !proxy.IsFramingHeader(h) {
			t.Errorf("proxy does not refuse %s", h)
		}
		src := "virtual_server 198.18.0.10 80 {\n proxy_mode http\n http_request {\n  del_header " + h + "\n }\n}\n"
		if _, _, err := config.Parse("t.conf", []byte(src)); err == nil {
			t.Errorf("config accepts a rule on %s", h)
		}
	}
}

// TestPoolInStatsAndCtl: a top-level pool shows in the services the stats page, `halb ctl` and
// the metrics read, and `halb ctl` changes its servers.
func TestPoolInStatsAndCtl(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "halb.conf")
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer be.Close()
	host, bePort, _ := net.SplitHostPort(be.Listener.Addr().String())
	port := freePort(t)
	src := fmt.Sprintf("global_defs {\n shutdown_timeout 1s\n}\npool api {\n real_server 127.0.0.1 %d\n}\n"+
		"virtual_server 127.0.0.1 %d {\n proxy_mode http\n route {\n  path_prefix /api/\n  pool api\n }\n real_server %s %s\n}\n",
		freePort(t), port, host, bePort)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, path)
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/", port)) // running: the default pool answers
	find := func() *admin.Service {
		for _, s := range (source{d}).Services() {
			if s.Name == "pool api" {
				return &s
			}
		}
		return nil
	}
	s := find()
	if s == nil || s.Mode != "pool" || len(s.Backends) != 1 || !strings.HasPrefix(s.Backends[0].Name, "127.0.0.1:") {
		t.Fatalf("pool service = %+v", s)
	}
	if err := (controller{d}).SetBackendState("pool api", s.Backends[0].Name, "maint"); err != nil {
		t.Fatal(err)
	}
	if s := find(); s.Backends[0].State != admin.StateMaint {
		t.Errorf("state after disable = %v", s.Backends[0].State)
	}
}
