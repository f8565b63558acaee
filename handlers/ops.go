package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// pinger is what readiness needs from Redis.
type pinger interface {
	Ping(ctx context.Context) error
}

type statusResponse struct {
	Status string `json:"status"`
	Redis  string `json:"redis,omitempty"`
}

// readyTimeout keeps a probe from hanging on a Redis that does not answer.
const readyTimeout = time.Second

// handleLive answers while the process serves; it never asks Redis, so a
// Redis outage never gets healthy gateways restarted.
func handleLive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statusResponse{Status: "ok"})
	})
}

// handleReady answers 503 from the moment shutdown begins, so load balancers
// stop sending traffic first. Otherwise it answers 200 while Redis answers
// PING; with withoutRedis it answers 200 whatever Redis does, "degraded" with
// the reason when Redis does not answer, so a Redis outage leaves the gateway
// in its load balancer to answer 503 with Retry-After itself.
func handleReady(p pinger, draining func() bool, withoutRedis bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining() {
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusServiceUnavailable, statusResponse{Status: "draining"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := p.Ping(ctx); err != nil {
			if withoutRedis {
				writeJSON(w, http.StatusOK, statusResponse{Status: "degraded", Redis: err.Error()})
				return
			}
			writeJSON(w, http.StatusServiceUnavailable, statusResponse{Status: "unavailable", Redis: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, statusResponse{Status: "ready", Redis: "ok"})
	})
}

func handleMetrics(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

func handleOpenAPI(spec []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(spec)
	})
}
