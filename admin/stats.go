package admin

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

//go:embed stats.html.tmpl
var statsTemplateText string

func newStatsTemplate() *template.Template {
	return template.Must(template.New("stats").Funcs(template.FuncMap{
		"num":   fmtNum,
		"bytes": fmtBytes,
		"dur":   fmtDur,
	}).Parse(statsTemplateText))
}

type statsPage struct {
	Info     Info
	Now      time.Time
	Refresh  int
	Uptime   string
	Reload   string
	ReloadOK bool
	VRRP     []vrrpRow
	Services []serviceView
	BGP      *bgpSection // bgp.go; nil without BGP
}

type vrrpRow struct {
	VRRPInstance
	Class      string
	Tracking   string
	Transition string
	Dropped    uint64
}

type serviceView struct {
	Service
	Class    string
	Up       int
	Rows     []backendRow
	Classes  [5]string
	ReqTotal uint64
}

type backendRow struct {
	Backend
	Class   string
	InState string
	Check   string
	CheckAt string
	Flags   string
}

func (s *Server) page() statsPage {
	now := s.o.Now()
	info := s.src.Info()
	p := statsPage{Info: info, Now: now, Refresh: int(s.o.Refresh / time.Second), ReloadOK: true}
	if p.Refresh < 1 {
		p.Refresh = 1
	}
	switch {
	case !info.StartedAt.IsZero():
		p.Uptime = fmtDur(now.Sub(info.StartedAt))
	default:
		p.Uptime = fmtDur(info.Uptime)
	}
	switch r := info.LastReload; {
	case r.At.IsZero():
		p.Reload = "none since start"
	case r.OK:
		p.Reload = "ok, " + fmtDur(now.Sub(r.At)) + " ago"
	default:
		p.ReloadOK = false
		p.Reload = "FAILED " + fmtDur(now.Sub(r.At)) + " ago: " + r.Error
	}
	for _, v := range s.src.VRRP() {
		row := vrrpRow{VRRPInstance: v, Class: "vrrp-" + cssWord(v.State)}
		var tr []string
		for _, c := range v.Contributions {
			t := fmt.Sprintf("%s %+d", c.Name, c.Weight)
			if c.Fault {
				t += " FAULT"
				if c.Reason != "" {
					t += " (" + c.Reason + ")"
				}
			}
			tr = append(tr, t)
		}
		row.Tracking = strings.Join(tr, ", ")
		if lt := v.LastTransition; !lt.At.IsZero() {
			row.Transition = fmt.Sprintf("%s → %s, %s ago", lt.From, lt.To, fmtDur(now.Sub(lt.At)))
			if lt.Cause != "" {
				row.Transition += " (" + lt.Cause + ")"
			}
		}
		for _, n := range v.Dropped {
			row.Dropped += n
		}
		p.VRRP = append(p.VRRP, row)
	}
	p.BGP = s.bgpSection(p.Now)
	for _, sv := range s.src.Services() {
		v := serviceView{Service: sv, Class: "svc-" + cssWord(sv.State)}
		for i := range v.Classes {
			v.Classes[i] = strconv.Itoa(i+1) + "xx"
			v.ReqTotal += sv.Requests[i]
		}
		for _, b := range sv.Backends {
			r := backendRow{Backend: b, Class: "state-" + cssWord(b.State)}
			if b.Backup || b.Sorry {
				r.Class += " backup"
			}
			var flags []string
			if b.Backup {
				flags = append(flags, "backup")
			}
			if b.Sorry {
				flags = append(flags, "sorry")
			}
			r.Flags = strings.Join(flags, " ")
			if b.State == StateUp {
				v.Up++
			}
			if !b.Since.IsZero() {
				r.InState = fmtDur(now.Sub(b.Since))
			}
			r.Check, r.CheckAt = checkText(b.LastCheck, now)
			v.Rows = append(v.Rows, r)
		}
		p.Services = append(p.Services, v)
	}
	return p
}

// checkText renders a last check as "OK"/"FAIL reason" and "12s ago".
func checkText(c Check, now time.Time) (verdict, ago string) {
	if c.At.IsZero() {
		return "-", ""
	}
	verdict = "OK"
	if !c.OK {
		verdict = "FAIL"
	}
	if c.Reason != "" {
		verdict += " " + c.Reason
	}
	if c.Duration > 0 {
		verdict += " (" + fmtDur(c.Duration) + ")"
	}
	return verdict, fmtDur(now.Sub(c.At)) + " ago"
}

// cssWord keeps a state usable as a CSS class suffix.
func cssWord(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

func (s *Server) serveStats(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if err := s.tmpl.Execute(&buf, s.page()); err != nil {
		s.log.Error("render stats page", zap.Error(err))
		http.Error(w, "admin: render stats page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) serveStatsJSON(w http.ResponseWriter, _ *http.Request) {
	v := struct {
		Info     Info           `json:"info"`
		Services []Service      `json:"services"`
		VRRP     []VRRPInstance `json:"vrrp"`
		BGP      *BGP           `json:"bgp,omitempty"`
	}{s.src.Info(), nonNil(s.src.Services()), nonNil(s.src.VRRP()), nil}
	if b, ok := s.bgpView(); ok {
		v.BGP = &b
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// fmtNum writes an integer with thousands separators: 1234567 -> 1,234,567.
func fmtNum(v any) string {
	var s string
	switch n := v.(type) {
	case int:
		s = strconv.FormatInt(int64(n), 10)
	case int64:
		s = strconv.FormatInt(n, 10)
	case uint64:
		s = strconv.FormatUint(n, 10)
	default:
		return fmt.Sprint(v)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtBytes renders a byte count in binary units: 1536 -> 1.5 KiB.
func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// fmtDur renders a duration compactly: 3d4h, 2h5m, 4m12s, 7s, 120ms.
func fmtDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}
