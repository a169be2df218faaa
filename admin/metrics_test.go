package admin

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func httpGet(t *testing.T, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// No keep-alive: no idle connection goroutines left for goleak.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func scrape(t *testing.T, e *env) map[string]*dto.MetricFamily {
	t.Helper()
	code, _, body := httpGet(t, "http://"+e.srv.StatsAddr().String()+"/metrics", "Accept", "text/plain")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// value returns the sample of family name whose labels include want
// ("k=v" pairs), failing unless exactly one matches.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Errorf("metric %s missing", name)
		return -1
	}
	var found []float64
	for _, m := range f.Metric {
		lab := map[string]string{}
		for _, l := range m.Label {
			lab[l.GetName()] = l.GetValue()
		}
		ok := true
		for _, w := range want {
			k, v, _ := strings.Cut(w, "=")
			ok = ok && lab[k] == v
		}
		if !ok {
			continue
		}
		switch {
		case m.Gauge != nil:
			found = append(found, m.Gauge.GetValue())
		case m.Counter != nil:
			found = append(found, m.Counter.GetValue())
		case m.Untyped != nil:
			found = append(found, m.Untyped.GetValue())
		}
	}
	if len(found) != 1 {
		t.Errorf("%s%v: %d samples match", name, want, len(found))
		return -1
	}
	return found[0]
}

func TestMetrics(t *testing.T) {
	e := start(t, true, nil)
	fams := scrape(t, e)
	check := func(want float64, name string, labels ...string) {
		t.Helper()
		if got := value(t, fams, name, labels...); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	check(1, "halb_up")
	check(1, "halb_build_info", "version=1.2.3", "goversion=go1.26.8")
	check(1, "halb_config_last_reload_success")
	check(float64(t0.Add(-10*60e9).Unix()), "halb_config_last_reload_timestamp_seconds")

	check(1, "halb_service_up", "service=web")
	check(0, "halb_service_up", "service=db")
	check(12, "halb_service_connections_active", "service=web")
	check(123456, "halb_service_connections_total", "service=web")
	check(120000, "halb_service_requests_total", "service=web", "class=2xx")
	check(7, "halb_service_requests_total", "service=web", "class=5xx")
	check(0, "halb_service_requests_total", "service=web", "class=1xx")
	check(5<<20, "halb_service_bytes_total", "service=web", "direction=in")
	check(3<<30, "halb_service_bytes_total", "service=web", "direction=out")
	check(1, "halb_service_queue_length", "service=web")
	check(3, "halb_service_connections_refused_total", "service=web")
	check(4, "halb_service_errors_total", "service=web")
	check(2, "halb_service_backends_up", "service=web")

	check(1, "halb_backend_up", "service=web", "backend=web1")
	check(0, "halb_backend_up", "service=web", "backend=web2")
	check(1, "halb_backend_state", "service=web", "backend=web2", "state=drain")
	check(0, "halb_backend_state", "service=web", "backend=web2", "state=up")
	check(1, "halb_backend_state", "service=web", "backend=web4", "state=maint")
	check(1, "halb_backend_state", "service=db", "backend=pg1", "state=down")
	check(0, "halb_backend_weight", "service=web", "backend=web4")
	check(100, "halb_backend_weight", "service=web", "backend=web1")
	check(6, "halb_backend_connections_active", "service=web", "backend=web1")
	check(60000, "halb_backend_connections_total", "service=web", "backend=web1")
	check(0.003, "halb_check_duration_seconds", "service=web", "backend=web1")
	check(2, "halb_check_duration_seconds", "service=db", "backend=pg1")
	check(5, "halb_check_failures_total", "service=web", "backend=web3", "reason=refused")
	check(2, "halb_check_failures_total", "service=web", "backend=web3", "reason=timeout")

	vi := []string{"vrrp_instance=VI_WEB1", "interface=eth0", "vrid=51"}
	check(1, "halb_vrrp_state", append(vi, "state=master")...)
	check(0, "halb_vrrp_state", append(vi, "state=backup")...)
	check(0, "halb_vrrp_state", append(vi, "state=fault")...)
	check(81, "halb_vrrp_priority_effective", vi...)
	check(101, "halb_vrrp_priority", vi...)
	check(3, "halb_vrrp_transitions_total", vi...)
	check(3600, "halb_vrrp_adverts_sent_total", vi...)
	check(12, "halb_vrrp_adverts_received_total", vi...)
	check(2, "halb_vrrp_adverts_dropped_total", append(vi, "reason=auth_fail")...)
	check(1, "halb_vrrp_adverts_dropped_total", append(vi, "reason=ttl")...)

	if fams["go_goroutines"] == nil || fams["process_open_fds"] == nil {
		t.Errorf("Go/process collectors missing")
	}
	// Types: counters are counters.
	for _, n := range []string{"halb_service_requests_total", "halb_vrrp_transitions_total", "halb_check_failures_total"} {
		if f := fams[n]; f != nil && f.GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s type %v, want counter", n, f.GetType())
		}
	}

	// Values are read at scrape time, and a failed reload shows.
	e.src.mu.Lock()
	e.src.info.LastReload = Reload{At: t0, OK: false, Error: "bad"}
	e.src.vrrp[0].State = "backup"
	e.src.mu.Unlock()
	fams = scrape(t, e)
	check(0, "halb_config_last_reload_success")
	check(1, "halb_vrrp_state", append(vi, "state=backup")...)
	check(0, "halb_vrrp_state", append(vi, "state=master")...)
}

