package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/store"
)

// config is every setting, read once from the environment at start-up.
type config struct {
	Redis store.Options

	Addr            string // HTTP_ADDR, or ":" + PORT
	TLSCertFile     string // TLS_CERT_FILE and TLS_KEY_FILE: serve HTTPS
	TLSKeyFile      string
	RequestTimeout  time.Duration
	MaxBodyBytes    int64
	MaxJSONDepth    int
	ShutdownDelay   time.Duration // SHUTDOWN_DELAY: /readyz fails, traffic is still served
	ShutdownTimeout time.Duration
	Readiness       string // READINESS: redis (/readyz follows Redis) or process

	TLSCertCheckInterval time.Duration // TLS_CERT_CHECK_INTERVAL: how often, at most, a handshake looks for renewed files

	LogLevel  slog.Level
	LogFormat string        // json or text
	LogBuffer time.Duration // 0 = write every line at once

	PprofAddr string // empty = no profiling listener

	GC gcSettings // GOGC and GOMEMLIMIT, with the gateway's defaults (gc.go)

	// TracesProtocol is how spans go to the OTLP endpoint: http/protobuf or
	// grpc; empty = tracing off (see tracing.go).
	TracesProtocol string

	Tokens     []string
	TokensFile string // GATEWAY_TOKENS_FILE: scoped tokens, re-read when it changes
	// tokensFileData is the tokens file as read and checked at start-up;
	// serve starts from it rather than read the file a second time.
	tokensFileData []byte
	AuthDisabled   bool
	MetricsToken   string   // METRICS_TOKEN: /metrics requires it when set
	CORSOrigins    []string // CORS_ALLOWED_ORIGINS

	CacheDefaultTTL time.Duration
	MaxTTL          time.Duration
	SessionTTL      time.Duration

	RateLimitFailOpen  bool
	MaxSubscribers     int
	SubscribeBuffer    int // SUBSCRIBE_BUFFER: messages a stream may fall behind before it is dropped
	SubscribeHeartbeat time.Duration

	LockMaxWait       time.Duration // LOCK_MAX_WAIT: the longest ?wait of POST /lock/{name}
	LockMaxWaiters    int           // LOCK_MAX_WAITERS
	CacheLeaseMaxWait time.Duration // CACHE_LEASE_MAX_WAIT: the longest ?wait of GET /cache/{key}?lease
}

// maxJSONDepth is the deepest nesting encoding/json accepts at all.
const maxJSONDepth = 10000

// errNoRedisURL is the mistake every new user makes first; its message says
// how to fix it.
var errNoRedisURL = errors.New("REDIS_URL is not defined: set it in the environment or in a .env file " +
	"(REDIS_URL=redis://localhost:6379), use REDIS_URL=memory:// for an embedded in-memory Redis, " +
	"set REDIS_CLUSTER_NODES for a Redis Cluster, or run with -dev")

// loadConfig reads the configuration through getenv and reports every bad or
// missing setting at once. dev applies the -dev defaults: embedded Redis, no
// auth, text logs, no shutdown delay.
func loadConfig(getenv func(string) string, dev bool) (config, error) {
	e := &envReader{getenv: getenv}
	var c config
	c.Redis = e.redis()
	e.http(&c, dev)
	e.auth(&c, dev)
	c.GC = e.gc()
	if dev {
		// -dev always means the embedded Redis, even with a REDIS_URL in .env.
		c.Redis.URL = "memory://"
		c.Redis.TLS = store.TLSOptions{}
		c.Redis.ClusterNodes = nil
		c.AuthDisabled = true
		c.MetricsToken = ""
		c.tokensFileData = nil
		if !e.set("LOG_FORMAT") {
			c.LogFormat = "text"
		}
		if !e.set("SHUTDOWN_DELAY") && !e.set("SHUTDOWN_DRAIN") {
			c.ShutdownDelay = 0
		}
	}
	e.validate(c, dev)
	if len(e.errs) > 0 {
		return c, errors.Join(e.errs...)
	}
	return c, nil
}

