package handlers

import (
	"net/http"

	"github.com/redis-gateway/redis-gateway/access"
)

// need refuses, with 403, requests whose token may not use route at level.
// Every data route in routes.go names the route and level it needs.
func need(route access.Route, level access.Level) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := access.FromContext(r.Context()).Route(route, level); err != nil {
				writeError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// needCommandAPI is need for /redis, answering in the command API's
// envelope. Reading is enough to enter: each command is then checked
// against the token's level, commands and keys by the command table
// (internal/commandapi), under the request's policy.
func needCommandAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := access.FromContext(r.Context()).Route(access.Redis, access.Read); err != nil {
			writeCommandError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// scopedKey is pathKey for a key the token's keys scope must admit. Globs
// match the key as the client named it, percent-decoded once, before the
// gateway adds its prefixes.
func scopedKey(r *http.Request, name string) (string, error) {
	key, err := pathKey(r, name)
	if err != nil {
		return "", err
	}
	return key, access.FromContext(r.Context()).Keys(key)
}

// scopedChannel is pathKey for a channel the token's channels scope must
// admit.
func scopedChannel(r *http.Request, name string) (string, error) {
	channel, err := pathKey(r, name)
	if err != nil {
		return "", err
	}
	return channel, access.FromContext(r.Context()).Channels(channel)
}
