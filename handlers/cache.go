package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/internal/echo"
	"github.com/redis-gateway/redis-gateway/store"
)

// cacheStore is what the cache routes need from Redis.
type cacheStore interface {
	// GetCacheTagged returns a value with its ETag, kept together, so that
	// a value the near-cache serves from memory costs no digest.
	GetCacheTagged(ctx context.Context, key string) (value []byte, etag string, err error)
	GetCacheMany(ctx context.Context, keys []string) ([][]byte, error)
	PutCache(ctx context.Context, key string, value []byte, ttl time.Duration, cond store.Condition) (bool, error)
	DeleteCache(ctx context.Context, key string) error
	DeleteCacheMany(ctx context.Context, keys []string) (int64, error)
	CacheTTL(ctx context.Context, key string) (time.Duration, error)
	ExpireCache(ctx context.Context, key string, ttl time.Duration) error
	IncrCache(ctx context.Context, key string, by int64, newTTL time.Duration) (int64, error)
}

// maxKeysPerRequest bounds GET and DELETE /cache?key=…
const maxKeysPerRequest = 1000

// TTLs holds the TTL settings the routes apply.
type TTLs struct {
	CacheDefault time.Duration // CACHE_DEFAULT_TTL
	Session      time.Duration // SESSION_TTL
	Max          time.Duration // MAX_TTL
}

// handleCacheGet serves GET and HEAD /cache/{key}: the stored bytes as they
// were sent, with a strong ETag.
func handleCacheGet(s cacheStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		key, err := scopedKey(r, "key")
		if err != nil {
			return err
		}
		value, tag, err := s.GetCacheTagged(r.Context(), key)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", tag)
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagListMatches(inm, tag, true) {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		writeRawJSON(w, http.StatusOK, value)
		return nil
	})
}

func handleCachePut(s cacheStore, ttls TTLs, lim bodyLimits) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		key, err := scopedKey(r, "key")
		if err != nil {
			return err
		}
		ttl, err := ttlQuery(r, ttls.CacheDefault, ttls.Max)
		if err != nil {
			return err
		}
		cond, err := writeCondition(r.Header)
		if err != nil {
			return err
		}
		value, err := readJSON(r, lim.maxDepth)
		if err != nil {
			return err
		}
		created, err := s.PutCache(r.Context(), key, value, ttl, cond)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", store.ETag(value))
		writeStored(w, created)
		return nil
	})
}

// writeCondition reads the preconditions of a PUT: If-None-Match: * creates
// only, If-Match: * replaces only, If-Match with entity tags replaces only the
// value those tags name.
func writeCondition(h http.Header) (store.Condition, error) {
	inm, im := strings.TrimSpace(h.Get("If-None-Match")), strings.TrimSpace(h.Get("If-Match"))
	switch {
	case inm != "" && im != "":
		return store.Condition{}, badRequest("give If-Match or If-None-Match, not both")
	case inm == "*":
		return store.Condition{IfAbsent: true}, nil
	case inm != "":
		return store.Condition{}, badRequest("If-None-Match on PUT takes only *")
	case im == "*":
		return store.Condition{IfPresent: true}, nil
	case im != "":
		tags, err := parseETags(im)
		if err != nil {
			return store.Condition{}, err
		}
		var digests []string
		for _, t := range tags {
			if !strings.HasPrefix(t, "W/") { // If-Match compares strongly: weak tags never match
				digests = append(digests, strings.Trim(t, `"`))
			}
		}
		if len(digests) == 0 {
			digests = []string{"-"} // matches nothing, so the write fails with 412
		}
		return store.Condition{IfDigest: digests}, nil
	}
	return store.Condition{}, nil
}

// parseETags splits an If-Match or If-None-Match list into entity tags.
func parseETags(list string) ([]string, error) {
	var tags []string
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		opaque := strings.TrimPrefix(t, "W/")
		if len(opaque) < 2 || opaque[0] != '"' || opaque[len(opaque)-1] != '"' || strings.Contains(opaque[1:len(opaque)-1], `"`) {
			return nil, badRequest("malformed entity tag list %s", echo.Quote(list))
		}
		tags = append(tags, t)
	}
	return tags, nil
}