// redis reads the settings of the connection to Redis and of what the store
// keeps in front of it.
func (e *envReader) redis() store.Options {
	o := store.Options{
		URL:             e.str("REDIS_URL", ""),
		Username:        e.str("REDIS_USERNAME", ""),
		Password:        e.str("REDIS_PASSWORD", ""),
		PasswordFile:    e.str("REDIS_PASSWORD_FILE", ""),
		KeyPrefix:       e.str("REDIS_KEY_PREFIX", ""),
		PoolSize:        e.int("REDIS_POOL_SIZE", 0, 0),
		MinIdleConns:    e.int("REDIS_MIN_IDLE_CONNS", 0, 0),
		ConnMaxIdleTime: e.duration("REDIS_CONN_MAX_IDLE_TIME", 30*time.Minute),
		DialTimeout:     e.duration("REDIS_DIAL_TIMEOUT", 2*time.Second),
		ReadTimeout:     e.duration("REDIS_READ_TIMEOUT", 3*time.Second),
		WriteTimeout:    e.duration("REDIS_WRITE_TIMEOUT", 3*time.Second),
		MaxRetries:      e.int("REDIS_MAX_RETRIES", 3, 0),
		MinRetryBackoff: e.duration("REDIS_MIN_RETRY_BACKOFF", 8*time.Millisecond),
		MaxRetryBackoff: e.duration("REDIS_MAX_RETRY_BACKOFF", 2*time.Second),
		NoAutoPipeline:  !e.onOff("REDIS_AUTOPIPELINE", true),
		WriteReplicas:   e.int("REDIS_WRITE_REPLICAS", 0, 0),
		MaxReplyBytes:   int64(e.int("MAX_REPLY_BYTES", store.DefaultMaxReplyBytes, 1<<20)),
		TLS: store.TLSOptions{
			Enabled:            e.bool("REDIS_TLS_ENABLED", false),
			CAFile:             e.str("REDIS_TLS_CA_FILE", ""),
			CertFile:           e.str("REDIS_TLS_CERT_FILE", ""),
			KeyFile:            e.str("REDIS_TLS_KEY_FILE", ""),
			ServerName:         e.str("REDIS_TLS_SERVER_NAME", ""),
			InsecureSkipVerify: e.bool("REDIS_TLS_INSECURE_SKIP_VERIFY", false),
		},
		WriteReplicasTimeout: e.duration("REDIS_WRITE_REPLICAS_TIMEOUT", time.Second),
	}
	// store.Options reads 0 as "go-redis's default" (3); 0 retries must mean none.
	if o.MaxRetries == 0 {
		o.MaxRetries = -1
	}
	if o.ConnMaxIdleTime == 0 { // 0 keeps idle connections forever
		o.ConnMaxIdleTime = -1
	}
	for _, n := range e.list("REDIS_CLUSTER_NODES") {
		if host, port, err := net.SplitHostPort(n); err != nil || host == "" || port == "" {
			e.fail("REDIS_CLUSTER_NODES", n, "want host:port, such as clustercfg.example.cache.amazonaws.com:6379")
		}
		o.ClusterNodes = append(o.ClusterNodes, n)
	}
	near := store.NearCacheOptions{
		MaxEntries:   e.int("NEAR_CACHE_MAX_ENTRIES", 100_000, 1),
		MaxBytes:     int64(e.int("NEAR_CACHE_MAX_BYTES", 12<<20, 1<<10)),
		MaxStaleness: e.durationMin("NEAR_CACHE_MAX_STALENESS", 10*time.Second, time.Millisecond),
	}
	if e.onOff("NEAR_CACHE", true) {
		o.NearCache = &near
	}
	return o
}

