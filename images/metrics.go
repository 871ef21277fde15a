package images

import "github.com/prometheus/client_golang/prometheus"

// metrics are what /metrics shows of the cache.
type metrics struct {
	requests      *prometheus.CounterVec // by kind (manifest, blob) and result
	upstreamBytes prometheus.Counter
	upstreamPulls prometheus.Counter
}

// The results of a request to the front.
const (
	resultHit     = "hit"     // served from storage
	resultMiss    = "miss"    // fetched from the upstream for it
	resultWaited  = "waited"  // served from storage after another request's fetch of the same blob
	resultProxied = "proxied" // a manifest the pull-through cache answered (from the upstream, or its copy if that failed)
	resultOffline = "offline" // the pull-through cache failed or took too long; served from storage
	resultError   = "error"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandlot_image_cache_requests_total",
			Help: "Registry requests of nodes to the image cache, by kind (manifest, blob) and result (hit, miss, waited, proxied, offline, error)."},
			[]string{"kind", "result"}),
		upstreamBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandlot_image_cache_upstream_bytes_total",
			Help: "Bytes of blobs the image cache fetched from its upstream."}),
		upstreamPulls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandlot_image_cache_upstream_pulls_total",
			Help: "Blobs the image cache fetched from its upstream (each once, however many nodes wanted it)."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.upstreamBytes, m.upstreamPulls)
	}
	return m
}
