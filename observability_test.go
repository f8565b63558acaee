package main

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// metricName finds the metrics a PromQL expression reads.
var metricName = regexp.MustCompile(`\b(?:redis_gateway|go|process)_[a-z0-9_]+\b`)

// exportedFamilies scrapes g's /metrics and returns each family's type by
// name.
func exportedFamilies(t *testing.T, g *gateway) map[string]string {
	t.Helper()
	resp := g.do(t, http.MethodGet, "/metrics", "")
	if resp.Status != http.StatusOK {
		t.Fatalf("GET /metrics: status = %d, want 200", resp.Status)
	}
	families := map[string]string{}
	for _, line := range strings.Split(string(resp.Body), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			families[f[2]] = f[3]
		}
	}
	return families
}

// exported reports whether name is a series of one of the families.
func exported(families map[string]string, name string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if typ := families[base]; typ == "histogram" || typ == "summary" {
				return true
			}
		}
	}
	return false
}

// The dashboard's queries, the alert rules and their tests name only metrics
// a running gateway exports.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	srv := redistest.Start(t)
	g := mustStartGateway(t, srv.URL())
	// Traffic on the main routes, so the families with labels have series.
	g.do(t, http.MethodPut, "/cache/k", `1`)
	g.do(t, http.MethodGet, "/cache/k", "")
	g.do(t, http.MethodGet, "/cache/k", "")
	g.do(t, http.MethodPost, "/ratelimit/r/incr?limit=5&window=60", "")
	g.do(t, http.MethodPost, "/lock/l?ttl=10", "")
	g.do(t, http.MethodGet, "/cache/k", "", "Authorization", "Bearer wrong-token-wrong-token")
	g.do(t, http.MethodPost, "/redis", `["GET","k"]`)
	families := exportedFamilies(t, g)

	referenced := map[string][]string{} // metric -> where
	note := func(where, expr string) {
		for _, m := range metricName.FindAllString(expr, -1) {
			referenced[m] = append(referenced[m], where)
		}
	}

	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	b, err := os.ReadFile("deploy/grafana/redis-gateway.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana/redis-gateway.json: %v", err)
	}
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			note("dashboard panel "+p.Title, tg.Expr)
			queries++
		}
	}

	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
	mustDecodeYAML(t, "deploy/prometheus/alerts.yaml", &rules)
	alerts := 0
	for _, gr := range rules.Groups {
		for _, r := range gr.Rules {
			note("alert "+r.Alert, r.Expr)
			alerts++
			if r.Annotations["runbook"] == "" || r.Labels["severity"] == "" {
				t.Errorf("alert %s: want a runbook annotation and a severity label", r.Alert)
			}
		}
	}

	var tests struct {
		RuleFiles          []string `json:"rule_files"`
		EvaluationInterval string   `json:"evaluation_interval"`
		Tests              []struct {
			Interval      string
			InputSeries   []struct{ Series, Values string } `json:"input_series"`
			AlertRuleTest []struct {
				EvalTime  string           `json:"eval_time"`
				Alertname string           `json:"alertname"`
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		}
	}
	b, err = os.ReadFile("deploy/prometheus/alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.UnmarshalStrict(b, &tests); err != nil {
		t.Fatalf("deploy/prometheus/alerts_test.yaml: %v", err)
	}
	tested := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			note("rules test series", s.Series)
		}
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				tested[a.Alertname] = true
			}
		}
	}
	for _, gr := range rules.Groups {
		for _, r := range gr.Rules {
			if !tested[r.Alert] {
				t.Errorf("alert %s: no test in alerts_test.yaml sees it fire", r.Alert)
			}
		}
	}

	if queries < 20 || alerts < 6 {
		t.Fatalf("read %d dashboard queries and %d alerts: is the parsing right?", queries, alerts)
	}
	names := make([]string, 0, len(referenced))
	for n := range referenced {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !exported(families, n) {
			t.Errorf("%s is not exported by the gateway; used by %s", n, strings.Join(referenced[n], ", "))
		}
	}
}

// Log lines say the unit of a duration, and the normal outcomes of a cache,
// a lock or a condition (404, 409, 412) read as outcomes, not errors.
func TestLogDurationsAndOutcomes(t *testing.T) {
	g := mustStartGateway(t, "memory://", "LOG_BUFFER=0", "SHUTDOWN_TIMEOUT=2s")
	g.mustStatus(t, http.StatusNotFound, http.MethodGet, "/cache/missing", "")
	g.mustStatus(t, http.StatusCreated, http.MethodPost, "/lock/l?ttl=10", "")
	g.mustStatus(t, http.StatusConflict, http.MethodPost, "/lock/l?ttl=10", "")
	g.mustStatus(t, http.StatusPreconditionFailed, http.MethodPut, "/cache/k", `"v"`, "If-Match", `"nope"`)
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}
	var requests, shutdowns int
	for _, line := range strings.Split(strings.TrimSpace(g.Stdout.String()), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch l["msg"] {
		case "request":
			requests++
			if _, ok := l["duration_ms"].(float64); !ok || l["duration"] != nil {
				t.Errorf("access log line %s: want duration_ms, a number of milliseconds, and no bare duration", line)
			}
			if l["level"] != "INFO" || l["error"] != nil {
				t.Errorf("access log line %s: want INFO and no error for a normal outcome", line)
			}
		case "shutting down":
			shutdowns++
			if l["delay"] != "0s" || l["timeout"] != "2s" {
				t.Errorf("shutdown line %s: want delay 0s and timeout 2s, in words", line)
			}
		}
	}
	if requests != 4 || shutdowns != 1 {
		t.Errorf("%d access log lines and %d shutdown lines, want 4 and 1:\n%s", requests, shutdowns, g.Stdout)
	}
}