// http reads the settings of the listener, the requests it serves and the
// process around it: logs, profiling, tracing, shutdown, route limits.
func (e *envReader) http(c *config, dev bool) {
	c.Addr = e.addr(dev)
	c.TLSCertFile, c.TLSKeyFile = e.tlsFiles()
	c.TLSCertCheckInterval = e.durationMin("TLS_CERT_CHECK_INTERVAL", time.Second, time.Millisecond)
	c.RequestTimeout = e.duration("REQUEST_TIMEOUT", 5*time.Second)
	c.MaxBodyBytes = int64(e.int("MAX_BODY_BYTES", 1<<20, 1))
	c.MaxJSONDepth = e.int("MAX_JSON_DEPTH", handlers.DefaultMaxJSONDepth, 1)
	if c.MaxJSONDepth > maxJSONDepth {
		e.fail("MAX_JSON_DEPTH", e.raw("MAX_JSON_DEPTH"), fmt.Sprintf("want at most %d, the deepest JSON Go's decoder reads", maxJSONDepth))
	}
	c.ShutdownDelay = e.duration("SHUTDOWN_DELAY", e.duration("SHUTDOWN_DRAIN", 5*time.Second))
	c.ShutdownTimeout = e.duration("SHUTDOWN_TIMEOUT", 10*time.Second)
	c.Readiness = e.oneOf("READINESS", "redis", "redis", "process")
	c.LogLevel = e.level("LOG_LEVEL")
	c.LogFormat = e.oneOf("LOG_FORMAT", "json", "json", "text")
	c.LogBuffer = e.duration("LOG_BUFFER", 100*time.Millisecond)
	if c.PprofAddr = e.str("PPROF_ADDR", ""); c.PprofAddr != "" {
		if _, _, err := net.SplitHostPort(c.PprofAddr); err != nil {
			e.fail("PPROF_ADDR", c.PprofAddr, "want host:port, such as 127.0.0.1:6060")
		}
	}
	c.TracesProtocol = e.tracing()

	c.CacheDefaultTTL = e.seconds("CACHE_DEFAULT_TTL", time.Hour)
	c.MaxTTL = e.seconds("MAX_TTL", 30*24*time.Hour)
	c.SessionTTL = e.seconds("SESSION_TTL", 30*time.Minute)
	c.RateLimitFailOpen = e.bool("RATELIMIT_FAIL_OPEN", false)
	c.MaxSubscribers = e.int("MAX_SUBSCRIBERS", 10000, 1)
	c.SubscribeBuffer = e.int("SUBSCRIBE_BUFFER", 128, 1)
	c.SubscribeHeartbeat = e.duration("SUBSCRIBE_HEARTBEAT", 15*time.Second)
	c.LockMaxWait = e.duration("LOCK_MAX_WAIT", 60*time.Second)
	c.LockMaxWaiters = e.int("LOCK_MAX_WAITERS", 10000, 1)
	c.CacheLeaseMaxWait = e.duration("CACHE_LEASE_MAX_WAIT", 60*time.Second)
}

// auth reads who may call the gateway: tokens, the tokens file (read here,
// once; serve watches it from these contents), the metrics token and CORS.
func (e *envReader) auth(c *config, dev bool) {
	c.Tokens = e.list("GATEWAY_TOKENS")
	c.TokensFile = e.str("GATEWAY_TOKENS_FILE", "")
	c.MetricsToken = strings.TrimSpace(e.raw("METRICS_TOKEN"))
	c.CORSOrigins = e.origins("CORS_ALLOWED_ORIGINS")
	c.AuthDisabled = e.oneOf("GATEWAY_AUTH", "token", "token", "none") == "none"
	if dev {
		return // -dev runs without auth: nothing below is used
	}
	if c.MetricsToken != "" {
		if err := access.CheckSecret(c.MetricsToken); err != nil {
			e.errs = append(e.errs, fmt.Errorf("METRICS_TOKEN: %w", err))
		}
	}
	if c.AuthDisabled {
		return
	}
	// Named as the logs name them, never by the secret.
	for i, t := range c.Tokens {
		if err := access.CheckSecret(t); err != nil {
			e.errs = append(e.errs, fmt.Errorf("GATEWAY_TOKENS: token %d (GATEWAY_TOKENS#%d): %w", i+1, i+1, err))
		}
	}
	if c.TokensFile != "" {
		data, err := os.ReadFile(c.TokensFile)
		if err == nil {
			_, err = access.NewSet(c.Tokens, data)
		}
		if err != nil {
			e.fail("GATEWAY_TOKENS_FILE", c.TokensFile, err.Error())
			return
		}
		c.tokensFileData = data
	}
}

