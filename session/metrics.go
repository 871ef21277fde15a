package session

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sandlot/sandlot/quota"
)

// Metrics are what /metrics shows of sessions. Each server has its own registry.
type Metrics struct {
	Registry        *prometheus.Registry
	sessionsCreated prometheus.Counter
	sessionsEnded   *prometheus.CounterVec
	rejections      *prometheus.CounterVec
	createSeconds   *prometheus.HistogramVec
	setupSeconds    *prometheus.HistogramVec
	instanceSeconds prometheus.Histogram
	reaperLag       prometheus.Histogram
	quotaSeconds    prometheus.Histogram
}

// NewMetrics registers the session metrics, and gauges read from Redis at scrape time, in reg (others, such as the
// image cache's, may be there too); nil: a registry of their own.
func NewMetrics(reg *prometheus.Registry, store Store, q *quota.Quota) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	buckets := []float64{0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30}
	m := &Metrics{
		Registry: reg,
		sessionsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandlot_sessions_created_total", Help: "Sessions created by this process."}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandlot_sessions_ended_total", Help: "Sessions this process ended, by end reason."}, []string{"reason"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandlot_quota_rejections_total", Help: "Requests refused by quota, by code."}, []string{"code"}),
		createSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sandlot_session_create_seconds", Help: "Session creation, template setup included.", Buckets: buckets},
			[]string{"template"}),
		setupSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sandlot_template_setup_seconds", Help: "Template setup: nodes made and swarm formed.", Buckets: buckets},
			[]string{"template"}),
		instanceSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sandlot_instance_create_seconds", Help: "One node, from request to its engine answering.", Buckets: buckets}),
		reaperLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sandlot_reaper_lag_seconds", Help: "How late expired sessions were ended after their deadline.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 60}}),
		quotaSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sandlot_quota_check_seconds", Help: "Admission of a new session by quota (one Redis script).",
			Buckets: []float64{0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05}}),
	}
	m.Registry.MustRegister(m.quotaSeconds, m.sessionsCreated, m.sessionsEnded, m.rejections, m.createSeconds, m.setupSeconds,
		m.instanceSeconds, m.reaperLag, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if store != nil && q != nil {
		m.Registry.MustRegister(&liveCollector{store: store, quota: q,
			sessions: prometheus.NewDesc("sandlot_sessions_live", "Sessions not ended, across all processes.", nil, nil),
			running:  prometheus.NewDesc("sandlot_instances_reserved", "Nodes reserved or running, across all processes.", nil, nil),
			capacity: prometheus.NewDesc("sandlot_instances_capacity", "Nodes this host may run at once.", nil, nil)})
	}
	return m
}

func (m *Metrics) rejected(err error) {
	var r *quota.Rejection
	if errors.As(err, &r) {
		m.rejections.WithLabelValues(r.Code).Inc()
	}
}
