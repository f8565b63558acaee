package handlers_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
	"github.com/redis-gateway/redis-gateway/store"
)

// BenchmarkCacheHerd measures the thundering herd: how many callers
// recompute a hot key when it expires, with and without leases. Each
// iteration removes the key (as its TTL would) and lets 64 concurrent
// callers, spread over two gateways on one redis-server, each read it the
// way a cache-aside client does: on a miss, compute (20 ms) and PUT. With
// leases a read is GET ?lease=1: the one caller granted the lease computes
// and fills, the others wait for the fill. It reports recomputations per
// expiry:
//
//	go test ./handlers -run '^$' -bench CacheHerd -benchtime 20x
func BenchmarkCacheHerd(b *testing.B) {
	srv := redistest.Start(b)
	urls := []string{herdGateway(b, srv.URL()), herdGateway(b, srv.URL())}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	call := func(method, url, body, lease string) (int, string, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		if lease != "" {
			req.Header.Set("Cache-Lease", lease)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Cache-Lease"), nil
	}
	const callers = 64
	const compute = 20 * time.Millisecond
	const value = `{"report":"expensive"}`
	for _, leased := range []bool{false, true} {
		name := "plain"
		if leased {
			name = "lease"
		}
		b.Run(name, func(b *testing.B) {
			var recomputes atomic.Int64
			read := func(base string) error {
				get := base + "/cache/herd"
				if leased {
					get += "?lease=1"
				}
				for {
					status, token, err := call("GET", get, "", "")
					if err != nil || status == http.StatusOK {
						return err
					}
					if leased && token == "" {
						continue // the wait ended before a fill: ask again
					}
					recomputes.Add(1)
					time.Sleep(compute)
					_, _, err = call("PUT", base+"/cache/herd", value, token)
					return err
				}
			}
			for range b.N {
				if _, _, err := call("DELETE", urls[0]+"/cache/herd", "", ""); err != nil {
					b.Fatal(err)
				}
				var wg sync.WaitGroup
				for i := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := read(urls[i%2]); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(recomputes.Load())/float64(b.N), "recomputes/expiry")
		})
	}
}

// herdGateway serves the routes on redisURL over HTTP and returns its URL.
func herdGateway(b *testing.B, redisURL string) string {
	b.Helper()
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	st, err := store.New(store.Options{URL: redisURL, Logger: logger, Registry: reg})
	if err != nil {
		b.Fatalf("store.New: %v", err)
	}
	b.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(handlers.New(handlers.Config{
		Store:          st,
		Logger:         logger,
		Registry:       reg,
		TokenSet:       staticTokens(testToken),
		MaxBodyBytes:   1 << 20,
		RequestTimeout: 5 * time.Second,
		TTLs:           handlers.TTLs{CacheDefault: time.Hour, Session: 30 * time.Minute, Max: 30 * 24 * time.Hour},
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}
