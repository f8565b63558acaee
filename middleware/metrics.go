package middleware

import (
	"net/http"
	"strconv"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics records RED metrics per route pattern: requests by method, route
// and status, and their duration.
func Metrics(reg prometheus.Registerer) func(http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "redis_gateway",
		Name:      "http_requests_total",
		Help:      "HTTP requests by method, route pattern and status.",
	}, []string{"method", "route", "status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "redis_gateway",
		Name:      "http_request_duration_seconds",
		Help:      "Time to answer HTTP requests, by method and route pattern.",
		Buckets:   []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"method", "route"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "redis_gateway",
		Name:      "http_requests_in_flight",
		Help:      "HTTP requests being served.",
	})
	reg.MustRegister(requests, duration, inFlight)

	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			inFlight.Inc()
			defer inFlight.Dec()
			ww, ok := w.(chimw.WrapResponseWriter)
			if !ok {
				ww = chimw.NewWrapResponseWriter(w, r.ProtoMajor)
			}
			next.ServeHTTP(ww, r)

			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			method, route := methodLabel(r.Method), routePattern(r)
			requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
			duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
		})
	}
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
