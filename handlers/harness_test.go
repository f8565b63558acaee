package handlers_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/internal/logtest"
	"github.com/redis-gateway/redis-gateway/internal/redistest"
	"github.com/redis-gateway/redis-gateway/middleware"
	"github.com/redis-gateway/redis-gateway/store"
)

const testToken = "test-token"

// backend is one Redis the route suite runs against.
type backend struct {
	name  string
	url   string
	nodes []string // a cluster's nodes, instead of url
	tls   store.TLSOptions
	rdb   redis.UniversalClient // to look at Redis behind the gateway's back
	// elapse moves Redis's clock forward (miniredis), or waits (a real server).
	elapse func(d time.Duration)
	// stop makes Redis unreachable.
	stop func()
}

// forEachBackend runs fn against miniredis, a real redis-server, a real
// redis-server over TLS, and a Redis Cluster of 3 primaries and 3 replicas
// (shared by the tests, emptied before each, lent to one test at a time).
// Each test owns its backends, so it runs in parallel with the others.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	t.Parallel()
	t.Run("miniredis", func(t *testing.T) {
		fn(t, miniBackend(t))
	})
	t.Run("redis-server", func(t *testing.T) {
		fn(t, serverBackend(t))
	})
	t.Run("redis-server-tls", func(t *testing.T) {
		fn(t, tlsBackend(t))
	})
	t.Run("cluster", func(t *testing.T) {
		fn(t, sharedClusterBackend(t))
	})
}

// fixtures lends the route tests one cluster, emptied before each test,
// instead of starting one (two seconds) for every test.
var fixtures redistest.Shared

// parallelRouteTests is how many route tests run at once unless -parallel
// says otherwise. They spend most of their time waiting, on Redis or on a
// TTL, not computing, so more of them than the machine has cores (go test's
// default) fit side by side.
const parallelRouteTests = 8

func TestMain(m *testing.M) {
	redistest.LogClientToTests()
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(max(parallelRouteTests, runtime.GOMAXPROCS(0)))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	code := m.Run()
	fixtures.Close()
	os.Exit(code)
}

// skipIfShort skips a test that kills, restarts or reshards Redis and
// measures how the gateway rides it out: seconds of traffic each. go test
// -short leaves them out; CI runs them.
func skipIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("a failover, crash or resharding under traffic; runs without -short")
	}
}

// sharedClusterBackend is the shared cluster; a test that stops it leaves
// the next one to start another.
func sharedClusterBackend(t *testing.T) backend {
	t.Helper()
	c := fixtures.Cluster(t)
	return backend{
		name:   "cluster",
		nodes:  c.Addrs()[:1],
		rdb:    c.ClientFor(t),
		elapse: time.Sleep,
		stop:   c.Stop,
	}
}

// skipOnCluster skips a test whose premise is one server: it sends one
// command with keys of several hash slots, which a cluster refuses with
// CROSSSLOT and the command API passes on as is, or it asks one node about
// state that a cluster keeps per node. cluster_test.go covers the cluster's
// own answers.
func (b backend) skipOnCluster(t *testing.T, why string) {
	t.Helper()
	if b.name == "cluster" {
		t.Skip("one server's semantics: " + why)
	}
}

// clusterBackend is cluster c; the gateway is given one node and discovers
// the rest.
func clusterBackend(c *redistest.Cluster) backend {
	return backend{
		name:   "cluster",
		nodes:  c.Addrs()[:1],
		rdb:    c.Client(),
		elapse: time.Sleep,
		stop:   c.Stop,
	}
}

// tlsBackend is a redis-server that speaks only TLS, with a certificate for
// localhost from a CA of the test's own.
func tlsBackend(t *testing.T) backend {
	t.Helper()
	ca := redistest.NewCA(t)
	srv := redistest.StartTLS(t, redistest.TLS{CA: ca, Server: ca.Issue("localhost"), Name: "localhost"})
	return backend{
		name:   "redis-server-tls",
		url:    "rediss://localhost:" + strconv.Itoa(srv.Port),
		tls:    store.TLSOptions{CAFile: ca.File},
		rdb:    srv.Client(),
		elapse: time.Sleep,
		stop:   srv.Stop,
	}
}

