package config

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"halb/internal/testkit"
)

// writeCert writes a self-signed certificate for name: name.pem (chain + key), name.crt and
// name.key, and returns the directory.
func writeCert(t *testing.T, dir, name string) {
	t.Helper()
	crt, k := testkit.SelfSigned(t, time.Now().Add(24*time.Hour), name)
	for f, b := range map[string][]byte{name + ".crt": crt, name + ".key": k, name + ".pem": append(append([]byte{}, crt...), k...)} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

const l7Conf = `pool api {
    lb_algo lc
    delay_loop 5
    real_server 198.18.0.31 8080 {
        HTTP_GET {
            url {
                path /health
            }
        }
    }
    real_server 198.18.0.32 8080
}
virtual_server 198.18.0.10 443 {
    proxy_mode http
    tls_certificate a.test.pem
    tls_certificate b.test.crt b.test.key
    tls_min_version 1.3
    alpn h2 http/1.1
    timeout_http_keep_alive 3s
    max_header_size 32k
    max_uri_size 4096
    route {
        host api.example.com *.API.example.com.
        path_prefix /v1/
        method get POST
        header X-Env prod
        src 198.18.0.0/15 2001:db8::1
        pool api
    }
    route {
        path_regex ^/old/[0-9]+$
        redirect 301 https://www.example.com/new/
    }
    route {
        path_exact /api
        pool api
    }
    http_request {
        set_header X-Forwarded-Port 443
        add_header Via halb
        del_header X-Debug
    }
    http_response {
        set_header Strict-Transport-Security "max-age=31536000"
        del_header Server
    }
    persistence_cookie SRVID prefix
    error_page 503 errors/503.html
    max_body_size 10m
    request_id X-Request-ID
    real_server 198.18.0.11 80 {
        weight 1
    }
}
virtual_server 198.18.0.10 80 {
    proxy_mode http
    redirect_scheme https 301
}
`

func l7Dir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeCert(t, dir, "a.test")
	writeCert(t, dir, "b.test")
	if err := os.Mkdir(filepath.Join(dir, "errors"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "errors", "503.html"), []byte("<h1>busy</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestL7Model(t *testing.T) {
	dir := l7Dir(t)
	cfg, diags, err := Parse(filepath.Join(dir, "l7.conf"), []byte(l7Conf))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diags {
		t.Errorf("unexpected diagnostic: %v", d)
	}
	if len(cfg.Pools) != 1 {
		t.Fatalf("pools = %d", len(cfg.Pools))
	}
	p := cfg.Pools[0]
	if p.Name != "api" || p.LBAlgo != AlgoLC || p.DelayLoop != 5*time.Second || len(p.RealServers) != 2 {
		t.Errorf("pool = %+v", p)
	}
	if ck := p.RealServers[0].Checkers; len(ck) != 1 || ck[0].DelayLoop != 5*time.Second || ck[0].URLs[0].Path != "/health" ||
		ck[0].ConnectPort != 8080 || ck[0].ConnectTimeout != defaultConnectTimeout {
		t.Errorf("pool checker = %+v", ck)
	}
	vs := cfg.VirtualServers[0]
	l := vs.L7
	if len(l.Certificates) != 2 || l.Certificates[0].Cert != filepath.Join(dir, "a.test.pem") || l.Certificates[0].Key != "" ||
		l.Certificates[1].Key != filepath.Join(dir, "b.test.key") {
		t.Errorf("certificates = %+v", l.Certificates)
	}
	if l.TLSMinVersion != TLS13 || strings.Join(l.ALPN, ",") != "h2,http/1.1" {
		t.Errorf("tls = %v %v", l.TLSMinVersion, l.ALPN)
	}
	if vs.TimeoutHTTPKeepAlive != 3*time.Second || vs.MaxHeaderSize != 32<<10 || vs.MaxURISize != 4096 {
		t.Errorf("front = %v %d %d", vs.TimeoutHTTPKeepAlive, vs.MaxHeaderSize, vs.MaxURISize)
	}
	if len(l.Routes) != 3 {
		t.Fatalf("routes = %d", len(l.Routes))
	}
	r := l.Routes[0]
	if strings.Join(r.Hosts, ",") != "api.example.com,*.api.example.com" || r.PathPrefix != "/v1/" ||
		strings.Join(r.Methods, ",") != "GET,POST" || len(r.Headers) != 1 || r.Headers[0] != (HeaderMatch{"X-Env", "prod"}) ||
		len(r.Sources) != 2 || r.Sources[1] != netip.MustParsePrefix("2001:db8::1/128") || r.Pool != "api" || r.Redirect != nil {
		t.Errorf("route 0 = %+v", r)
	}
	if r := l.Routes[1]; r.PathRegex != "^/old/[0-9]+$" || r.Redirect == nil || *r.Redirect != (Redirect{301, "https://www.example.com/new/"}) {
		t.Errorf("route 1 = %+v", r)
	}
	wantReq := []HeaderRule{{Action: HeaderSet, Name: "X-Forwarded-Port", Value: "443"}, {Action: HeaderAdd, Name: "Via", Value: "halb"},
		{Action: HeaderDel, Name: "X-Debug"}}
	if len(l.RequestRules) != len(wantReq) {
		t.Fatalf("http_request = %+v", l.RequestRules)
	}
	for i, w := range wantReq {
		got := l.RequestRules[i]
		got.Pos = Pos{}
		if got != w {
			t.Errorf("http_request[%d] = %+v, want %+v", i, got, w)
		}
	}
	if len(l.ResponseRules) != 2 || l.ResponseRules[0].Value != "max-age=31536000" {
		t.Errorf("http_response = %+v", l.ResponseRules)
	}
	if c := l.PersistenceCookie; c == nil || c.Name != "SRVID" || c.Mode != CookiePrefix {
		t.Errorf("cookie = %+v", c)
	}
	if len(l.ErrorPages) != 1 || l.ErrorPages[0].Code != 503 || l.ErrorPages[0].File != filepath.Join(dir, "errors", "503.html") {
		t.Errorf("error pages = %+v", l.ErrorPages)
	}
	if l.MaxBodySize != 10<<20 || l.RequestID != "X-Request-ID" {
		t.Errorf("body %d id %q", l.MaxBodySize, l.RequestID)
	}
	if r := cfg.VirtualServers[1].L7.RedirectScheme; r == nil || r.Scheme != "https" || r.Code != 301 {
		t.Errorf("redirect_scheme = %+v", r)
	}
	if _, err := json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
}

func TestL7Defaults(t *testing.T) {
	cfg := mustParse(t, "virtual_server 198.18.0.10 80 {\n proxy_mode http\n real_server 198.18.0.11 80\n}\n")
	vs := cfg.VirtualServers[0]
	if vs.TimeoutHTTPKeepAlive != 10*time.Second || vs.MaxHeaderSize != 16<<10 || vs.MaxURISize != 8<<10 {
		t.Errorf("defaults = %v %d %d", vs.TimeoutHTTPKeepAlive, vs.MaxHeaderSize, vs.MaxURISize)
	}
	if vs.L7.TLSMinVersion != TLS12 || vs.L7.Terminates() {
		t.Errorf("l7 = %+v", vs.L7)
	}
	cfg = mustParse(t, "virtual_server 198.18.0.10 80 {\n proxy_mode http\n redirect_scheme https\n}\n")
	if r := cfg.VirtualServers[0].L7.RedirectScheme; r == nil || r.Code != 302 {
		t.Errorf("redirect_scheme default code: %+v", r)
	}
}

func TestL7Errors(t *testing.T) {
	dir := l7Dir(t)
	writeCert(t, dir, "c.test")
	vs := func(body string) string {
		return "pool api {\n real_server 198.18.0.31 80\n}\nvirtual_server 198.18.0.10 80 {\n" + body + "\n route {\n  pool api\n }\n}\n"
	}
	tests := []struct {
		name, src, want string
		line            int
	}{
		{"unknown pool", "virtual_server 198.18.0.10 80 {\n proxy_mode http\n route {\n  host a.test\n  pool nope\n }\n}\n",
			`pool: no pool named "nope"`, 3},
		{"missing certificate", vs(" proxy_mode http\n tls_certificate missing.pem"), "missing.pem: no such file or directory", 6},
		{"missing key", vs(" proxy_mode http\n tls_certificate a.test.crt nokey.key"), "nokey.key: no such file or directory", 6},
		{"key mismatch", vs(" proxy_mode http\n tls_certificate a.test.crt c.test.key"), "private key does not match public key", 6},
		{"invalid regex", vs(" proxy_mode http\n route {\n  path_regex ^/(a\n  pool api\n }"), "path_regex: invalid regular expression", 7},
		{"tls on tcp", vs(" tls_certificate a.test.pem"), "needs proxy_mode http (this service is tcp)", 5},
		{"route on tcp", vs(" proxy_mode tcp"), "route: 198.18.0.10:80: needs proxy_mode http", 6},
		{"passthrough and terminate", vs(" proxy_mode tls\n tls_certificate a.test.pem"), "can't both pass through and terminate", 6},
		{"bad redirect code", vs(" proxy_mode http\n route {\n  redirect 200 /x\n }"), `"200" is not a redirect status`, 7},
		{"bad error_page code", vs(" proxy_mode http\n error_page 200 errors/503.html"), "error_page: 200 is out of range", 6},
		{"missing error page", vs(" proxy_mode http\n error_page 503 errors/none.html"), "none.html: no such file", 6},
		{"duplicate error page", vs(" proxy_mode http\n error_page 503 errors/503.html\n error_page 503 errors/503.html"), "503 already has a page", 7},
		{"bad scheme code", vs(" proxy_mode http\n redirect_scheme https 404"), "not a redirect status", 6},
		{"scheme loop", vs(" proxy_mode http\n tls_certificate a.test.pem\n redirect_scheme https"), "would loop", 7},
		{"alpn without tls", vs(" proxy_mode http\n alpn h2"), "alpn: 198.18.0.10:80: needs tls_certificate", 6},
		{"version without tls", vs(" proxy_mode http\n max_body_size 1k\n tls_min_version 1.3"), "tls_min_version: 198.18.0.10:80: needs tls_certificate", 7},
		{"bad alpn", vs(" proxy_mode http\n tls_certificate a.test.pem\n alpn h3"), `"h3" is not h2 or http/1.1`, 7},
		{"bad tls version", vs(" proxy_mode http\n tls_certificate a.test.pem\n tls_min_version 1.1"), `"1.1" is not one of 1.2|1.3`, 7},
		{"route without action", vs(" proxy_mode http\n route {\n  host a.test\n }"), "needs an action", 6},
		{"route with two actions", vs(" proxy_mode http\n route {\n  pool api\n  redirect 302 /x\n }"), "both pool and redirect", 6},
		{"path twice", vs(" proxy_mode http\n route {\n  path_prefix /a\n  path_prefix /b\n  pool api\n }"), "given twice", 8},
		{"relative path", vs(" proxy_mode http\n route {\n  path_prefix a/\n  pool api\n }"), `"a/" is not a path`, 7},
		{"bad host", vs(" proxy_mode http\n route {\n  host a..test\n  pool api\n }"), "is not a host name", 7},
		{"framing header", vs(" proxy_mode http\n http_request {\n  set_header Content-Length 3\n }"), "framing header", 7},
		{"bad header name", vs(" proxy_mode http\n http_response {\n  del_header \"a b\"\n }"), "is not a header name", 7},
		{"bad cookie mode", vs(" proxy_mode http\n persistence_cookie SRV session"), `"session" is not one of insert|rewrite|prefix`, 6},
		{"bad size", vs(" proxy_mode http\n max_body_size 10x"), `"10x" is not a size`, 6},
		{"header size range", vs(" proxy_mode http\n max_header_size 10"), "is not a size from 1024", 6},
		{"duplicate pool", "pool a {\n}\npool a {\n}\n", "pool: a is already defined at", 3},
		{"pool keyword", "pool a {\n proxy_mode http\n}\n", "proxy_mode: not valid in pool", 2},
		{"route outside", "route {\n}\n", "not valid in the top level (it belongs in virtual_server)", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags, err := Parse(filepath.Join(dir, "t.conf"), []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; diags %v", diags)
			}
			for _, d := range diags {
				if d.Severity == Error && strings.Contains(d.String(), tt.want) {
					if d.Pos.Line != tt.line || d.Pos.File != filepath.Join(dir, "t.conf") {
						t.Errorf("%v: want line %d", d, tt.line)
					}
					return
				}
			}
			t.Errorf("no error containing %q in %v", tt.want, diags)
		})
	}
}

func TestL7Warnings(t *testing.T) {
	_, diags, err := parseSrc(t, "pool idle {\n real_server 198.18.0.31 80 {\n  sni a.test\n }\n}\npool empty {\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"t.conf:1: warning: pool: idle is not used by any route", "t.conf:2: warning: sni: real_server 198.18.0.31:80: sni has no effect in a pool",
		"t.conf:6: warning: pool: empty has no real_server"}
	for _, w := range want {
		found := false
		for _, d := range diags {
			if strings.Contains(d.String(), w) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning %q in %v", w, diags)
		}
	}
}

// FuzzParseL7 feeds the layer-7 grammar to the parser with a filesystem that has no file: it must
// never panic, and a config comes back iff there is no error.
func FuzzParseL7(f *testing.F) {
	f.Add([]byte(l7Conf))
	f.Add([]byte("virtual_server 198.18.0.10 80 {\n proxy_mode http\n route {\n  path_regex (\n  pool p\n }\n max_body_size 99999999999999g\n}\n"))
	f.Add([]byte("pool p {\n real_server 198.18.0.1 80 {\n  TCP_CHECK {\n  }\n }\n}\nvirtual_server 198.18.0.10 80 {\n proxy_mode tls\n tls_certificate x y\n http_request {\n  add_header A \"\x01\"\n }\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		d := &diags{}
		r := newReader(d)
		r.readFile = func(string) ([]byte, error) { return nil, os.ErrNotExist }
		r.glob = func(string) ([]string, error) { return nil, nil }
		cfg, _, err := parse(r, "fuzz.conf", src)
		if (cfg == nil) != (err != nil) {
			t.Fatalf("cfg nil = %v, err = %v", cfg == nil, err)
		}
		if cfg != nil {
			if _, err := json.Marshal(cfg); err != nil {
				t.Fatal(err)
			}
		}
	})
}
