package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Certificate is one certificate a service terminates TLS with.
type Certificate struct {
	Service  string    `json:"service"`
	File     string    `json:"file"`
	Names    []string  `json:"names"`
	NotAfter time.Time `json:"not_after"`
	Stapled  bool      `json:"ocsp_stapled"`
}

// CertSource is implemented by a Source whose services terminate TLS.
type CertSource interface {
	Certificates() []Certificate
}

type tlsMetrics struct{ expiry *prometheus.Desc }

func newTLSMetrics() tlsMetrics {
	return tlsMetrics{expiry: prometheus.NewDesc("halb_tls_certificate_expiry_timestamp_seconds",
		"When the certificate expires (its NotAfter), as a Unix time: alert on it minus time().",
		[]string{"service", "file", "name"}, nil)}
}

func (t tlsMetrics) describe(ch chan<- *prometheus.Desc) { ch <- t.expiry }

func (t tlsMetrics) collect(src Source, ch chan<- prometheus.Metric) {
	cs, ok := src.(CertSource)
	if !ok {
		return
	}
	for _, c := range cs.Certificates() {
		name := ""
		if len(c.Names) > 0 {
			name = c.Names[0]
		}
		ch <- prometheus.MustNewConstMetric(t.expiry, prometheus.GaugeValue, float64(c.NotAfter.Unix()), c.Service, c.File, name)
	}
}
