package admin

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BGP is the view of the BGP speaker for `show bgp`, metrics and the stats page.
type BGP struct {
	RouterID  string        `json:"router_id"`
	LocalAS   uint32        `json:"local_as"`
	Interface string        `json:"vip_interface"` // where the announced VIPs are local
	Stopping  bool          `json:"stopping"`      // withdrawn for a graceful stop
	LastError string        `json:"last_error,omitempty"`
	Sessions  []BGPSession  `json:"sessions"`
	Announced []BGPAnnounce `json:"announced"`
}

// BGPSession is one neighbor.
type BGPSession struct {
	Neighbor    string    `json:"neighbor"`
	RemoteAS    uint32    `json:"remote_as"`
	State       string    `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Up          bool      `json:"up"`
	Since       time.Time `json:"since"`
	Flaps       uint32    `json:"flaps"`
	Received    int       `json:"received"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// BGPAnnounce is one announced prefix.
type BGPAnnounce struct {
	Prefix      string   `json:"prefix"`
	Communities []string `json:"communities,omitempty"`
	MED         *uint32  `json:"med,omitempty"`
	Prepend     int      `json:"as_path_prepend,omitempty"`
}

// BGPSource is implemented by a Source whose daemon runs BGP. ok is false when no bgp block is
// configured.
type BGPSource interface {
	BGP() (view BGP, ok bool)
}

// ServiceDrainer is implemented by a Controller that can withdraw a service's announcement
// (`drain service`) and restore it (`enable service`).
type ServiceDrainer interface {
	SetServiceDrain(service string, drain bool) error
}

func (s *Server) bgpView() (BGP, bool) {
	bs, ok := s.src.(BGPSource)
	if !ok {
		return BGP{}, false
	}
	return bs.BGP()
}

func writeBGP(w io.Writer, v BGP, now time.Time) {
	state := ""
	if v.Stopping {
		state = " (stopping: everything withdrawn)"
	}
	fmt.Fprintf(w, "router id %s, local AS %d, VIPs on %s%s\n", v.RouterID, v.LocalAS, dash(v.Interface), state)
	if v.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", v.LastError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NEIGHBOR\tAS\tSTATE\tSINCE\tFLAPS\tRECEIVED\tLAST ERROR")
	for _, s := range v.Sessions {
		since := "-"
		if !s.Since.IsZero() {
			since = fmtDur(now.Sub(s.Since))
		}
		le := s.LastError
		if le != "" && !s.LastErrorAt.IsZero() {
			le += " (" + fmtDur(now.Sub(s.LastErrorAt)) + " ago)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%s\n", s.Neighbor, s.RemoteAS, strings.ToUpper(s.State), since, s.Flaps, s.Received, dash(le))
	}
	_ = tw.Flush()
	fmt.Fprintln(tw, "\nANNOUNCED\tCOMMUNITIES\tMED\tPREPEND")
	for _, a := range v.Announced {
		med := "-"
		if a.MED != nil {
			med = fmt.Sprint(*a.MED)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", a.Prefix, dash(strings.Join(a.Communities, " ")), med, a.Prepend)
	}
	_ = tw.Flush()
}

// bgpMetrics are the BGP series of /metrics.
type bgpMetrics struct {
	up, state, flaps, received, announced, prefix *prometheus.Desc
}

func newBGPMetrics() bgpMetrics {
	d := prometheus.NewDesc
	nb := []string{"neighbor", "remote_as"}
	return bgpMetrics{
		up:        d("halb_bgp_session_up", "1 if the BGP session with the neighbor is established.", nb, nil),
		state:     d("halb_bgp_session_state", "BGP session state, one-hot: idle, connect, active, opensent, openconfirm, established.", append(nb[:2:2], "state"), nil),
		flaps:     d("halb_bgp_session_flaps_total", "Times the BGP session went down after it was established.", nb, nil),
		received:  d("halb_bgp_prefixes_received", "Prefixes received from the neighbor.", nb, nil),
		announced: d("halb_bgp_announced_prefixes", "Prefixes halb announces now.", nil, nil),
		prefix:    d("halb_bgp_announced", "1 for each prefix halb announces now.", []string{"prefix"}, nil),
	}
}

func (b bgpMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{b.up, b.state, b.flaps, b.received, b.announced, b.prefix} {
		ch <- d
	}
}

func (b bgpMetrics) collect(src Source, ch chan<- prometheus.Metric) {
	bs, ok := src.(BGPSource)
	if !ok {
		return
	}
	v, ok := bs.BGP()
	if !ok {
		return
	}
	m := func(d *prometheus.Desc, t prometheus.ValueType, x float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, x, l...)
	}
	seen := map[string]bool{}
	for _, s := range v.Sessions {
		if seen[s.Neighbor] {
			continue
		}
		seen[s.Neighbor] = true
		l := []string{s.Neighbor, strconv.FormatUint(uint64(s.RemoteAS), 10)}
		m(b.up, prometheus.GaugeValue, b2f(s.Up), l...)
		for _, st := range [...]string{"idle", "connect", "active", "opensent", "openconfirm", "established"} {
			m(b.state, prometheus.GaugeValue, b2f(s.State == st), append(l[:2:2], st)...)
		}
		m(b.flaps, prometheus.CounterValue, float64(s.Flaps), l...)
		m(b.received, prometheus.GaugeValue, float64(s.Received), l...)
	}
	m(b.announced, prometheus.GaugeValue, float64(len(v.Announced)))
	seenP := map[string]bool{}
	for _, a := range v.Announced {
		if !seenP[a.Prefix] {
			seenP[a.Prefix] = true
			m(b.prefix, prometheus.GaugeValue, 1, a.Prefix)
		}
	}
}

type bgpSection struct {
	BGP
	Sessions  []bgpRow
	Announced []string
}

type bgpRow struct {
	BGPSession
	Class   string
	InState string
}

func (s *Server) bgpSection(now time.Time) *bgpSection {
	v, ok := s.bgpView()
	if !ok {
		return nil
	}
	sec := &bgpSection{BGP: v}
	for _, x := range v.Sessions {
		r := bgpRow{BGPSession: x, Class: "bgp-down", InState: "-"}
		if x.Up {
			r.Class = "bgp-up"
		}
		if !x.Since.IsZero() {
			r.InState = fmtDur(now.Sub(x.Since))
		}
		sec.Sessions = append(sec.Sessions, r)
	}
	for _, a := range v.Announced {
		sec.Announced = append(sec.Announced, a.Prefix)
	}
	return sec
}
