package handlers

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// sessionStore is what the session routes need from Redis.
type sessionStore interface {
	CreateSession(ctx context.Context, doc []byte, ttl time.Duration) (string, error)
	PutSession(ctx context.Context, id string, doc []byte, ttl time.Duration) (bool, error)
	GetSession(ctx context.Context, id string, touch bool) ([]byte, error)
	DeleteSession(ctx context.Context, id string) error
}

type sessionCreated struct {
	ID  string `json:"id"`
	TTL int64  `json:"ttl"`
}

func handleSessionCreate(s sessionStore, ttls TTLs) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		q, err := query(r)
		if err != nil {
			return err
		}
		ttl, err := ttlParam(q, "ttl", ttls.Session, ttls.Max)
		if err != nil {
			return err
		}
		doc, err := readJSONObject(r)
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

func handleSessionPut(s sessionStore, ttls TTLs) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathKey(r, "id")
		if err != nil {
			return err
		}
		q, err := query(r)
		if err != nil {
			return err
		}
		ttl, err := ttlParam(q, "ttl", ttls.Session, ttls.Max)
		if err != nil {
			return err
		}
		doc, err := readJSONObject(r)
		if err != nil {
			return err
		}
		created, err := s.PutSession(r.Context(), id, doc, ttl)
		if err != nil {
			return err
		}
		if created {
			w.WriteHeader(http.StatusCreated)
		} else {
			w.WriteHeader(http.StatusNoContent)
		}
		return nil
	})
}

// handleSessionGet returns the session and, unless ?touch=false, slides its
// expiry back to the session's own TTL.
func handleSessionGet(s sessionStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathKey(r, "id")
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

func handleSessionDelete(s sessionStore) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathKey(r, "id")
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
