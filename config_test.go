package main

import (
	"strings"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/store"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestConfigRedisSettings(t *testing.T) {
	base := map[string]string{"REDIS_URL": "rediss://cache.example.com:6379", "GATEWAY_TOKENS": testToken}
	with := func(kv ...string) map[string]string { return withPairs(base, kv...) }

	cfg, err := loadConfig(env(with(
		"REDIS_TLS_ENABLED", "true",
		"REDIS_TLS_CA_FILE", "/ca.pem",
		"REDIS_TLS_CERT_FILE", "/c.pem",
		"REDIS_TLS_KEY_FILE", "/c.key",
		"REDIS_TLS_SERVER_NAME", "redis.internal",
		"REDIS_TLS_INSECURE_SKIP_VERIFY", "1",
		"REDIS_MIN_IDLE_CONNS", "4",
		"REDIS_CONN_MAX_IDLE_TIME", "5m",
	)), false)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	tls := cfg.Redis.TLS
	if !tls.Enabled || tls.CAFile != "/ca.pem" || tls.CertFile != "/c.pem" || tls.KeyFile != "/c.key" ||
		tls.ServerName != "redis.internal" || !tls.InsecureSkipVerify {
		t.Errorf("TLS = %+v, want every REDIS_TLS_* setting", tls)
	}
	if cfg.Redis.MinIdleConns != 4 || cfg.Redis.ConnMaxIdleTime != 5*time.Minute {
		t.Errorf("MinIdleConns, ConnMaxIdleTime = %d, %v; want 4, 5m", cfg.Redis.MinIdleConns, cfg.Redis.ConnMaxIdleTime)
	}

	if cfg, _ := loadConfig(env(with("REDIS_CONN_MAX_IDLE_TIME", "0")), false); cfg.Redis.ConnMaxIdleTime >= 0 {
		t.Errorf("REDIS_CONN_MAX_IDLE_TIME=0: ConnMaxIdleTime = %v, want negative (never closed)", cfg.Redis.ConnMaxIdleTime)
	}
	if cfg, _ := loadConfig(env(with("REDIS_TLS_ENABLED", "true", "REDIS_TLS_CA_FILE", "/ca.pem")), true); cfg.Redis.TLS != (store.TLSOptions{}) {
		t.Errorf("-dev kept TLS settings %+v, want none for the embedded Redis", cfg.Redis.TLS)
	}

	for _, bad := range [][2]string{
		{"REDIS_TLS_ENABLED", "yes please"},
		{"REDIS_TLS_INSECURE_SKIP_VERIFY", "maybe"},
		{"REDIS_MIN_IDLE_CONNS", "-1"},
		{"REDIS_CONN_MAX_IDLE_TIME", "soon"},
	} {
		_, err := loadConfig(env(with(bad[0], bad[1])), false)
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%q: error %v, want one naming the variable", bad[0], bad[1], err)
		}
	}
}

func TestConfigCluster(t *testing.T) {
	cfg, err := loadConfig(env(map[string]string{
		"REDIS_CLUSTER_NODES": " cfg.example.com:6379, 10.0.0.2:6380 ,",
		"REDIS_TLS_ENABLED":   "true",
		"GATEWAY_TOKENS":      testToken,
	}), false)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if got := strings.Join(cfg.Redis.ClusterNodes, " "); got != "cfg.example.com:6379 10.0.0.2:6380" || cfg.Redis.URL != "" {
		t.Errorf("ClusterNodes, URL = %q, %q; want the two nodes and no URL", got, cfg.Redis.URL)
	}
	for _, tt := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"REDIS_CLUSTER_NODES": "cfg.example.com", "GATEWAY_TOKENS": testToken}, "REDIS_CLUSTER_NODES"},
		{map[string]string{"REDIS_CLUSTER_NODES": "a:1", "REDIS_URL": "redis://b:1", "GATEWAY_TOKENS": testToken}, "both set"},
	} {
		if _, err := loadConfig(env(tt.vars), false); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("loadConfig(%v) = %v, want an error saying %q", tt.vars, err, tt.want)
		}
	}
	if cfg, err := loadConfig(env(map[string]string{"REDIS_CLUSTER_NODES": "a:1"}), true); err != nil || len(cfg.Redis.ClusterNodes) > 0 || cfg.Redis.URL != "memory://" {
		t.Errorf("-dev with REDIS_CLUSTER_NODES: %v, %+v; want memory:// only", err, cfg.Redis)
	}
}