// etagListMatches reports whether list names tag; If-None-Match compares
// weakly (W/ is ignored) and "*" matches any current value.
func etagListMatches(list, tag string, weak bool) bool {
	if strings.TrimSpace(list) == "*" {
		return true
	}
	tags, err := parseETags(list)
	if err != nil {
		return false
	}
	for _, t := range tags {
		if weak {
			t = strings.TrimPrefix(t, "W/")
		}
		if t == tag {
			return true
		}
	}
	return false
}

func handleCacheDelete(s cacheStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		key, err := scopedKey(r, "key")
		if err != nil {
			return err
		}
		if err := s.DeleteCache(r.Context(), key); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// queryKeys reads the repeated key parameter of the multi-key routes, in the
// order given, without duplicates.
func queryKeys(r *http.Request) ([]string, error) {
	q, err := query(r)
	if err != nil {
		return nil, err
	}
	raw := q["key"]
	if len(raw) == 0 {
		return nil, badRequest("give at least one key parameter")
	}
	if len(raw) > maxKeysPerRequest {
		return nil, badRequest("at most %d key parameters, got %d", maxKeysPerRequest, len(raw))
	}
	seen := make(map[string]bool, len(raw))
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if err := checkKey("key", k); err != nil {
			return nil, err
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	// One key outside the token's keys refuses them all.
	return keys, access.FromContext(r.Context()).Keys(keys...)
}

// handleCacheGetMany answers {"key": value-or-null, ...}. Values are written
// as stored; one that is not JSON (written past the gateway) becomes a string.
func handleCacheGetMany(s cacheStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		keys, err := queryKeys(r)
		if err != nil {
			return err
		}
		values, err := s.GetCacheMany(r.Context(), keys)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			name, _ := json.Marshal(k)
			buf.Write(name)
			buf.WriteByte(':')
			switch v := values[i]; {
			case v == nil:
				buf.WriteString("null")
			case json.Valid(v):
				buf.Write(v)
			default:
				s, _ := json.Marshal(string(v))
				buf.Write(s)
			}
		}
		buf.WriteByte('}')
		writeRawJSON(w, http.StatusOK, buf.Bytes())
		return nil
	})
}

func handleCacheDeleteMany(s cacheStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		keys, err := queryKeys(r)
		if err != nil {
			return err
		}
		n, err := s.DeleteCacheMany(r.Context(), keys)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			Deleted int64 `json:"deleted"`
		}{n})
		return nil
	})
}

type ttlResponse struct {
	TTL int64 `json:"ttl"`
}

func handleCacheTTL(s cacheStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		key, err := scopedKey(r, "key")
		if err != nil {
			return err
		}
		d, err := s.CacheTTL(r.Context(), key)
		if err != nil {
			return err
		}
		ttl := int64(-1)
		if d >= 0 {
			ttl = seconds(d)
		}
		writeJSON(w, http.StatusOK, ttlResponse{ttl})
		return nil
	})
}

func handleCacheExpire(s cacheStore, ttls TTLs) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		key, err := scopedKey(r, "key")
		if err != nil {
			return err
		}
		q, err := query(r)
		if err != nil {
			return err
		}
		ttl, err := requiredTTL(q, "ttl", ttls.Max)
		if err != nil {
			return err
		}
		if err := s.ExpireCache(r.Context(), key, ttl); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, ttlResponse{seconds(ttl)})
		return nil
	})
}

// handleCacheIncr adds ?by= (default 1) to an integer value. A counter it
// creates expires after CACHE_DEFAULT_TTL; an existing one keeps its TTL.
func handleCacheIncr(s cacheStore, ttls TTLs) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		key, err := scopedKey(r, "key")
		if err != nil {
			return err
		}
		q, err := query(r)
		if err != nil {
			return err
		}
		by, err := intParam(q, "by", 1, -1<<63, 1<<63-1)
		if err != nil {
			return err
		}
		n, err := s.IncrCache(r.Context(), key, by, ttls.CacheDefault)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			Value int64 `json:"value"`
		}{n})
		return nil
	})
}
