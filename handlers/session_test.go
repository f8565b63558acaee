package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/handlers"
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
		if d := b.rdb.PTTL(ctx, "session:mine").Val(); d <= 90*time.Second || d > 100*time.Second {
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
	forEachClock(t, func(t *testing.T, b backend) {
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

func mergePatchHeader() map[string]string {
	return map[string]string{"Content-Type": "application/merge-patch+json"}
}

func TestSessionPatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		ctx := context.Background()
		g.must(request{method: "PUT", path: "/session/p?ttl=100",
			body: `{"id": 12345678901234567890, "ratio": 0.1, "roles": [], "prefs": {}, "theme": "light"}`}, http.StatusCreated)
		b.elapse(1100 * time.Millisecond)

		const patch = `{"theme":"dark","prefs":{"lang":"fr"},"roles":null,"tags":[],"big":-98765432109876543210.5e-3}`
		const want = `{"id":12345678901234567890,"ratio":0.1,"prefs":{"lang":"fr"},"theme":"dark","tags":[],"big":-98765432109876543210.5e-3}`
		resp := g.must(request{method: "PATCH", path: "/session/p", body: patch, header: mergePatchHeader()}, http.StatusOK)
		if resp.body != want {
			t.Errorf("PATCH /session/p = %s, want %s", resp.body, want)
		}
		if resp.header.Get("Cache-Control") != "no-store" || resp.header.Get("Content-Type") != "application/json" {
			t.Errorf("PATCH /session/p: Cache-Control %q, Content-Type %q", resp.header.Get("Cache-Control"), resp.header.Get("Content-Type"))
		}
		if got := g.must(request{method: "GET", path: "/session/p?touch=false"}, http.StatusOK).body; got != want {
			t.Errorf("GET after PATCH = %s, want %s", got, want)
		}
		if d := b.rdb.PTTL(ctx, "session:p").Val(); d <= 90*time.Second {
			t.Errorf("after PATCH: PTTL = %v, want the session's own 100s restored", d)
		}

		// application/json is accepted too; an empty patch changes nothing.
		if got := g.must(request{method: "PATCH", path: "/session/p", body: `{}`}, http.StatusOK).body; got != want {
			t.Errorf("PATCH {} = %s, want the document unchanged", got)
		}
		// A PUT in between is what the next PATCH builds on.
		g.must(request{method: "PUT", path: "/session/p", body: `{"a":1}`}, http.StatusNoContent)
		if got := g.must(request{method: "PATCH", path: "/session/p", body: `{"b":2}`}, http.StatusOK).body; got != `{"a":1,"b":2}` {
			t.Errorf("PATCH after PUT = %s, want {\"a\":1,\"b\":2}", got)
		}

		// A session written before sessions had versions.
		b.rdb.HSet(ctx, "session:old", "doc", `{"x":[]}`, "ttl", "60")
		if got := g.must(request{method: "PATCH", path: "/session/old", body: `{"y":{}}`}, http.StatusOK).body; got != `{"x":[],"y":{}}` {
			t.Errorf("PATCH of a session without a version = %s", got)
		}

		g.must(request{method: "PATCH", path: "/session/missing", body: `{"a":1}`}, http.StatusNotFound)
		for _, bad := range []string{`[{"op":"add"}]`, `null`, `"x"`, `1`, `{"a":`} {
			g.must(request{method: "PATCH", path: "/session/p", body: bad}, http.StatusBadRequest)
		}
		g.must(request{method: "PATCH", path: "/session/p", body: `[]`,
			header: map[string]string{"Content-Type": "application/json-patch+json"}}, http.StatusUnsupportedMediaType)
		g.must(request{method: "PATCH", path: "/session/p", body: `{}`,
			header: map[string]string{"Content-Type": "text/plain"}}, http.StatusUnsupportedMediaType)

		// The merged document is held to the body limit (4 KiB here), and a
		// refused patch changes nothing.
		big := `{"s":"` + strings.Repeat("x", 3000) + `"}`
		g.must(request{method: "PUT", path: "/session/big", body: big}, http.StatusCreated)
		g.must(request{method: "PATCH", path: "/session/big", body: `{"t":"` + strings.Repeat("y", 2000) + `"}`}, http.StatusRequestEntityTooLarge)
		if got := g.must(request{method: "GET", path: "/session/big"}, http.StatusOK).body; got != big {
			t.Errorf("a refused PATCH changed the session")
		}
	})
}

// Concurrent patches of different members all survive, through four gateway
// replicas (whose writes only the version check keeps apart), and the numbers
// already there keep every digit.
func TestSessionPatchConcurrent(t *testing.T) {
	forEachServer(t, testSessionPatchConcurrent)
}

func testSessionPatchConcurrent(t *testing.T, b backend) {
	// 100 patches of one session retry each other's conflicts: on a busy
	// machine, under the race detector, that takes seconds. The test is about
	// lost updates, not latency; the request timeout stays out of the way.
	patient := withConfig(func(c *handlers.Config) { c.RequestTimeout = time.Minute })
	replicas := []*gateway{startGateway(t, b, patient), startGateway(t, b, patient), startGateway(t, b, patient), startGateway(t, b, patient)}
	const start = `{"id":12345678901234567890,"ratio":0.1,"roles":[],"prefs":{}}`
	replicas[0].must(request{method: "PUT", path: "/session/c", body: start}, http.StatusCreated)

	const patches = 100
	var wg sync.WaitGroup
	for i := range patches {
		wg.Go(func() {
			g := replicas[i%len(replicas)]
			body := fmt.Sprintf(`{"f%d":%d,"prefs":{"p%d":0.%d}}`, i, i, i, i)
			resp, err := g.call(request{method: "PATCH", path: "/session/c", body: body, header: mergePatchHeader()})
			if err != nil {
				t.Error(err)
				return
			}
			if resp.status != http.StatusOK {
				t.Errorf("PATCH %s: status = %d, want 200; body %s", body, resp.status, resp.body)
			}
		})
	}
	wg.Wait()

	got := replicas[1].must(request{method: "GET", path: "/session/c"}, http.StatusOK).body
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatalf("GET /session/c: %v in %s", err, got)
	}
	var prefs map[string]json.RawMessage
	if err := json.Unmarshal(doc["prefs"], &prefs); err != nil {
		t.Fatalf("prefs: %v in %s", err, doc["prefs"])
	}
	for i := range patches {
		if v := string(doc[fmt.Sprintf("f%d", i)]); v != fmt.Sprint(i) {
			t.Errorf("member f%d = %q after %d concurrent patches, want %d: a patch was lost", i, v, patches, i)
		}
		if v := string(prefs[fmt.Sprintf("p%d", i)]); v != fmt.Sprintf("0.%d", i) {
			t.Errorf("prefs.p%d = %q, want 0.%d: a nested merge was lost", i, v, i)
		}
	}
	if string(doc["id"]) != "12345678901234567890" || string(doc["ratio"]) != "0.1" || string(doc["roles"]) != "[]" {
		t.Errorf("the untouched members changed: id %s, ratio %s, roles %s", doc["id"], doc["ratio"], doc["roles"])
	}
}
