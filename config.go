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

	// TracesProtocol is how spans go to the OTLP endpoint: http/protobuf or
	// grpc; empty = tracing off (see tracing.go).
	TracesProtocol string

	Tokens       []string
	TokensFile   string // GATEWAY_TOKENS_FILE: scoped tokens, re-read when it changes
	AuthDisabled bool
	MetricsToken string   // METRICS_TOKEN: /metrics requires it when set
	CORSOrigins  []string // CORS_ALLOWED_ORIGINS

	CacheDefaultTTL time.Duration
	MaxTTL          time.Duration
	SessionTTL      time.Duration

	RateLimitFailOpen  bool
	MaxSubscribers     int
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

// loadConfig reads the configuration through getenv. dev applies the -dev
// defaults: embedded Redis, no auth, text logs, no shutdown delay.
func loadConfig(getenv func(string) string, dev bool) (config, error) {
	e := envReader{getenv: getenv}
	c := config{
		Redis: store.Options{
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
		},
		RequestTimeout:  e.duration("REQUEST_TIMEOUT", 5*time.Second),
		MaxBodyBytes:    int64(e.int("MAX_BODY_BYTES", 1<<20, 1)),
		MaxJSONDepth:    e.int("MAX_JSON_DEPTH", handlers.DefaultMaxJSONDepth, 1),
		ShutdownDelay:   e.duration("SHUTDOWN_DELAY", e.duration("SHUTDOWN_DRAIN", 5*time.Second)),
		ShutdownTimeout: e.duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		LogFormat:       e.str("LOG_FORMAT", "json"),
		LogBuffer:       e.duration("LOG_BUFFER", 100*time.Millisecond),
		PprofAddr:       e.str("PPROF_ADDR", ""),
		CacheDefaultTTL: e.seconds("CACHE_DEFAULT_TTL", time.Hour),
		MaxTTL:          e.seconds("MAX_TTL", 30*24*time.Hour),
		SessionTTL:      e.seconds("SESSION_TTL", 30*time.Minute),

		RateLimitFailOpen:  e.bool("RATELIMIT_FAIL_OPEN", false),
		MaxSubscribers:     e.int("MAX_SUBSCRIBERS", 1000, 1),
		SubscribeHeartbeat: e.duration("SUBSCRIBE_HEARTBEAT", 15*time.Second),

		LockMaxWait:       e.duration("LOCK_MAX_WAIT", 60*time.Second),
		LockMaxWaiters:    e.int("LOCK_MAX_WAITERS", 10000, 1),
		CacheLeaseMaxWait: e.duration("CACHE_LEASE_MAX_WAIT", 60*time.Second),
	}
	if c.MaxJSONDepth > maxJSONDepth {
		e.fail("MAX_JSON_DEPTH", e.getenv("MAX_JSON_DEPTH"), fmt.Sprintf("want at most %d, the deepest JSON Go's decoder reads", maxJSONDepth))
	}
	c.Addr = e.addr(dev)
	c.TLSCertFile, c.TLSKeyFile = e.tlsFiles()
	c.TLSCertCheckInterval = e.duration("TLS_CERT_CHECK_INTERVAL", time.Second)
	if c.TLSCertCheckInterval < time.Millisecond {
		e.fail("TLS_CERT_CHECK_INTERVAL", e.getenv("TLS_CERT_CHECK_INTERVAL"), "want a duration of at least 1ms")
	}
	near := store.NearCacheOptions{
		MaxEntries:   e.int("NEAR_CACHE_MAX_ENTRIES", 100_000, 1),
		MaxBytes:     int64(e.int("NEAR_CACHE_MAX_BYTES", 12<<20, 1<<10)),
		MaxStaleness: e.duration("NEAR_CACHE_MAX_STALENESS", 10*time.Second),
	}
	if near.MaxStaleness < time.Millisecond {
		e.fail("NEAR_CACHE_MAX_STALENESS", e.getenv("NEAR_CACHE_MAX_STALENESS"), "want a duration of at least 1ms")
	}
	if e.onOff("NEAR_CACHE", true) {
		c.Redis.NearCache = &near
	}
	if c.PprofAddr != "" {
		if _, _, err := net.SplitHostPort(c.PprofAddr); err != nil {
			e.fail("PPROF_ADDR", c.PprofAddr, "want host:port, such as 127.0.0.1:6060")
		}
	}
	c.LogLevel = e.level("LOG_LEVEL")
	c.TracesProtocol = e.tracing()
	switch c.Readiness = e.str("READINESS", "redis"); c.Readiness {
	case "redis", "process":
	default:
		e.fail("READINESS", c.Readiness, "want redis or process")
	}
	for _, n := range strings.Split(getenv("REDIS_CLUSTER_NODES"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			if host, port, err := net.SplitHostPort(n); err != nil || host == "" || port == "" {
				e.fail("REDIS_CLUSTER_NODES", n, "want host:port, such as clustercfg.example.cache.amazonaws.com:6379")
			}
			c.Redis.ClusterNodes = append(c.Redis.ClusterNodes, n)
		}
	}
	for _, t := range strings.Split(getenv("GATEWAY_TOKENS"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.Tokens = append(c.Tokens, t)
		}
	}
	c.TokensFile = getenv("GATEWAY_TOKENS_FILE")
	c.MetricsToken = strings.TrimSpace(getenv("METRICS_TOKEN"))
	c.CORSOrigins = e.origins("CORS_ALLOWED_ORIGINS")
	switch auth := getenv("GATEWAY_AUTH"); auth {
	case "", "token":
	case "none":
		c.AuthDisabled = true
	default:
		e.fail("GATEWAY_AUTH", auth, "want token or none")
	}
	tokens := len(c.Tokens)
	if !c.AuthDisabled && !dev {
		// Named as the logs name them, never by the secret.
		for i, t := range c.Tokens {
			if err := access.CheckSecret(t); err != nil {
				e.errs = append(e.errs, fmt.Errorf("GATEWAY_TOKENS: token %d (GATEWAY_TOKENS#%d): %w", i+1, i+1, err))
			}
		}
	}
	if c.MetricsToken != "" && !dev {
		if err := access.CheckSecret(c.MetricsToken); err != nil {
			e.errs = append(e.errs, fmt.Errorf("METRICS_TOKEN: %w", err))
		}
	}
	if c.TokensFile != "" && !c.AuthDisabled && !dev {
		// Read here so that a bad file fails start-up with the other bad
		// values; serve reads it again to watch it.
		set, err := readTokens(c.Tokens, c.TokensFile)
		if err != nil {
			e.fail("GATEWAY_TOKENS_FILE", c.TokensFile, err.Error())
		} else {
			tokens = set.Len()
		}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		e.fail("LOG_FORMAT", c.LogFormat, "want json or text")
	}
	// The 0 default means "go-redis's default"; "0 retries" must mean none.
	if getenv("REDIS_MAX_RETRIES") == "0" {
		c.Redis.MaxRetries = -1
	}
	if c.Redis.ConnMaxIdleTime == 0 { // 0 keeps idle connections forever
		c.Redis.ConnMaxIdleTime = -1
	}

	if dev {
		// -dev always means the embedded Redis, even with a REDIS_URL in .env.
		c.Redis.URL = "memory://"
		c.Redis.TLS = store.TLSOptions{}
		c.Redis.ClusterNodes = nil
		c.AuthDisabled = true
		c.MetricsToken = ""
		if getenv("LOG_FORMAT") == "" {
			c.LogFormat = "text"
		}
		if getenv("SHUTDOWN_DELAY") == "" && getenv("SHUTDOWN_DRAIN") == "" {
			c.ShutdownDelay = 0
		}
	}

	if len(e.errs) > 0 {
		return c, errors.Join(e.errs...)
	}
	switch {
	case c.Redis.URL == "" && len(c.Redis.ClusterNodes) == 0:
		return c, errNoRedisURL
	case c.Redis.URL != "" && len(c.Redis.ClusterNodes) > 0:
		return c, errors.New("REDIS_URL and REDIS_CLUSTER_NODES are both set: use REDIS_URL for one server " +
			"or REDIS_CLUSTER_NODES for a cluster (REDIS_USERNAME, REDIS_PASSWORD and REDIS_TLS_ENABLED=true carry what the URL would)")
	case c.CacheDefaultTTL > c.MaxTTL:
		return c, fmt.Errorf("CACHE_DEFAULT_TTL (%s) is above MAX_TTL (%s)", c.CacheDefaultTTL, c.MaxTTL)
	case c.Redis.WriteReplicas > 0 && (c.Redis.WriteReplicasTimeout < time.Millisecond ||
		c.Redis.WriteReplicasTimeout >= c.RequestTimeout || c.Redis.WriteReplicasTimeout >= c.Redis.ReadTimeout):
		return c, fmt.Errorf("REDIS_WRITE_REPLICAS_TIMEOUT (%s) must be at least 1ms and below REQUEST_TIMEOUT (%s) and REDIS_READ_TIMEOUT (%s): "+
			"a write waits that long for replicas before it answers", c.Redis.WriteReplicasTimeout, c.RequestTimeout, c.Redis.ReadTimeout)
	case c.SessionTTL > c.MaxTTL:
		return c, fmt.Errorf("SESSION_TTL (%s) is above MAX_TTL (%s)", c.SessionTTL, c.MaxTTL)
	case c.LockMaxWait <= 0:
		return c, fmt.Errorf("LOCK_MAX_WAIT (%s) must be above 0", c.LockMaxWait)
	case c.CacheLeaseMaxWait <= 0:
		return c, fmt.Errorf("CACHE_LEASE_MAX_WAIT (%s) must be above 0", c.CacheLeaseMaxWait)
	case c.SubscribeHeartbeat < 100*time.Millisecond:
		return c, fmt.Errorf("SUBSCRIBE_HEARTBEAT (%s) is below 100ms", c.SubscribeHeartbeat)
	case !c.AuthDisabled && tokens == 0:
		return c, errors.New("no GATEWAY_TOKENS or GATEWAY_TOKENS_FILE: the data routes would accept nobody; " +
			"set GATEWAY_TOKENS to one or more comma-separated tokens, point GATEWAY_TOKENS_FILE at a tokens file, " +
			"or set GATEWAY_AUTH=none to run without auth")
	}
	return c, nil
}

