package handlers

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/redis-gateway/redis-gateway/access"
)

// sessionStore is what the session routes need from Redis.
type sessionStore interface {
	CreateSession(ctx context.Context, doc []byte, ttl time.Duration) (string, error)
	PutSession(ctx context.Context, id string, doc []byte, ttl time.Duration) (bool, error)
	GetSession(ctx context.Context, id string, touch bool) ([]byte, error)
	UpdateSession(ctx context.Context, id string, update func(doc []byte) ([]byte, error)) ([]byte, error)
	DeleteSession(ctx context.Context, id string) error
}

type sessionCreated struct {
	ID  string `json:"id"`
	TTL int64  `json:"ttl"`
}

func handleSessionCreate(s sessionStore, ttls TTLs, lim bodyLimits) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if access.FromContext(r.Context()).RestrictsKeys() {
			return &access.Denied{Scope: access.ScopeKeys, Detail: "a key-restricted token cannot create a session under a " +
				"generated id, which its keys would not admit: PUT /session/{id} with an id within them"}
		}
		ttl, err := ttlQuery(r, ttls.Session, ttls.Max)
		if err != nil {
			return err
		}
		doc, err := readJSONObject(r, lim.maxDepth)
		if err != nil {
			return err
		}
		id, err := s.CreateSession(r.Context(), doc, ttl)
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/session/"+url.PathEscape(id))
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusCreated, sessionCreated{ID: id, TTL: seconds(ttl)})
		return nil
	})
}

func handleSessionPut(s sessionStore, ttls TTLs, lim bodyLimits) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		id, err := scopedKey(r, "id")
		if err != nil {
			return err
		}
		ttl, err := ttlQuery(r, ttls.Session, ttls.Max)
		if err != nil {
			return err
		}
		doc, err := readJSONObject(r, lim.maxDepth)
		if err != nil {
			return err
		}
		created, err := s.PutSession(r.Context(), id, doc, ttl)
		if err != nil {
			return err
		}
		writeStored(w, created)
		return nil
	})
}

// handleSessionGet returns the session and, unless ?touch=false, slides its
// expiry back to the session's own TTL.
func handleSessionGet(s sessionStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		id, err := scopedKey(r, "id")
		if err != nil {
			return err
		}
		q, err := query(r)
		if err != nil {
			return err
		}
		touch, err := boolParam(q, "touch", true)
		if err != nil {
			return err
		}
		doc, err := s.GetSession(r.Context(), id, touch)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		writeRawJSON(w, http.StatusOK, doc)
		return nil
	})
}

// handleSessionPatch applies a JSON merge patch (RFC 7396) to a session and
// answers with the merged document. The merge runs here, on the document's
// raw bytes, so numbers keep every digit; the store writes it only if the
// session did not change meanwhile, and merges again when it did. The write
// restores the session's own TTL.
func handleSessionPatch(s sessionStore, lim bodyLimits) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		id, err := scopedKey(r, "id")
		if err != nil {
			return err
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json-patch+json" {
			return &httpError{Status: http.StatusUnsupportedMediaType, Slug: "unsupported-media-type",
				Message: "JSON Patch (RFC 6902) is not supported: send a JSON merge patch (RFC 7396) as application/merge-patch+json"}
		}
		patch, err := readJSONObject(r, lim.maxDepth)
		if err != nil {
			return err
		}
		doc, err := s.UpdateSession(r.Context(), id, func(doc []byte) ([]byte, error) {
			merged, err := mergePatch(r.Context(), doc, patch, lim.maxDepth)
			if err != nil {
				if ctxErr := r.Context().Err(); ctxErr != nil {
					return nil, ctxErr
				}
				// The stored document is not JSON, or nests deeper than the
				// limit: written behind the gateway's back.
				return nil, &httpError{Status: http.StatusConflict, Slug: "conflict",
					Message: "the stored session is not a JSON object within the gateway's limits", Err: err}
			}
			if int64(len(merged)) > lim.maxBytes {
				return nil, &httpError{Status: http.StatusRequestEntityTooLarge, Slug: "payload-too-large",
					Message: fmt.Sprintf("the merged session would be %d bytes, more than the %d a session may hold", len(merged), lim.maxBytes)}
			}
			return merged, nil
		})
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		writeRawJSON(w, http.StatusOK, doc)
		return nil
	})
}

func handleSessionDelete(s sessionStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		id, err := scopedKey(r, "id")
		if err != nil {
			return err
		}
		if err := s.DeleteSession(r.Context(), id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