// validate checks the settings that depend on one another, each on its own so
// that one start-up names every mistake.
func (e *envReader) validate(c config, dev bool) {
	fail := func(err error) { e.errs = append(e.errs, err) }
	switch {
	case c.Redis.URL == "" && len(c.Redis.ClusterNodes) == 0:
		fail(errNoRedisURL)
	case c.Redis.URL != "" && len(c.Redis.ClusterNodes) > 0:
		fail(errors.New("REDIS_URL and REDIS_CLUSTER_NODES are both set: use REDIS_URL for one server " +
			"or REDIS_CLUSTER_NODES for a cluster (REDIS_USERNAME, REDIS_PASSWORD and REDIS_TLS_ENABLED=true carry what the URL would)"))
	}
	if c.CacheDefaultTTL > c.MaxTTL {
		fail(fmt.Errorf("CACHE_DEFAULT_TTL (%s) is above MAX_TTL (%s)", c.CacheDefaultTTL, c.MaxTTL))
	}
	if c.SessionTTL > c.MaxTTL {
		fail(fmt.Errorf("SESSION_TTL (%s) is above MAX_TTL (%s)", c.SessionTTL, c.MaxTTL))
	}
	if c.Redis.WriteReplicas > 0 && (c.Redis.WriteReplicasTimeout < time.Millisecond ||
		c.Redis.WriteReplicasTimeout >= c.RequestTimeout || c.Redis.WriteReplicasTimeout >= c.Redis.ReadTimeout) {
		fail(fmt.Errorf("REDIS_WRITE_REPLICAS_TIMEOUT (%s) must be at least 1ms and below REQUEST_TIMEOUT (%s) and REDIS_READ_TIMEOUT (%s): "+
			"a write waits that long for replicas before it answers", c.Redis.WriteReplicasTimeout, c.RequestTimeout, c.Redis.ReadTimeout))
	}
	if c.LockMaxWait <= 0 {
		fail(fmt.Errorf("LOCK_MAX_WAIT (%s) must be above 0", c.LockMaxWait))
	}
	if c.CacheLeaseMaxWait <= 0 {
		fail(fmt.Errorf("CACHE_LEASE_MAX_WAIT (%s) must be above 0", c.CacheLeaseMaxWait))
	}
	if c.SubscribeHeartbeat < 100*time.Millisecond {
		fail(fmt.Errorf("SUBSCRIBE_HEARTBEAT (%s) is below 100ms", c.SubscribeHeartbeat))
	}
	tokens := len(c.Tokens)
	if c.tokensFileData != nil {
		set, _ := access.NewSet(c.Tokens, c.tokensFileData) // checked by auth
		tokens = set.Len()
	}
	if !c.AuthDisabled && tokens == 0 && (c.TokensFile == "" || c.tokensFileData != nil) {
		fail(errors.New("no GATEWAY_TOKENS or GATEWAY_TOKENS_FILE: the data routes would accept nobody; " +
			"set GATEWAY_TOKENS to one or more comma-separated tokens, point GATEWAY_TOKENS_FILE at a tokens file, " +
			"or set GATEWAY_AUTH=none to run without auth"))
	}
}

// envReader parses variables and collects every bad one, so a user fixes them
// all in one go. An error names the variable but never echoes secrets.
type envReader struct {
	getenv func(string) string
	errs   []error
}

// raw is the variable's value as set; every read goes through it.
func (e *envReader) raw(name string) string { return e.getenv(name) }

// set says whether the variable is set to anything.
func (e *envReader) set(name string) bool { return e.raw(name) != "" }

func (e *envReader) fail(name, value, why string) {
	e.errs = append(e.errs, fmt.Errorf("%s=%q: %s", name, value, why))
}

func (e *envReader) str(name, def string) string {
	if v := e.raw(name); v != "" {
		return v
	}
	return def
}

func (e *envReader) int(name string, def, min int) int {
	v := e.raw(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < min {
		e.fail(name, v, fmt.Sprintf("want a whole number of at least %d", min))
		return def
	}
	return n
}

func (e *envReader) duration(name string, def time.Duration) time.Duration {
	v := e.raw(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		e.fail(name, v, "want a duration such as 500ms, 2s or 1m")
		return def
	}
	return d
}

// seconds reads a TTL: whole seconds ("3600") or a Go duration of whole
// seconds ("1h").
func (e *envReader) seconds(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(e.raw(name))
	if v == "" {
		return def
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 1 && n <= 1<<33 {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second || d%time.Second != 0 {
		e.fail(name, v, "want whole seconds of at least 1, such as 3600 or 1h")
		return def
	}
	return d
}

// durationMin is duration with a floor.
func (e *envReader) durationMin(name string, def, min time.Duration) time.Duration {
	d := e.duration(name, def)
	if d < min {
		e.fail(name, e.raw(name), fmt.Sprintf("want a duration of at least %s", min))
		return def
	}
	return d
}

// list reads a comma-separated list, without blanks.
func (e *envReader) list(name string) []string {
	var l []string
	for _, v := range strings.Split(e.raw(name), ",") {
		if v = strings.TrimSpace(v); v != "" {
			l = append(l, v)
		}
	}
	return l
}

// oneOf reads one of the values allowed, def when unset.
func (e *envReader) oneOf(name, def string, allowed ...string) string {
	v := strings.TrimSpace(e.raw(name))
	if v == "" {
		return def
	}
	if !slices.Contains(allowed, v) {
		e.fail(name, v, "want "+strings.Join(allowed, " or "))
		return def
	}
	return v
}

func (e *envReader) onOff(name string, def bool) bool {
	switch v := strings.TrimSpace(e.raw(name)); v {
	case "":
		return def
	case "on":
		return true
	case "off":
		return false
	default:
		e.fail(name, v, "want on or off")
		return def
	}
}

func (e *envReader) bool(name string, def bool) bool {
	v := strings.TrimSpace(e.raw(name))
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, v, "want true or false")
		return def
	}
	return b
}

func (e *envReader) level(name string) slog.Level {
	var l slog.Level
	v := e.raw(name)
	if v == "" {
		return slog.LevelInfo
	}
	if err := l.UnmarshalText([]byte(v)); err != nil {
		e.fail(name, v, "want debug, info, warn or error")
	}
	return l
}

// tlsFiles reads TLS_CERT_FILE and TLS_KEY_FILE, which go together, and
// checks that they hold a certificate and its key.
func (e *envReader) tlsFiles() (string, string) {
	cert, key := e.raw("TLS_CERT_FILE"), e.raw("TLS_KEY_FILE")
	switch {
	case cert == "" && key == "":
		return "", ""
	case cert == "":
		e.fail("TLS_KEY_FILE", key, "needs TLS_CERT_FILE too")
	case key == "":
		e.fail("TLS_CERT_FILE", cert, "needs TLS_KEY_FILE too")
	default:
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			e.errs = append(e.errs, fmt.Errorf("TLS_CERT_FILE=%q and TLS_KEY_FILE=%q: %w", cert, key, err))
		}
	}
	return cert, key
}