func TestConfigDurableWrites(t *testing.T) {
	vars := map[string]string{"REDIS_URL": "redis://r:6379", "GATEWAY_TOKENS": testToken, "REDIS_WRITE_REPLICAS": "2", "REDIS_WRITE_REPLICAS_TIMEOUT": "250ms"}
	cfg, err := loadConfig(env(vars), false)
	if err != nil || cfg.Redis.WriteReplicas != 2 || cfg.Redis.WriteReplicasTimeout != 250*time.Millisecond {
		t.Errorf("loadConfig = %v, %d, %v; want 2 replicas within 250ms", err, cfg.Redis.WriteReplicas, cfg.Redis.WriteReplicasTimeout)
	}
	for _, timeout := range []string{"0s", "5s", "3s"} { // none, REQUEST_TIMEOUT, REDIS_READ_TIMEOUT
		vars["REDIS_WRITE_REPLICAS_TIMEOUT"] = timeout
		if _, err := loadConfig(env(vars), false); err == nil || !strings.Contains(err.Error(), "REDIS_WRITE_REPLICAS_TIMEOUT") {
			t.Errorf("REDIS_WRITE_REPLICAS_TIMEOUT=%s: %v, want an error naming it", timeout, err)
		}
	}
	vars["REDIS_WRITE_REPLICAS"] = "-1"
	if _, err := loadConfig(env(vars), false); err == nil || !strings.Contains(err.Error(), "REDIS_WRITE_REPLICAS") {
		t.Errorf("REDIS_WRITE_REPLICAS=-1: %v, want an error naming it", err)
	}
}

func TestRateLimitFailOpenConfig(t *testing.T) {
	tests := []struct {
		value   string
		want    bool
		wantErr bool
	}{
		{"", false, false},
		{"true", true, false},
		{"false", false, false},
		{"1", true, false},
		{"yes", false, true},
	}
	for _, tt := range tests {
		env := map[string]string{"REDIS_URL": "memory://", "GATEWAY_AUTH": "none", "RATELIMIT_FAIL_OPEN": tt.value}
		cfg, err := loadConfig(func(k string) string { return env[k] }, false)
		switch {
		case tt.wantErr && (err == nil || !strings.Contains(err.Error(), "RATELIMIT_FAIL_OPEN")):
			t.Errorf("RATELIMIT_FAIL_OPEN=%q: error %v, want one naming the variable", tt.value, err)
		case !tt.wantErr && err != nil:
			t.Errorf("RATELIMIT_FAIL_OPEN=%q: %v", tt.value, err)
		case !tt.wantErr && cfg.RateLimitFailOpen != tt.want:
			t.Errorf("RATELIMIT_FAIL_OPEN=%q: RateLimitFailOpen = %v, want %v", tt.value, cfg.RateLimitFailOpen, tt.want)
		}
	}
}

func TestConfigJSONDepth(t *testing.T) {
	vars := map[string]string{"REDIS_URL": "memory://", "GATEWAY_AUTH": "none"}
	if cfg, err := loadConfig(env(vars), false); err != nil || cfg.MaxJSONDepth != 128 {
		t.Errorf("default MAX_JSON_DEPTH: %d, %v; want 128", cfg.MaxJSONDepth, err)
	}
	vars["MAX_JSON_DEPTH"] = "32"
	if cfg, err := loadConfig(env(vars), false); err != nil || cfg.MaxJSONDepth != 32 {
		t.Errorf("MAX_JSON_DEPTH=32: %d, %v", cfg.MaxJSONDepth, err)
	}
	for _, v := range []string{"0", "-1", "10001", "deep"} {
		vars["MAX_JSON_DEPTH"] = v
		if _, err := loadConfig(env(vars), false); err == nil || !strings.Contains(err.Error(), "MAX_JSON_DEPTH") {
			t.Errorf("MAX_JSON_DEPTH=%s: %v, want an error naming it", v, err)
		}
	}
}