// forEachClock runs fn against miniredis, whose clock the test moves, and one
// real redis-server, on which b.elapse waits in real time: for tests whose
// point is an expiry. TLS and a cluster change nothing about a TTL, and would
// only add seconds of waiting.
func forEachClock(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	t.Parallel()
	t.Run("miniredis", func(t *testing.T) {
		fn(t, miniBackend(t))
	})
	t.Run("redis-server", func(t *testing.T) {
		fn(t, serverBackend(t))
	})
}

// forEachServer runs fn against every real Redis deployment the tests start.
// The concurrency tests run here: their point is the atomicity of real Lua
// scripts under load, which miniredis cannot stand for.
func forEachServer(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	t.Parallel()
	t.Run("redis-server", func(t *testing.T) {
		fn(t, serverBackend(t))
	})
	t.Run("cluster", func(t *testing.T) {
		fn(t, sharedClusterBackend(t))
	})
}

func serverBackend(t *testing.T) backend {
	t.Helper()
	srv := redistest.Start(t)
	return backend{name: "redis-server", url: srv.URL(), rdb: srv.Client(), elapse: time.Sleep, stop: srv.Stop}
}

func miniBackend(t *testing.T) backend {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), DisableIdentity: true})
	t.Cleanup(func() { rdb.Close() })
	// One clock for TTLs and TIME (which the rate-limit and lock scripts
	// read), standing still until the test moves it.
	var mu sync.Mutex
	now := time.Now().Truncate(time.Second)
	mr.SetTime(now)
	mr.ClockTTL(true)
	elapse := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
		mr.SetTime(now)
	}
	return backend{name: "miniredis", url: "redis://" + mr.Addr(), rdb: rdb, elapse: elapse, stop: mr.Close}
}

// gateway is a handlers.New under test, behind a real HTTP server.
type gateway struct {
	t      *testing.T
	url    string
	client *http.Client
	logs   *logtest.Buffer
}

// setup is what options may change before the gateway starts.
type setup struct {
	cfg    handlers.Config
	store  store.Options
	wrap   func(handlers.Store) handlers.Store
	server func(*http.Server)
}

type option func(*setup)

func withKeyPrefix(p string) option {
	return func(s *setup) { s.store.KeyPrefix = p }
}

// withStoreOptions changes how the store reaches Redis.
func withStoreOptions(f func(*store.Options)) option {
	return func(s *setup) { f(&s.store) }
}

func withConfig(f func(*handlers.Config)) option {
	return func(s *setup) { f(&s.cfg) }
}

// staticTokens admits secrets, each with full access, as TOKENS does.
func staticTokens(secrets ...string) func() *access.Set {
	set := access.EnvSet(secrets)
	return func() *access.Set { return set }
}

// withStore puts wrap around the real store, to inject a fault Redis cannot.
func withStore(wrap func(handlers.Store) handlers.Store) option {
	return func(s *setup) { s.wrap = wrap }
}

// withServer changes the HTTP server before it starts, as main does.
func withServer(f func(*http.Server)) option {
	return func(s *setup) { s.server = f }
}

