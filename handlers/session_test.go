package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"
)

func TestSessionLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		// Numbers keep every digit; [] and {} stay apart.
		const doc = `{"user":12345678901234567890,"ratio":0.1,"roles":[],"prefs":{}}`

		created := g.must(request{method: "POST", path: "/session", body: doc}, http.StatusCreated)
		var c struct {
			ID  string `json:"id"`
			TTL int64  `json:"ttl"`
		}
		if err := json.Unmarshal([]byte(created.body), &c); err != nil {
			t.Fatalf("POST /session: %v in %s", err, created.body)
		}
		// 26 base32 characters carry 130 random bits.
		if !regexp.MustCompile(`^[A-Z2-7]{26}$`).MatchString(c.ID) {
			t.Errorf("POST /session: id %q is not 26 URL-safe base32 characters (130 bits)", c.ID)
		}
		if c.TTL != 1800 {
			t.Errorf("POST /session: ttl = %d, want SESSION_TTL 1800", c.TTL)
		}
		if loc := created.header.Get("Location"); loc != "/session/"+c.ID {
			t.Errorf("POST /session: Location = %q, want /session/%s", loc, c.ID)
		}

		got := g.must(request{method: "GET", path: "/session/" + c.ID}, http.StatusOK)
		if got.body != doc {
			t.Errorf("GET /session/{id} = %s, want %s", got.body, doc)
		}
		if cc := got.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET /session/{id}: Cache-Control = %q, want no-store", cc)
		}

		g.must(request{method: "PUT", path: "/session/mine?ttl=100", body: `{"a":1}`}, http.StatusCreated)
		g.must(request{method: "PUT", path: "/session/mine?ttl=100", body: `{"a":2}`}, http.StatusNoContent)
		if got := g.must(request{method: "GET", path: "/session/mine"}, http.StatusOK).body; got != `{"a":2}` {
			t.Errorf("GET /session/mine after PUT = %s, want {\"a\":2}", got)
		}
		if d := b.rdb.PTTL(ctx, "session:mine").Val(); d <= 99*time.Second || d > 100*time.Second {
			t.Errorf("a session PUT with ttl=100 has PTTL %v after a read, want its own TTL (100s)", d)
		}

		g.must(request{method: "DELETE", path: "/session/mine"}, http.StatusNoContent)
		g.must(request{method: "GET", path: "/session/mine"}, http.StatusNotFound)
		g.must(request{method: "DELETE", path: "/session/mine"}, http.StatusNotFound)

		g.must(request{method: "PUT", path: "/session/brief?ttl=1", body: `{}`}, http.StatusCreated)
		b.elapse(1100 * time.Millisecond)
		g.must(request{method: "GET", path: "/session/brief"}, http.StatusNotFound)
	})
}

// Reading a session slides its expiry back to the session's own TTL, unless
// the read says touch=false.
func TestSessionSlidingExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		pttl := func() time.Duration { return b.rdb.PTTL(ctx, "session:s").Val() }

		g.must(request{method: "PUT", path: "/session/s?ttl=3", body: `{"n":1}`}, http.StatusCreated)
		b.elapse(1200 * time.Millisecond)
		g.must(request{method: "GET", path: "/session/s?touch=false"}, http.StatusOK)
		if d := pttl(); d > 2*time.Second {
			t.Errorf("after GET ?touch=false: PTTL = %v, want the expiry untouched (< 2s)", d)
		}
		g.must(request{method: "GET", path: "/session/s"}, http.StatusOK)
		if d := pttl(); d <= 2800*time.Millisecond {
			t.Errorf("after GET: PTTL = %v, want it slid back to the session's 3s", d)
		}
		b.elapse(2200 * time.Millisecond)
		g.must(request{method: "GET", path: "/session/s?touch=true"}, http.StatusOK) // alive only because it slid
	})
}