// origins reads a comma-separated list of serialized origins
// (scheme://host[:port], as browsers send them in Origin), or "*" alone.
func (e *envReader) origins(name string) []string {
	v := e.raw(name)
	var list []string
	for _, o := range strings.Split(v, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		u, err := url.Parse(o)
		switch {
		case o == "*":
		case err != nil, u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.User != nil,
			u.Path != "", u.RawQuery != "", u.Fragment != "", strings.HasSuffix(o, "?"):
			e.fail(name, v, fmt.Sprintf("%q is not an origin such as https://app.example.com or http://localhost:3000", o))
			continue
		}
		list = append(list, strings.ToLower(o))
	}
	if len(list) > 1 && slices.Contains(list, "*") {
		e.fail(name, v, "* admits every origin: give it alone")
	}
	return list
}

// addr is HTTP_ADDR when set, else all interfaces on PORT.
// addr is where to listen: HTTP_ADDR, or HOST and PORT. -dev turns
// authentication off, so its default host is 127.0.0.1, not every interface.
func (e *envReader) addr(dev bool) string {
	if a := e.raw("HTTP_ADDR"); a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			e.fail("HTTP_ADDR", a, "want host:port, such as :8080 or 127.0.0.1:8080")
		}
		return a
	}
	port := e.str("PORT", "8080")
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		e.fail("PORT", port, "want a port number from 0 to 65535")
	}
	host := strings.TrimSpace(e.raw("HOST"))
	if host != "" && (strings.ContainsAny(host, " /") || net.ParseIP(host) == nil && strings.Contains(host, ":")) {
		e.fail("HOST", host, "want a host name or IP address to listen on, without a port (PORT gives it), such as 0.0.0.0 or 127.0.0.1")
	}
	if host == "" && dev {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// tracing reads the standard OpenTelemetry variables that decide whether
// spans are exported, and how: it returns the OTLP protocol, or "" when
// tracing is off. The exporter reads the rest (endpoint, headers, TLS,
// timeout) itself.
func (e *envReader) tracing() string {
	endpoint := e.raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || e.raw("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
	on := endpoint
	switch v := strings.TrimSpace(e.raw("OTEL_TRACES_EXPORTER")); v {
	case "":
	case "otlp":
		on = true
	case "none":
		on = false
	default:
		e.fail("OTEL_TRACES_EXPORTER", v, "want otlp or none")
	}
	protocol := strings.TrimSpace(e.raw("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	name := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if protocol == "" {
		protocol, name = strings.TrimSpace(e.raw("OTEL_EXPORTER_OTLP_PROTOCOL")), "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	switch protocol {
	case "":
		protocol = "http/protobuf"
	case "http/protobuf", "grpc":
	default:
		e.fail(name, protocol, "want http/protobuf or grpc")
	}
	if !on {
		return ""
	}
	return protocol
}
