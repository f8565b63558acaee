package middleware

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// routeMetrics records RED metrics per route pattern: requests by method,
// route and status, and their duration.
type routeMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	series   seriesCache[routeKey, routeSeries]
}

type routeKey struct {
	method, route string
	status        int
}

// routeSeries are the children of the vectors for one routeKey: looked up
// once, not by label values on every request.
type routeSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newRouteMetrics(reg prometheus.Registerer) *routeMetrics {
	m := &routeMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "redis_gateway",
			Name:      "http_requests_total",
			Help:      "HTTP requests by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "redis_gateway",
			Name:      "http_request_duration_seconds",
			Help:      "Time to answer HTTP requests, by method and route pattern.",
			Buckets:   []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "redis_gateway",
			Name:      "http_requests_in_flight",
			Help:      "HTTP requests being served.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight)
	return m
}

func (m *routeMetrics) observe(method, route string, status int, d time.Duration) {
	s := m.series.get(routeKey{method, route, status}, func(k routeKey) routeSeries {
		return routeSeries{
			requests: m.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.status)),
			duration: m.duration.WithLabelValues(k.method, k.route),
		}
	})
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
}

// seriesCache maps label values to the metric children made for them. Reads
// take no lock: the map is replaced, never changed, and the label values are
// bounded (methods, route patterns, statuses, token names), so it settles
// after a few requests of each kind.
type seriesCache[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex // serializes the writers
}

func (c *seriesCache[K, V]) get(k K, newV func(K) V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[K]V
	if m := c.m.Load(); m != nil {
		old = *m
	}
	if v, ok := old[k]; ok {
		return v
	}
	next := maps.Clone(old)
	if next == nil {
		next = map[K]V{}
	}
	v := newV(k)
	next[k] = v
	c.m.Store(&next)
	return v
}

// methodLabel folds methods nobody routes into one label value, so a client
// cannot grow the metric's cardinality.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
