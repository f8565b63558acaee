package middleware

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis-gateway/redis-gateway/internal/series"
)

// routeMetrics records RED metrics per route pattern: requests by method,
// route and status, and their duration.
type routeMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	series   series.Cache[routeKey, routeSeries]
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
	s := m.series.Get(routeKey{method, route, status}, func(k routeKey) routeSeries {
		return routeSeries{
			requests: m.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.status)),
			duration: m.duration.WithLabelValues(k.method, k.route),
		}
	})
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
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
