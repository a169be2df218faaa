package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap/zaptest"
)

type bgpSource struct {
	*fakeSource
	v BGP
}

func (s bgpSource) BGP() (BGP, bool) { return s.v, true }

type bgpController struct {
	*fakeController
}

func (c bgpController) SetServiceDrain(service string, drain bool) error {
	if service != "web" {
		return fmt.Errorf("unknown service %q", service)
	}
	return c.record(call{op: "service", service: service, arg: fmt.Sprint(drain)})
}

func bgpFixture() BGP {
	med := uint32(5)
	return BGP{RouterID: "198.18.0.1", LocalAS: 65011, Interface: "halb0",
		Sessions: []BGPSession{
			{Neighbor: "198.18.0.254", RemoteAS: 65000, State: "established", Up: true, Since: t0.Add(-90 * time.Second), Flaps: 2, Received: 1},
			{Neighbor: "198.18.0.12", RemoteAS: 65000, State: "idle", LastError: "session reset in BGP_FSM_OPENCONFIRM: invalid-msg", LastErrorAt: t0.Add(-3 * time.Second)},
		},
		Announced: []BGPAnnounce{{Prefix: "198.18.10.10/32", Communities: []string{"65011:100"}, MED: &med, Prepend: 1}},
	}
}

func TestBGPCommands(t *testing.T) {
	for _, line := range []string{"show bgp", "drain service web", "enable service web", `drain service "fwmark 5"`} {
		c, err := ParseCommand(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if again, err := ParseCommand(c.String()); err != nil || again != c {
			t.Errorf("round trip %q -> %q: %+v %v", line, c.String(), again, err)
		}
	}
	for _, line := range []string{"show bgp x", "drain service", "drain service web extra", "disable service web", "drain service a/b"} {
		if _, err := ParseCommand(line); err == nil {
			t.Errorf("%q parsed", line)
		}
	}
	seen := map[Op]bool{}
	for _, h := range Help() {
		if c, err := ParseCommand(strings.ReplaceAll(h.Command, "SERVICE/BACKEND", "a/b")); err == nil {
			seen[c.Op] = true
		}
	}
	for _, op := range []Op{OpShowBGP, OpDrainService, OpEnableService} {
		if !seen[op] {
			t.Errorf("%v missing from Help()", Command{Op: op})
		}
	}
}

func TestBGPExecute(t *testing.T) {
	src := bgpSource{newFakeSource(), bgpFixture()}
	ctl := bgpController{&fakeController{}}
	s := NewServer(zaptest.NewLogger(t), src, ctl, Options{Now: func() time.Time { return t0 }})
	r := s.Execute(Command{Op: OpShowBGP})
	if !r.OK {
		t.Fatalf("show bgp: %+v", r)
	}
	data, _ := json.Marshal(r.Data)
	var out bytes.Buffer
	if err := render(&out, Command{Op: OpShowBGP}, data, t0); err != nil {
		t.Fatal(err)
	}
	contains(t, "show bgp", out.String(), "router id 198.18.0.1, local AS 65011, VIPs on halb0",
		"198.18.0.254  65000  ESTABLISHED  1m30s", "198.18.0.12   65000  IDLE", "invalid-msg (3s ago)",
		"198.18.10.10/32  65011:100    5    1")
	if r := s.Execute(Command{Op: OpDrainService, Service: "web"}); !r.OK {
		t.Errorf("drain service: %+v", r)
	}
	if r := s.Execute(Command{Op: OpEnableService, Service: "nope"}); r.OK || !strings.Contains(r.Error, `unknown service "nope"`) {
		t.Errorf("enable unknown service: %+v", r)
	}
	if c := ctl.Calls(); len(c) != 1 || c[0] != (call{op: "service", service: "web", arg: "true"}) {
		t.Errorf("calls %+v", c)
	}
	// Without BGP: a clear refusal.
	plain := NewServer(zaptest.NewLogger(t), newFakeSource(), &fakeController{}, Options{})
	if r := plain.Execute(Command{Op: OpShowBGP}); r.OK || !strings.Contains(r.Error, "not configured") {
		t.Errorf("show bgp without BGP: %+v", r)
	}
	if r := plain.Execute(Command{Op: OpDrainService, Service: "web"}); r.OK || !strings.Contains(r.Error, "not available") {
		t.Errorf("drain service without BGP: %+v", r)
	}
}

func TestBGPMetricsAndStats(t *testing.T) {
	s := NewServer(zaptest.NewLogger(t), bgpSource{newFakeSource(), bgpFixture()}, nil, Options{Now: func() time.Time { return t0 }})
	h := s.Handler()
	get := func(path string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(rec.Body)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, b)
		}
		return string(b)
	}
	metrics := get("/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := p.TextToMetricFamilies(strings.NewReader(metrics)); err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	contains(t, "metrics", metrics,
		`halb_bgp_session_up{neighbor="198.18.0.254",remote_as="65000"} 1`,
		`halb_bgp_session_up{neighbor="198.18.0.12",remote_as="65000"} 0`,
		`halb_bgp_session_state{neighbor="198.18.0.12",remote_as="65000",state="idle"} 1`,
		`halb_bgp_session_flaps_total{neighbor="198.18.0.254",remote_as="65000"} 2`,
		`halb_bgp_announced_prefixes 1`,
		`halb_bgp_announced{prefix="198.18.10.10/32"} 1`)
	page := get("/")
	contains(t, "stats page", page, `<h2 id="bgp">BGP`, `data-neighbor="198.18.0.254"`, `class="bgp-up"`, `class="bgp-down"`,
		"session reset in BGP_FSM_OPENCONFIRM", "<b>198.18.10.10/32</b>")
	var js struct{ BGP *BGP }
	if err := json.Unmarshal([]byte(get("/stats.json")), &js); err != nil || js.BGP == nil || len(js.BGP.Sessions) != 2 {
		t.Errorf("stats.json bgp: %+v %v", js.BGP, err)
	}
	// Without BGP the page has no section and the metrics no series.
	plain := NewServer(zaptest.NewLogger(t), newFakeSource(), nil, Options{}).Handler()
	rec := httptest.NewRecorder()
	plain.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if strings.Contains(rec.Body.String(), `id="bgp"`) {
		t.Errorf("BGP section without BGP")
	}
}
