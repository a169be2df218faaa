package admin

import (
	"runtime"
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// collector turns the Source's views into Prometheus metrics at scrape time.
type collector struct {
	src Source

	up, buildInfo, reloadOK, reloadTime, startTime *prometheus.Desc

	svcUp, svcActive, svcTotal, svcRequests, svcBytes, svcQueue, svcRefused, svcErrors, svcBackendsUp *prometheus.Desc

	beUp, beState, beWeight, beActive, beTotal, beBytes, checkDur, checkFail *prometheus.Desc

	vState, vPrio, vPrioCfg, vTrans, vSent, vRecv, vDropped *prometheus.Desc

	bgp bgpMetrics // bgp.go
	tls tlsMetrics // tls.go
}

func newCollector(src Source) *collector {
	d := prometheus.NewDesc
	svc := []string{"service"}
	be := []string{"service", "backend"}
	vr := []string{"vrrp_instance", "interface", "vrid"}
	return &collector{
		src:        src,
		up:         d("halb_up", "1 while the halb daemon answers.", nil, nil),
		buildInfo:  d("halb_build_info", "Build information; the value is 1.", []string{"version", "goversion"}, nil),
		reloadOK:   d("halb_config_last_reload_success", "1 if the last configuration reload succeeded (or none was tried), 0 if the file was refused.", nil, nil),
		reloadTime: d("halb_config_last_reload_timestamp_seconds", "Unix time of the last reload attempt (0: none).", nil, nil),
		startTime:  d("halb_start_time_seconds", "Unix time the daemon started.", nil, nil),

		svcUp:         d("halb_service_up", "1 if the service has its quorum of backends up.", svc, nil),
		svcActive:     d("halb_service_connections_active", "Client connections open on the service.", svc, nil),
		svcTotal:      d("halb_service_connections_total", "Client connections accepted by the service.", svc, nil),
		svcRequests:   d("halb_service_requests_total", "HTTP responses by status class.", []string{"service", "class"}, nil),
		svcBytes:      d("halb_service_bytes_total", "Bytes from clients (in) and to clients (out).", []string{"service", "direction"}, nil),
		svcQueue:      d("halb_service_queue_length", "Connections waiting for a free backend slot.", svc, nil),
		svcRefused:    d("halb_service_connections_refused_total", "Connections refused (maxconn, queue full, no backend).", svc, nil),
		svcErrors:     d("halb_service_errors_total", "Proxy errors (backend connect/read failures, timeouts).", svc, nil),
		svcBackendsUp: d("halb_service_backends_up", "Backends of the service in state up.", svc, nil),

		beUp:      d("halb_backend_up", "1 if the backend is up (healthy and enabled).", be, nil),
		beState:   d("halb_backend_state", "Backend state, one-hot: up, down, drain, maint.", []string{"service", "backend", "state"}, nil),
		beWeight:  d("halb_backend_weight", "Current weight of the backend.", be, nil),
		beActive:  d("halb_backend_connections_active", "Connections open to the backend.", be, nil),
		beTotal:   d("halb_backend_connections_total", "Connections made to the backend.", be, nil),
		beBytes:   d("halb_backend_bytes_total", "Bytes to (in) and from (out) the backend's clients.", []string{"service", "backend", "direction"}, nil),
		checkDur:  d("halb_check_duration_seconds", "Duration of the backend's last health check.", be, nil),
		checkFail: d("halb_check_failures_total", "Failed health checks by reason.", []string{"service", "backend", "reason"}, nil),

		vState:   d("halb_vrrp_state", "VRRP instance state, one-hot: init, backup, master, fault.", append(vr[:3:3], "state"), nil),
		vPrio:    d("halb_vrrp_priority_effective", "Effective VRRP priority (configured plus tracking).", vr, nil),
		vPrioCfg: d("halb_vrrp_priority", "Configured VRRP priority.", vr, nil),
		vTrans:   d("halb_vrrp_transitions_total", "VRRP state transitions.", vr, nil),
		vSent:    d("halb_vrrp_adverts_sent_total", "VRRP adverts sent.", vr, nil),
		vRecv:    d("halb_vrrp_adverts_received_total", "VRRP adverts received and accepted.", vr, nil),
		vDropped: d("halb_vrrp_adverts_dropped_total", "VRRP adverts dropped, by reason.", append(vr[:3:3], "reason"), nil),
		bgp:      newBGPMetrics(),
		tls:      newTLSMetrics(),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.up, c.buildInfo, c.reloadOK, c.reloadTime, c.startTime,
		c.svcUp, c.svcActive, c.svcTotal, c.svcRequests, c.svcBytes, c.svcQueue, c.svcRefused, c.svcErrors, c.svcBackendsUp,
		c.beUp, c.beState, c.beWeight, c.beActive, c.beTotal, c.beBytes, c.checkDur, c.checkFail,
		c.vState, c.vPrio, c.vPrioCfg, c.vTrans, c.vSent, c.vRecv, c.vDropped,
	} {
		ch <- d
	}
	c.bgp.describe(ch)
	c.tls.describe(ch)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t interface{ UnixNano() int64 }, zero bool) float64 {
	if zero {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	g, ctr := prometheus.GaugeValue, prometheus.CounterValue
	m := func(d *prometheus.Desc, t prometheus.ValueType, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, l...)
	}
	info := c.src.Info()
	goVersion := info.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	m(c.up, g, 1)
	m(c.buildInfo, g, 1, info.Version, goVersion)
	m(c.reloadOK, g, b2f(info.LastReload.At.IsZero() || info.LastReload.OK))
	m(c.reloadTime, g, unixSeconds(info.LastReload.At, info.LastReload.At.IsZero()))
	if !info.StartedAt.IsZero() {
		m(c.startTime, g, unixSeconds(info.StartedAt, false))
	}

	seenSvc := map[string]bool{}
	for _, s := range c.src.Services() {
		if seenSvc[s.Name] {
			continue // a duplicate name would fail the whole scrape
		}
		seenSvc[s.Name] = true
		m(c.svcUp, g, b2f(s.State == StateUp), s.Name)
		m(c.svcActive, g, float64(s.Active), s.Name)
		m(c.svcTotal, ctr, float64(s.Total), s.Name)
		for i, n := range s.Requests {
			m(c.svcRequests, ctr, float64(n), s.Name, strconv.Itoa(i+1)+"xx")
		}
		m(c.svcBytes, ctr, float64(s.BytesIn), s.Name, "in")
		m(c.svcBytes, ctr, float64(s.BytesOut), s.Name, "out")
		m(c.svcQueue, g, float64(s.Queued), s.Name)
		m(c.svcRefused, ctr, float64(s.Refused), s.Name)
		m(c.svcErrors, ctr, float64(s.Errors), s.Name)
		up := 0
		seenBe := map[string]bool{}
		for _, b := range s.Backends {
			if seenBe[b.Name] {
				continue
			}
			seenBe[b.Name] = true
			if b.State == StateUp {
				up++
			}
			m(c.beUp, g, b2f(b.State == StateUp), s.Name, b.Name)
			for _, st := range [...]string{StateUp, StateDown, StateDrain, StateMaint} {
				m(c.beState, g, b2f(b.State == st), s.Name, b.Name, st)
			}
			m(c.beWeight, g, float64(b.Weight), s.Name, b.Name)
			m(c.beActive, g, float64(b.Active), s.Name, b.Name)
			m(c.beTotal, ctr, float64(b.Total), s.Name, b.Name)
			m(c.beBytes, ctr, float64(b.BytesIn), s.Name, b.Name, "in")
			m(c.beBytes, ctr, float64(b.BytesOut), s.Name, b.Name, "out")
			if !b.LastCheck.At.IsZero() {
				m(c.checkDur, g, b.LastCheck.Duration.Seconds(), s.Name, b.Name)
			}
			for _, r := range sortedKeys(b.CheckFailures) {
				m(c.checkFail, ctr, float64(b.CheckFailures[r]), s.Name, b.Name, r)
			}
		}
		m(c.svcBackendsUp, g, float64(up), s.Name)
	}

	seenV := map[string]bool{}
	for _, v := range c.src.VRRP() {
		if seenV[v.Name] {
			continue
		}
		seenV[v.Name] = true
		l := []string{v.Name, v.Interface, strconv.Itoa(v.VRID)}
		for _, st := range [...]string{"init", "backup", "master", "fault"} {
			m(c.vState, g, b2f(v.State == st), append(l[:3:3], st)...)
		}
		m(c.vPrio, g, float64(v.EffectivePriority), l...)
		m(c.vPrioCfg, g, float64(v.Priority), l...)
		m(c.vTrans, ctr, float64(v.Transitions), l...)
		m(c.vSent, ctr, float64(v.AdvertsSent), l...)
		m(c.vRecv, ctr, float64(v.AdvertsReceived), l...)
		for _, r := range sortedKeys(v.Dropped) {
			m(c.vDropped, ctr, float64(v.Dropped[r]), append(l[:3:3], r)...)
		}
	}
	c.bgp.collect(c.src, ch)
	c.tls.collect(c.src, ch)
}

func sortedKeys(m map[string]uint64) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