// -dev turns authentication off, so it listens on loopback unless told
// otherwise; without -dev the default stays every interface.
func TestConfigListenAddr(t *testing.T) {
	tests := []struct {
		env     map[string]string
		dev     bool
		want    string
		wantErr string
	}{
		{env: map[string]string{}, dev: true, want: "127.0.0.1:8080"},
		{env: map[string]string{"PORT": "9000"}, dev: true, want: "127.0.0.1:9000"},
		{env: map[string]string{"HOST": "0.0.0.0"}, dev: true, want: "0.0.0.0:8080"},
		{env: map[string]string{"HTTP_ADDR": ":9000"}, dev: true, want: ":9000"},
		{env: map[string]string{}, want: ":8080"},
		{env: map[string]string{"HOST": "127.0.0.1", "PORT": "9001"}, want: "127.0.0.1:9001"},
		{env: map[string]string{"HOST": "::1"}, want: "[::1]:8080"},
		{env: map[string]string{"HOST": "127.0.0.1:80"}, wantErr: "HOST"},
		{env: map[string]string{"HOST": "a b"}, wantErr: "HOST"},
	}
	for _, tt := range tests {
		vars := withEnv(map[string]string{"REDIS_URL": "memory://", "GATEWAY_TOKENS": testToken}, tt.env)
		cfg, err := loadConfig(env(vars), tt.dev)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%v (dev %v): error %v, want one naming %s", tt.env, tt.dev, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || cfg.Addr != tt.want):
			t.Errorf("%v (dev %v): Addr = %q, %v; want %q", tt.env, tt.dev, cfg.Addr, err, tt.want)
		}
	}
}

func TestConfigShutdownDelayAndReadiness(t *testing.T) {
	base := map[string]string{"REDIS_URL": "redis://127.0.0.1:6379", "GATEWAY_TOKENS": "3f9a6c1e8b2d4f7a9c0e1b3d5f7a9c2e"}
	with := func(kv ...string) map[string]string { return withPairs(base, kv...) }
	tests := []struct {
		name      string
		env       map[string]string
		dev       bool
		wantDelay time.Duration
		wantReady string
	}{
		{"defaults", with(), false, 5 * time.Second, "redis"},
		{"-dev", with(), true, 0, "redis"},
		{"SHUTDOWN_DELAY", with("SHUTDOWN_DELAY", "300ms"), false, 300 * time.Millisecond, "redis"},
		{"SHUTDOWN_DELAY with -dev", with("SHUTDOWN_DELAY", "2s"), true, 2 * time.Second, "redis"},
		{"former name SHUTDOWN_DRAIN", with("SHUTDOWN_DRAIN", "1s"), false, time.Second, "redis"},
		{"SHUTDOWN_DELAY wins over SHUTDOWN_DRAIN", with("SHUTDOWN_DELAY", "2s", "SHUTDOWN_DRAIN", "1s"), false, 2 * time.Second, "redis"},
		{"READINESS=process", with("READINESS", "process"), false, 5 * time.Second, "process"},
		{"READINESS=redis", with("READINESS", "redis"), false, 5 * time.Second, "redis"},
	}
	for _, tt := range tests {
		cfg, err := loadConfig(env(tt.env), tt.dev)
		if err != nil {
			t.Errorf("%s: loadConfig: %v", tt.name, err)
			continue
		}
		if cfg.ShutdownDelay != tt.wantDelay || cfg.Readiness != tt.wantReady {
			t.Errorf("%s: ShutdownDelay, Readiness = %v, %q; want %v, %q", tt.name, cfg.ShutdownDelay, cfg.Readiness, tt.wantDelay, tt.wantReady)
		}
	}
	for _, bad := range [][2]string{{"READINESS", "always"}, {"SHUTDOWN_DELAY", "soon"}, {"SHUTDOWN_DELAY", "-1s"}} {
		_, err := loadConfig(env(with(bad[0], bad[1])), false)
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%s: err = %v, want one naming %s", bad[0], bad[1], err, bad[0])
		}
	}
}

