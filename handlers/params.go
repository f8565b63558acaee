package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

const maxKeyBytes = 1024

// pathKey returns a key from one path segment, percent-decoded exactly once.
// The router matches on the escaped path (see escapedPath), so the segment
// arrives still encoded whatever it contains.
func pathKey(r *http.Request, name string) (string, error) {
	key, err := url.PathUnescape(chi.URLParam(r, name))
	if err != nil {
		return "", badRequest("%s: invalid percent-encoding", name)
	}
	return key, checkKey(name, key)
}

func checkKey(name, key string) error {
	if key == "" || len(key) > maxKeyBytes {
		return badRequest("%s must be 1 to %d bytes after decoding, got %d", name, maxKeyBytes, len(key))
	}
	return nil
}

// query parses the query string strictly: a malformed one is a 400, not
// silently half-read.
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string")
	}
	return q, nil
}

// ttlQuery reads ?ttl, the only query parameter of a write that stores a
// value: def when absent, at most maxTTL.
func ttlQuery(r *http.Request, def, maxTTL time.Duration) (time.Duration, error) {
	q, err := query(r)
	if err != nil {
		return 0, err
	}
	return ttlParam(q, "ttl", def, maxTTL)
}

// single returns the one value of a query parameter, or ok=false when absent.
func single(q url.Values, name string) (string, bool, error) {
	vs, ok := q[name]
	switch {
	case !ok:
		return "", false, nil
	case len(vs) > 1:
		return "", false, badRequest("%s: give it once", name)
	}
	return vs[0], true, nil
}

// intParam reads a whole number in [min, max], def when absent. Only plain
// digits with an optional minus sign are whole numbers here.
func intParam(q url.Values, name string, def, min, max int64) (int64, error) {
	s, ok, err := single(q, name)
	if err != nil || !ok {
		return def, err
	}
	return wholeParam(name, s, min, max)
}

// wholeParam reads the value s of parameter name, a whole number in [min, max].
func wholeParam(name, s string, min, max int64) (int64, error) {
	n, err := parseWhole(s)
	if err != nil || n < min || n > max {
		return 0, badRequest("%s must be a whole number from %d to %d", name, min, max)
	}
	return n, nil
}

func parseWhole(s string) (int64, error) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

// ttlParam reads a TTL in whole seconds, from 1 to max.
func ttlParam(q url.Values, name string, def, max time.Duration) (time.Duration, error) {
	n, err := intParam(q, name, int64(def/time.Second), 1, int64(max/time.Second))
	return time.Duration(n) * time.Second, err
}

// requiredTTL is ttlParam for a parameter the route cannot do without.
func requiredTTL(q url.Values, name string, max time.Duration) (time.Duration, error) {
	if _, ok := q[name]; !ok {
		return 0, badRequest("%s is required", name)
	}
	return ttlParam(q, name, 0, max)
}

func boolParam(q url.Values, name string, def bool) (bool, error) {
	s, ok, err := single(q, name)
	if err != nil || !ok {
		return def, err
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badRequest("%s must be true or false", name)
	}
	return b, nil
}

// bodyLimits bound what a JSON body may cost: its size (also enforced by the
// BodyLimit middleware) and how deep it nests.
type bodyLimits struct {
	maxBytes int64
	maxDepth int
}

// readJSON reads a JSON body (at most the body limit, which the BodyLimit
// middleware enforces, and nested at most maxDepth deep) and returns its
// exact bytes.
func readJSON(r *http.Request, maxDepth int) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return nil, &httpError{Status: http.StatusUnsupportedMediaType, Slug: "unsupported-media-type",
			Message: "Content-Type must be application/json"}
	}
	b, err := readBody(r, badRequest)
	if err != nil {
		return nil, err
	}
	if err := checkJSON(b, maxDepth); err != nil {
		return nil, badRequest("%v", err)
	}
	return b, nil
}

// readBody reads the whole body. A body past the limit of the BodyLimit
// middleware keeps its *http.MaxBytesError, which writeError turns into 413;
// any other failure is a 400 built by bad, in the route's own envelope.
func readBody(r *http.Request, bad func(format string, args ...any) error) ([]byte, error) {
	if held, ok := r.Body.(*heldBody); ok && held.Len() == len(held.b) {
		held.Reset(nil)
		return held.b, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, bad("reading the body: %v", err)
	}
	return b, nil
}

// readJSONObject is readJSON for routes that store documents.
func readJSONObject(r *http.Request, maxDepth int) ([]byte, error) {
	b, err := readJSON(r, maxDepth)
	if err != nil {
		return nil, err
	}
	if s := strings.TrimLeft(string(b), " \t\r\n"); !strings.HasPrefix(s, "{") {
		return nil, badRequest("the body must be a JSON object")
	}
	return b, nil
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// writeStored answers a PUT that stored a value: 201 when it created the
// key, 204 when it replaced one.
func writeStored(w http.ResponseWriter, created bool) {
	if created {
		w.WriteHeader(http.StatusCreated)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeJSON answers with v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own response types reach here; failing to encode one is a bug.
		panic("encode response: " + err.Error())
	}
	writeRawJSON(w, status, b)
}

// jsonContentType is every JSON answer's Content-Type, shared: Header.Set
// would allocate it for each. Header's methods replace a value's slice or
// append to it, never write into it.
var jsonContentType = []string{"application/json"}

func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// seconds rounds a duration up to whole seconds, so a live key or an open
// window never reports 0.
func seconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}