func readTokens(env []string, path string) (*access.Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return access.NewSet(env, data)
}

// envReader parses variables and collects every bad one, so a user fixes them
// all in one go. An error names the variable but never echoes secrets.
type envReader struct {
	getenv func(string) string
	errs   []error
}

func (e *envReader) fail(name, value, why string) {
	e.errs = append(e.errs, fmt.Errorf("%s=%q: %s", name, value, why))
}

func (e *envReader) str(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envReader) int(name string, def, min int) int {
	v := e.getenv(name)
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
	v := e.getenv(name)
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
	v := strings.TrimSpace(e.getenv(name))
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

func (e *envReader) onOff(name string, def bool) bool {
	switch v := strings.TrimSpace(e.getenv(name)); v {
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
	v := strings.TrimSpace(e.getenv(name))
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
	v := e.getenv(name)
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
	cert, key := e.getenv("TLS_CERT_FILE"), e.getenv("TLS_KEY_FILE")
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
	v := e.getenv(name)
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
	if a := e.getenv("HTTP_ADDR"); a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			e.fail("HTTP_ADDR", a, "want host:port, such as :8080 or 127.0.0.1:8080")
		}
		return a
	}
	port := e.str("PORT", "8080")
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		e.fail("PORT", port, "want a port number from 0 to 65535")
	}
	host := strings.TrimSpace(e.getenv("HOST"))
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
	endpoint := e.getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || e.getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
	on := endpoint
	switch v := strings.TrimSpace(e.getenv("OTEL_TRACES_EXPORTER")); v {
	case "":
	case "otlp":
		on = true
	case "none":
		on = false
	default:
		e.fail("OTEL_TRACES_EXPORTER", v, "want otlp or none")
	}
	protocol := strings.TrimSpace(e.getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	name := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if protocol == "" {
		protocol, name = strings.TrimSpace(e.getenv("OTEL_EXPORTER_OTLP_PROTOCOL")), "OTEL_EXPORTER_OTLP_PROTOCOL"
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
