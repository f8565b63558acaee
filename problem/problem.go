// Package problem writes RFC 9457 problem details, the error body of every
// route except the Redis command API.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/redis-gateway/redis-gateway/internal/echo"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// StatusClientClosedRequest is nginx's status for a client that went away
// before the answer; the client never sees it, the logs and metrics do.
const StatusClientClosedRequest = 499

// typePrefix makes the short slugs into absolute URIs, as RFC 9457 asks.
const typePrefix = "urn:redis-gateway:problem:"

// Details is one problem document.
type Details struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"request_id"`
	// Scope names the scope of the token that refused the request (403).
	Scope string `json:"scope,omitempty"`
}

// Write answers with a problem document. slug names the kind of problem
// ("not-found"); detail is shown to the client and must never carry secrets.
// The request id is read back from the response headers, where the request id
// middleware put it before any handler ran.
func Write(w http.ResponseWriter, status int, slug, detail string) {
	WriteScope(w, status, slug, detail, "")
}

// WriteScope is Write with the scope of the token that refused the request.
func WriteScope(w http.ResponseWriter, status int, slug, detail, scope string) {
	d := Details{
		Type:      typePrefix + slug,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    echo.Message(detail),
		RequestID: w.Header().Get("X-Request-Id"),
		Scope:     scope,
	}
	if status == StatusClientClosedRequest {
		d.Title = "Client Closed Request"
	}
	body, _ := json.Marshal(d) // a struct of strings and an int cannot fail
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("ETag")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
