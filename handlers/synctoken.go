package handlers

import (
	"context"
	"net/http"
)

// syncTokenStore hands out the command API's read-your-writes tokens (see
// store/synctoken.go for what they mean).
type syncTokenStore interface {
	NextSyncToken(seen string) string
	Changes(ctx context.Context, args []string) bool
}

const syncTokenHeader = "Upstash-Sync-Token"

// syncAfterCommand answers a new token after a command that may have
// written: what the command table says may change data, and every command it
// does not know. After a read the client keeps the token it sent (the
// syncToken middleware).
func syncAfterCommand(ctx context.Context, w http.ResponseWriter, s syncTokenStore, args []string) {
	if !s.Changes(ctx, args) {
		return
	}
	syncAfterBatch(w, s)
}

// syncAfterBatch answers a new token after a pipeline or transaction,
// whatever its commands.
func syncAfterBatch(w http.ResponseWriter, s syncTokenStore) {
	h := w.Header()
	h.Set(syncTokenHeader, s.NextSyncToken(h.Get(syncTokenHeader)))
}
