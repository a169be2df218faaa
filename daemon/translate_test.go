package daemon

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"halb/config"
	"halb/health"
	"halb/ipvs"
	"halb/proxy"
	"halb/proxy/balance"
)

func mustParse(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse("test.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestVRRPTranslation: the config model reaches the VRRP router with keepalived's meaning,
// including track_mode fault (weights become "FAULT while failing").
func TestVRRPTranslation(t *testing.T) {
	src := `vrrp_script chk {
    script "/bin/true"
    weight -20 reverse
}
vrrp_track_file maint {
    file /run/halb-maint
    weight -5
    init_file 3
}
vrrp_instance A {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        198.18.0.10/24 dev eth0 label eth0:1
    }
    track_script {
        chk
    }
    track_file {
        maint
    }
    track_interface {
        eth1 weight -10
    }
}
vrrp_instance B {
    interface eth0
    virtual_router_id 52
    track_mode fault
    virtual_ipaddress {
        198.18.0.20/24
    }
    track_script {
        chk weight -30
    }
    track_file {
        maint weight 2 reverse
    }
    track_interface {
        eth1 weight -10
    }
}
`
	v := vrrpConfig(mustParse(t, src))
	if len(v.Instances) != 2 || len(v.Scripts) != 1 || v.Scripts[0].Weight != -20 || !v.Scripts[0].Reverse {
		t.Fatalf("translation: %+v", v)
	}
	a, b := v.Instances[0], v.Instances[1]
	if a.VRID != 51 || a.Priority != 150 || a.AuthPass != "secret" || a.VIPs[0].Label != "eth0:1" || a.VIPs[0].Prefix.Bits() != 24 {
		t.Fatalf("instance A: %+v", a)
	}
	if a.TrackScripts[0].WeightSet || a.TrackInterfaces[0].Weight != -10 {
		t.Fatalf("A tracking (weight mode): %+v %+v", a.TrackScripts, a.TrackInterfaces)
	}
	if f := v.Files; len(f) != 1 || f[0].Path != "/run/halb-maint" || f[0].Weight != -5 || !f[0].Init || f[0].InitValue != 3 {
		t.Fatalf("track files: %+v", f)
	}
	if len(a.TrackFiles) != 1 || a.TrackFiles[0].WeightSet || !b.TrackFiles[0].WeightSet || b.TrackFiles[0].Weight != 0 || !b.TrackFiles[0].Reverse {
		t.Fatalf("track_file refs: %+v %+v", a.TrackFiles, b.TrackFiles)
	}
	if !b.TrackScripts[0].WeightSet || b.TrackScripts[0].Weight != 0 || b.TrackInterfaces[0].Weight != 0 {
		t.Fatalf("B tracking (fault mode): %+v %+v", b.TrackScripts, b.TrackInterfaces)
	}
}

// TestProxySpecs: a TLS service with SNI-tagged real servers gets one pool per name plus the
// default set, and per-server PROXY protocol reaches the pool members.
func TestProxySpecs(t *testing.T) {
	src := `virtual_server 198.18.0.10 443 {
    proxy_mode tls
    lb_algo sh
    send_proxy v2
    real_server 198.18.0.11 443 {
        sni www.example.com *.example.org
    }
    real_server 198.18.0.12 443 {
        sni www.example.com
        send_proxy v1
    }
    real_server 198.18.0.13 443 {
    }
}
`
	g, err := buildPools(mustParse(t, src), nil)
	if err != nil {
		t.Fatal(err)
	}
	specs := proxySpecs(g, nil)
	if len(specs) != 1 || specs[0].Pool == nil || len(specs[0].SNI) != 2 {
		t.Fatalf("specs: %+v", specs)
	}
	names := map[string]int{}
	for _, r := range specs[0].SNI {
		names[r.Names[0]] = len(r.Pool.Views())
	}
	if names["www.example.com"] != 2 || names["*.example.org"] != 1 || len(specs[0].Pool.Views()) != 1 {
		t.Fatalf("SNI pools: %v, default %d", names, len(specs[0].Pool.Views()))
	}
	for _, r := range specs[0].SNI {
		if b := r.Pool.Backend("198.18.0.12:443"); b != nil {
			if o, ok := b.Data().(*proxy.BackendOpts); !ok || o.SendProxy != proxy.ProxyV1 {
				t.Fatalf("per-server send_proxy not carried: %#v", b.Data())
			}
		}
	}
	if specs[0].SendProxy != proxy.ProxyV2 {
		t.Fatalf("service send_proxy: %v", specs[0].SendProxy)
	}
	// Reload with the same service: the pools are the same objects (backends keep their state).
	g2, err := buildPools(mustParse(t, src), g)
	if err != nil {
		t.Fatal(err)
	}
	if g2.services[0].pools[0].pool != g.services[0].pools[0].pool {
		t.Fatal("reload replaced an unchanged pool")
	}
}

// TestIPVSView: `halb ctl show ipvs` shows halb's desired table next to the kernel's.
func TestIPVSView(t *testing.T) {
	cfg := mustParse(t, `virtual_server 198.18.0.10 80 {
    lb_algo wrr
    lb_kind DR
    persistence_timeout 60
    real_server 198.18.0.11 80 {
        weight 3
    }
}
`)
	desired := ipvsServices(cfg)
	if len(desired) != 1 || desired[0].Scheduler != "wrr" || desired[0].Dests[0].Method != ipvs.DR || desired[0].Timeout != 60*time.Second {
		t.Fatalf("desired: %+v", desired)
	}
	flagged := ipvsServices(mustParse(t, `virtual_server 198.18.0.10 53 {
    protocol UDP
    lb_algo sh
    lb_kind DR
    ops
    sh-port
    sh-fallback
    real_server 198.18.0.11 53 {
        uthreshold 100
        lthreshold 10
    }
}
`))
	if f := flagged[0].Flags; f != ipvs.FlagOnePacket|ipvs.FlagSched1|ipvs.FlagSched2 {
		t.Errorf("ops, sh-port, sh-fallback: flags %#x", f)
	}
	if d := flagged[0].Dests[0]; d.UThreshold != 100 || d.LThreshold != 10 {
		t.Errorf("thresholds: %+v", d)
	}
	kernel := ipvs.NewFakeTable()
	if err := kernel.NewService(desired[0]); err != nil {
		t.Fatal(err)
	}
	out, err := formatIPVS(desired, kernel, nil)
	if err != nil {
		t.Fatal(err)
	}
	halbPart, kernelPart, ok := strings.Cut(out, "== the kernel's table ==")
	if !ok || !strings.Contains(halbPart, "TCP  198.18.0.10:80 wrr persistent 60") || !strings.Contains(halbPart, "198.18.0.11:80") ||
		!strings.Contains(kernelPart, "TCP  198.18.0.10:80 wrr") {
		t.Fatalf("view:\n%s", out)
	}
}

// TestDefaultsAgree: a config that sets no timing gets, through the translation, exactly the
// libraries' own defaults, so a default lives in one place per library and they cannot drift.
func TestDefaultsAgree(t *testing.T) {
	cfg := mustParse(t, `virtual_server 198.18.0.10 80 {
    real_server 198.18.0.11 80 {
        TCP_CHECK {
        }
    }
}
`)
	g, err := buildPools(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	specs := proxySpecs(g, nil)
	if len(specs) != 1 {
		t.Fatalf("specs: %+v", specs)
	}
	to := specs[0].Timeouts
	want := proxy.Timeouts{Connect: proxy.DefaultConnectTimeout, Client: proxy.DefaultClientTimeout, Server: proxy.DefaultServerTimeout,
		HTTPRequest: proxy.DefaultHTTPRequestTimeout, HTTPKeepAlive: proxy.DefaultHTTPKeepAliveTimeout,
		Tunnel: proxy.DefaultTunnelTimeout, Queue: proxy.DefaultConnectTimeout}
	if to != want {
		t.Errorf("proxy timeouts from config defaults %+v, proxy defaults %+v", to, want)
	}
	if specs[0].MaxHeaderSize != proxy.DefaultMaxHeaderSize || specs[0].MaxURISize != proxy.DefaultMaxURISize {
		t.Errorf("head limits from config defaults %d %d, proxy defaults %d %d", specs[0].MaxHeaderSize, specs[0].MaxURISize,
			proxy.DefaultMaxHeaderSize, proxy.DefaultMaxURISize)
	}
	targets, _ := healthTargets(cfg, scriptOptions(cfg))
	if len(targets) != 1 {
		t.Fatalf("targets: %+v", targets)
	}
	tm := targets[0].Timing
	if tm.DelayLoop != health.DefaultDelayLoop || tm.ConnectTimeout != health.DefaultConnectTimeout ||
		tm.DelayBeforeRetry != health.DefaultDelayBeforeRetry {
		t.Errorf("health timing from config defaults %+v; health defaults delay_loop %s connect_timeout %s delay_before_retry %s",
			tm, health.DefaultDelayLoop, health.DefaultConnectTimeout, health.DefaultDelayBeforeRetry)
	}
	if got := cfg.VirtualServers[0].LBAlgo.String(); got != ipvs.DefaultScheduler {
		t.Errorf("lb_algo default %s, ipvs default %s", got, ipvs.DefaultScheduler)
	}
	if tr := targets[0]; tr.Addr != netip.MustParseAddrPort("198.18.0.11:80") || tr.Service != "198.18.0.10:80" {
		t.Errorf("target hand-off: service %q addr %s", tr.Service, tr.Addr)
	}
}

// TestBalanceAlgo: every lb_algo maps to a userspace scheduler by the switch.
func TestBalanceAlgo(t *testing.T) {
	for a := config.AlgoRR; a <= config.AlgoOVF; a++ {
		b, err := balanceAlgo(a)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if p, _ := balance.ParseAlgo(a.String()); p != b {
			t.Errorf("%s: switch says %s, balance.ParseAlgo %s", a, b, p)
		}
	}
}

// TestMoreCheckers: DNS_CHECK, SMTP_CHECK, UDP_CHECK and FILE_CHECK reach the health package
// with their keywords and keepalived's defaults.
func TestMoreCheckers(t *testing.T) {
	cfg := mustParse(t, `vrrp_track_file maint {
    file /run/halb-maint
    weight -2
}
virtual_server 198.18.0.10 53 {
    protocol UDP
    real_server 198.18.0.11 53 {
        weight 7
        DNS_CHECK {
            type a
            name www.example.com
        }
        DNS_CHECK {
            connect_port 5353
        }
        UDP_CHECK {
            payload 0001ff
            require_reply ab
            min_reply_length 2
        }
        SMTP_CHECK {
            connect_port 25
            helo_name lb1.example.com
        }
        FILE_CHECK {
            track_file maint
            dynamic
        }
    }
}
`)
	if ck := cfg.VirtualServers[0].RealServers[0].Checkers; ck[0].Retry != 3 || ck[0].DelayBeforeRetry != ck[0].DelayLoop || ck[2].Retry != 1 {
		t.Errorf("keepalived's DNS_CHECK timing (retry 3, delay_before_retry = delay_loop): %+v; UDP_CHECK retry %d", ck[0], ck[2].Retry)
	}
	targets, _ := healthTargets(cfg, scriptOptions(cfg))
	if len(targets) != 1 || len(targets[0].Checkers) != 5 {
		t.Fatalf("targets: %+v", targets)
	}
	cs := targets[0].Checkers
	if d, ok := cs[0].(*health.DNSChecker); !ok || d.Type != "A" || d.Name != "www.example.com" || d.Addr != netip.MustParseAddrPort("198.18.0.11:53") {
		t.Errorf("DNS_CHECK: %#v", cs[0])
	}
	if d, ok := cs[1].(*health.DNSChecker); !ok || d.Type != "SOA" || d.Name != "." || d.Addr.Port() != 5353 {
		t.Errorf("DNS_CHECK defaults: %#v", cs[1])
	}
	if u, ok := cs[2].(*health.UDPChecker); !ok || string(u.Payload) != "\x00\x01\xff" || !u.RequireReply || string(u.Reply) != "\xab" ||
		u.MinLen != 2 || u.MaxLen != 255 {
		t.Errorf("UDP_CHECK: %#v", cs[2])
	}
	if s, ok := cs[3].(*health.SMTPChecker); !ok || s.HeloName != "lb1.example.com" || s.Addr.Port() != 25 {
		t.Errorf("SMTP_CHECK: %#v", cs[3])
	}
	if f, ok := cs[4].(*health.FileChecker); !ok || f.Path != "/run/halb-maint" || f.Weight != -2 || !f.Dynamic || f.BaseWeight != 7 {
		t.Errorf("FILE_CHECK: %#v", cs[4])
	}
}