func TestConfigTracing(t *testing.T) {
	base := map[string]string{"REDIS_URL": "redis://127.0.0.1:6379", "GATEWAY_TOKENS": "3f9a6c1e8b2d4f7a9c0e1b3d5f7a9c2e"}
	with := func(kv ...string) map[string]string { return withPairs(base, kv...) }
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"off by default", with(), ""},
		{"an endpoint turns it on", with("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), "http/protobuf"},
		{"a traces endpoint too", with("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces"), "http/protobuf"},
		{"otlp without an endpoint (the exporter's default)", with("OTEL_TRACES_EXPORTER", "otlp"), "http/protobuf"},
		{"none wins over an endpoint", with("OTEL_TRACES_EXPORTER", "none", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ""},
		{"grpc", with("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), "grpc"},
		{"the traces protocol wins", with("OTEL_TRACES_EXPORTER", "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"), "http/protobuf"},
	}
	for _, tt := range tests {
		cfg, err := loadConfig(env(tt.env), false)
		if err != nil {
			t.Errorf("%s: loadConfig: %v", tt.name, err)
			continue
		}
		if cfg.TracesProtocol != tt.want {
			t.Errorf("%s: TracesProtocol = %q, want %q", tt.name, cfg.TracesProtocol, tt.want)
		}
	}
	for _, bad := range [][2]string{{"OTEL_TRACES_EXPORTER", "zipkin"}, {"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"}} {
		_, err := loadConfig(env(with(bad[0], bad[1])), false)
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%s: err = %v, want one naming %s", bad[0], bad[1], err, bad[0])
		}
	}
}

// REDIS_MAX_RETRIES=0 means no retries however it is spelled; go-redis reads
// a 0 as "its default", 3.
func TestConfigNoRetries(t *testing.T) {
	for _, v := range []string{"0", " 0", "0 "} {
		cfg, err := loadConfig(env(map[string]string{"REDIS_URL": "memory://", "GATEWAY_TOKENS": testToken, "REDIS_MAX_RETRIES": v}), false)
		if err != nil || cfg.Redis.MaxRetries != -1 {
			t.Errorf("REDIS_MAX_RETRIES=%q: MaxRetries = %d, %v; want -1 (none)", v, cfg.Redis.MaxRetries, err)
		}
	}
	if cfg, err := loadConfig(env(map[string]string{"REDIS_URL": "memory://", "GATEWAY_TOKENS": testToken}), false); err != nil || cfg.Redis.MaxRetries != 3 {
		t.Errorf("default: MaxRetries = %d, %v; want 3", cfg.Redis.MaxRetries, err)
	}
}

// A new user who sets nothing learns every missing setting at once.
func TestConfigReportsEveryMissingSetting(t *testing.T) {
	_, err := loadConfig(env(map[string]string{}), false)
	if err == nil {
		t.Fatal("loadConfig of an empty environment succeeded")
	}
	for _, want := range []string{"REDIS_URL is not defined", "no GATEWAY_TOKENS or GATEWAY_TOKENS_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig: %v; want it to say %q", err, want)
		}
	}
}

// knownVars, the list the documentation tests and the lookalike warnings
// read, is what loadConfig reads, with and without -dev.
func TestKnownVarsAreRead(t *testing.T) {
	for _, dev := range []bool{false, true} {
		read := map[string]bool{}
		_, _ = loadConfig(func(k string) string { read[k] = true; return "" }, dev)
		for _, k := range knownVars {
			if !read[k] {
				t.Errorf("dev %v: knownVars lists %s, which loadConfig does not read", dev, k)
			}
			delete(read, k)
		}
		for k := range read {
			t.Errorf("dev %v: loadConfig reads %s, which knownVars does not list", dev, k)
		}
	}
}

func TestLookalikes(t *testing.T) {
	environ := []string{
		"REDIS_ULR=redis://r:6379", "CACHE_DEFUALT_TTL=60", "RDIS_URL=x", "GATEWAY_TOKEN=x", "LOG_LEVLE=debug",
		// Not ours, or ours and known: no warning.
		"PATH=/usr/bin", "HOME=/root", "HOSTNAME=gw-1", "SSL_CERT_FILE=/ca.pem", "OTEL_SERVICE_NAME=gw",
		"OTEL_EXPORTER_OTLP_HEADERS=a=b", "GOMAXPROCS=2", "REDIS_PORT=tcp://10.0.0.1:6379",
		"REDIS_SERVICE_HOST=10.0.0.1", "REDIS_EXPOSED_PORT=6379", "PUBLISH_ADDR=127.0.0.1", "REDIS_URL=memory://",
		"PORT=8080", "HOST=0.0.0.0", "=C:=C:\\", "NO_EQUALS",
	}
	want := []lookalike{
		{"REDIS_ULR", "REDIS_URL"}, {"CACHE_DEFUALT_TTL", "CACHE_DEFAULT_TTL"}, {"RDIS_URL", "REDIS_URL"},
		{"GATEWAY_TOKEN", "GATEWAY_TOKENS"}, {"LOG_LEVLE", "LOG_LEVEL"},
	}
	got := lookalikes(environ)
	if len(got) != len(want) {
		t.Fatalf("lookalikes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("lookalikes[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}