func TestMetricsDuplicateNamesDoNotBreakScrape(t *testing.T) {
	e := start(t, true, nil)
	e.src.mu.Lock()
	e.src.services = append(e.src.services, e.src.services[0])
	e.src.services[1].Backends = append(e.src.services[1].Backends, e.src.services[1].Backends[0])
	e.src.vrrp = append(e.src.vrrp, e.src.vrrp[0])
	e.src.mu.Unlock()
	fams := scrape(t, e)
	if v := value(t, fams, "halb_service_up", "service=web"); v != 1 {
		t.Errorf("halb_service_up{web} = %v", v)
	}
}

func TestMetricNamesDocumented(t *testing.T) {
	// Every metric the collector describes must be named in the operations
	// guide, so that the guide stays the reference.
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatalf("operations guide: %v", err)
	}
	ch := make(chan *prometheus.Desc, 100)
	newCollector(newFakeSource()).Describe(ch)
	close(ch)
	var names []string
	for d := range ch {
		s := d.String()
		i := strings.Index(s, `fqName: "`)
		if i < 0 {
			t.Fatalf("unexpected Desc format %q", s)
		}
		s = s[i+len(`fqName: "`):]
		names = append(names, s[:strings.IndexByte(s, '"')])
	}
	if len(names) < 20 {
		t.Fatalf("only %d metric names found: %v", len(names), names)
	}
	for _, n := range names {
		if !strings.Contains(string(doc), n) {
			t.Errorf("metric %s is not documented in docs/operations.md", n)
		}
	}
}

// certSource is a fake source with TLS certificates.
type certSource struct{ *fakeSource }

func (certSource) Certificates() []Certificate {
	return []Certificate{{Service: "web", File: "/etc/halb/a.pem", Names: []string{"a.test"}, NotAfter: t0.Add(30 * 24 * time.Hour)}}
}

func TestTLSExpiryMetric(t *testing.T) {
	ch := make(chan prometheus.Metric, 8)
	newTLSMetrics().collect(certSource{newFakeSource()}, ch)
	close(ch)
	var got []string
	for m := range ch {
		var pb dto.Metric
		m.Write(&pb)
		got = append(got, fmt.Sprint(pb.GetGauge().GetValue()))
	}
	if want := fmt.Sprint(float64(t0.Add(30 * 24 * time.Hour).Unix())); len(got) != 1 || got[0] != want {
		t.Fatalf("expiry metric %v, want [%s]", got, want)
	}
	ch = make(chan prometheus.Metric, 8)
	newTLSMetrics().collect(newFakeSource(), ch) // no TLS: no series
	close(ch)
	if len(ch) != 0 {
		t.Fatal("a series without any certificate")
	}
}
