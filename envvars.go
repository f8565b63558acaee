package main

import "strings"

// knownVars is every variable the gateway reads: loadConfig reads each of
// them and no other (TestKnownVarsAreRead holds the two together), and
// .env.example and docs/configuration.md document each.
var knownVars = []string{
	// Redis
	"REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE", "REDIS_KEY_PREFIX",
	"REDIS_TLS_ENABLED", "REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE", "REDIS_TLS_SERVER_NAME",
	"REDIS_TLS_INSECURE_SKIP_VERIFY", "REDIS_POOL_SIZE", "REDIS_MIN_IDLE_CONNS", "REDIS_CONN_MAX_IDLE_TIME",
	"REDIS_DIAL_TIMEOUT", "REDIS_READ_TIMEOUT", "REDIS_WRITE_TIMEOUT", "REDIS_MAX_RETRIES", "REDIS_MIN_RETRY_BACKOFF",
	"REDIS_MAX_RETRY_BACKOFF", "REDIS_AUTOPIPELINE", "REDIS_WRITE_REPLICAS", "REDIS_WRITE_REPLICAS_TIMEOUT",
	"MAX_REPLY_BYTES", "NEAR_CACHE", "NEAR_CACHE_MAX_ENTRIES", "NEAR_CACHE_MAX_BYTES", "NEAR_CACHE_MAX_STALENESS",
	// HTTP and the process
	"PORT", "HOST", "HTTP_ADDR", "TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CERT_CHECK_INTERVAL", "REQUEST_TIMEOUT",
	"MAX_BODY_BYTES", "MAX_JSON_DEPTH", "SHUTDOWN_DELAY", "SHUTDOWN_DRAIN", "SHUTDOWN_TIMEOUT", "READINESS",
	"LOG_LEVEL", "LOG_FORMAT", "LOG_BUFFER", "PPROF_ADDR", "GOGC", "GOMEMLIMIT",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"CACHE_DEFAULT_TTL", "MAX_TTL", "SESSION_TTL", "RATELIMIT_FAIL_OPEN", "MAX_SUBSCRIBERS", "SUBSCRIBE_BUFFER", "SUBSCRIBE_HEARTBEAT",
	"LOCK_MAX_WAIT", "LOCK_MAX_WAITERS", "CACHE_LEASE_MAX_WAIT",
	// Auth
	"GATEWAY_TOKENS", "GATEWAY_TOKENS_FILE", "GATEWAY_AUTH", "METRICS_TOKEN", "CORS_ALLOWED_ORIGINS",
}

// composeVars are read by docker-compose.yml from the same .env, which the
// gateway loads too: ours, but not the gateway's.
var composeVars = []string{"REDIS_EXPOSED_PORT", "PUBLISH_ADDR"}

// lookalike is a variable that is set and not read, and the known one it
// is probably a misspelling of.
type lookalike struct{ name, known string }

// lookalikes finds the variables of environ ("NAME=value", as os.Environ
// gives them) that look like ours but are not known: within two edits of a
// known name and either in the same family (the same first word: REDIS_ULR,
// CACHE_DEFUALT_TTL) or long enough that one edit is a typo, not another
// program's variable (RDIS_URL, not HOME for HOST or SSL_CERT_FILE for
// TLS_CERT_FILE). The OTEL_* variables belong to the OpenTelemetry SDK,
// which reads many more than the gateway does.
func lookalikes(environ []string) []lookalike {
	var found []lookalike
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if name == "" || strings.HasPrefix(name, "OTEL_") || knownVar(name) {
			continue
		}
		best, bestDist := "", 3
		for _, k := range knownVars {
			if d := editDistance(name, k); d < bestDist && (family(name) == family(k) || d <= 1 && len(name) >= 8) {
				best, bestDist = k, d
			}
		}
		if best != "" {
			found = append(found, lookalike{name, best})
		}
	}
	return found
}

func knownVar(name string) bool {
	for _, list := range [][]string{knownVars, composeVars} {
		for _, k := range list {
			if k == name {
				return true
			}
		}
	}
	return false
}

// family is the first word of a variable's name: REDIS of REDIS_URL.
func family(name string) string {
	f, _, _ := strings.Cut(name, "_")
	return f
}

// editDistance is the Levenshtein distance of two ASCII names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
