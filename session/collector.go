package session

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sandlot/sandlot/quota"
)

// liveCollector reads the shared counts from Redis when /metrics is scraped.
type liveCollector struct {
	store                       Store
	quota                       *quota.Quota
	sessions, running, capacity *prometheus.Desc
}

func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessions
	ch <- c.running
	ch <- c.capacity
}

func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if ids, err := c.store.Live(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(len(ids)))
	}
	if u, err := c.quota.Usage(ctx, "", ""); err == nil {
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(u.Running))
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(u.Capacity))
	}
}