// startGateway serves the routes on b. Every response it receives is checked
// against openapi.yaml.
func startGateway(t *testing.T, b backend, opts ...option) *gateway {
	t.Helper()
	redistest.LogClient(t)
	logs := &logtest.Buffer{}
	// As the gateway builds its JSON log: the access log writes its own
	// lines into it.
	logger := slog.New(middleware.NewJSONHandler(logs, nil))
	s := setup{store: store.Options{URL: b.url, ClusterNodes: b.nodes, TLS: b.tls, Logger: logger, DialTimeout: time.Second, MaxRetries: -1}}
	s.cfg = handlers.Config{
		Logger:       logger,
		Registry:     prometheus.NewRegistry(),
		TokenSet:     staticTokens(testToken, "second-token"),
		MaxBodyBytes: 4 << 10,
		// Generous: a busy machine must not turn a success into a 504. Tests
		// of the deadline set their own.
		RequestTimeout: 30 * time.Second,
		TTLs:           handlers.TTLs{CacheDefault: time.Hour, Session: 30 * time.Minute, Max: 30 * 24 * time.Hour},
		OpenAPI:        []byte("openapi: 3.0.3\n"),
	}
	for _, o := range opts {
		o(&s)
	}
	s.store.Registry = s.cfg.Registry
	st, err := store.New(s.store)
	if err != nil {
		t.Fatalf("store.New: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	s.cfg.Store = st
	if s.wrap != nil {
		s.cfg.Store = s.wrap(st)
	}
	srv := httptest.NewUnstartedServer(handlers.New(s.cfg))
	if s.server != nil {
		s.server(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	// Enough idle connections for the concurrency tests' many clients.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	t.Cleanup(tr.CloseIdleConnections)
	return &gateway{
		t:      t,
		url:    srv.URL,
		client: &http.Client{Transport: &specCheck{t: t, next: tr}},
		logs:   logs,
	}
}

// request is one call to the gateway. Token "" sends the test token; "-"
// sends none.
type request struct {
	method, path string
	body         string
	header       map[string]string
	token        string
}

type response struct {
	status int
	header http.Header
	body   string
	close  bool // the server sent Connection: close (net/http removes the header)
}

func (g *gateway) do(req request) response {
	g.t.Helper()
	resp, err := g.call(req)
	if err != nil {
		g.t.Fatal(err)
	}
	return resp
}

// setHeaders puts the request's token on hr (testToken when it names none,
// none for "-"), then its headers; a header given as "" is removed.
func (req request) setHeaders(hr *http.Request) {
	switch req.token {
	case "":
		hr.Header.Set("Authorization", "Bearer "+testToken)
	case "-":
	default:
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	for k, v := range req.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
}

// call is do for goroutines other than the test's: it returns its error.
func (g *gateway) call(req request) (response, error) {
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	hr, err := http.NewRequest(req.method, g.url+req.path, body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %v", req.method, req.path, err)
	}
	sendAsWritten(hr, req.path)
	if req.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	req.setHeaders(hr)
	resp, err := g.client.Do(hr)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %v", req.method, req.path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b), close: resp.Close}, nil
}

// sendAsWritten makes hr send path byte for byte. net/http re-encodes a
// path holding a character it would have escaped ("|", say), and with it
// every escape in the path ("%2F" becomes "/"); a hostile client does not.
func sendAsWritten(hr *http.Request, path string) {
	p, _, _ := strings.Cut(path, "?")
	if hr.URL.EscapedPath() != p {
		hr.URL.Opaque = p
	}
}

// must runs req and fails the test unless the status is want.
func (g *gateway) must(req request, want int) response {
	g.t.Helper()
	resp := g.do(req)
	if resp.status != want {
		g.t.Fatalf("%s %s: status = %d, want %d; body: %s", req.method, req.path, resp.status, want, resp.body)
	}
	return resp
}

// specCheck validates every response of a known route against openapi.yaml.
type specCheck struct {
	t    *testing.T
	next http.RoundTripper
}

var spec = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromFile("../openapi.yaml")
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	return gorillamux.NewRouter(doc)
})

func (s *specCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	router, err := spec()
	if err != nil {
		s.t.Fatalf("load openapi.yaml: %v", err)
	}
	find := req
	if req.URL.Opaque != "" {
		// Sent as written; the contract's router splits the path it is given
		// at every "/", so it is given the escaped one.
		find = req.Clone(req.Context())
		find.URL.Path, find.URL.Opaque = req.URL.Opaque, ""
	}
	route, params, err := router.FindRoute(find)
	if err != nil {
		return resp, nil // unknown paths and methods are not in the contract
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		s.t.Errorf("%s %s: response %d does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		s.t.Errorf("%s %s: no X-Request-Id on the response", req.Method, req.URL.Path)
	}
	return resp, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
