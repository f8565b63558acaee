package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/internal/commandapi"
	"github.com/redis-gateway/redis-gateway/internal/echo"
	"github.com/redis-gateway/redis-gateway/internal/jsonquote"
	"github.com/redis-gateway/redis-gateway/store"
)

// commandStore is what the Upstash-compatible command API needs from Redis.
// Each checks its commands against the policy before any runs.
type commandStore interface {
	syncTokenStore
	Command(ctx context.Context, p store.Policy, args []string) (store.Reply, error)
	Pipeline(ctx context.Context, p store.Policy, cmds [][]string) ([]store.Result, error)
	Transaction(ctx context.Context, p store.Policy, cmds [][]string) ([]store.Result, error)
}

// policy is the command API policy of the request: its token's scopes.
func policy(r *http.Request) store.Policy {
	return commandapi.PolicyOf(access.FromContext(r.Context()))
}

// replyFormat is how a reply goes back: the protocol's JSON, with or without
// base64 strings, or raw RESP2.
type replyFormat struct {
	base64 bool
	resp2  bool
}

func readReplyFormat(r *http.Request) (replyFormat, error) {
	f := replyFormat{base64: strings.EqualFold(r.Header.Get("Upstash-Encoding"), "base64")}
	switch v := r.Header.Get("Upstash-Response-Format"); strings.ToLower(v) {
	case "", "json":
	case "resp2":
		if f.base64 {
			return f, commandBadRequest("Upstash-Response-Format: resp2 cannot be combined with Upstash-Encoding: base64")
		}
		f.resp2 = true
	default:
		return f, commandBadRequest("unknown Upstash-Response-Format %q: want json or resp2", v)
	}
	return f, nil
}

// handleCommandBody serves POST /redis: one command as a JSON array.
func handleCommandBody(s commandStore) http.Handler {
	return commandHandler(func(w http.ResponseWriter, r *http.Request) error {
		f, err := readReplyFormat(r)
		if err != nil {
			return err
		}
		b, err := readBody(r, commandBadRequest)
		if err != nil {
			return err
		}
		args, ok := scanCommand(b)
		if !ok {
			var raw []any
			if err := decodeCommandJSON(b, &raw); err != nil {
				return err
			}
			if args, err = commandArgs(raw, ""); err != nil {
				return err
			}
		}
		return runCommand(w, r, s, f, args)
	})
}

// handleCommandPath serves /redis/{command}/{args...}: arguments are the
// percent-decoded path segments, then a POST or PUT body, then NAME value
// pairs from the query.
func handleCommandPath(s commandStore) http.Handler {
	return commandHandler(func(w http.ResponseWriter, r *http.Request) error {
		f, err := readReplyFormat(r)
		if err != nil {
			return err
		}
		args, err := pathArgs(r)
		if err != nil {
			return err
		}
		return runCommand(w, r, s, f, args)
	})
}

// runCommand runs one command under the request's policy and answers with
// its reply; both single-command forms end here.
func runCommand(w http.ResponseWriter, r *http.Request, s commandStore, f replyFormat, args []string) error {
	reply, err := s.Command(r.Context(), policy(r), args)
	if err != nil {
		return err
	}
	syncAfterCommand(r.Context(), w, s, args)
	writeReply(w, f, reply)
	return nil
}

// handlePipeline serves POST /redis/pipeline: commands run in order, not
// atomically, each with its own result or error, always 200.
func handlePipeline(s commandStore) http.Handler {
	return handleBatch(s, commandStore.Pipeline)
}

// handleMultiExec serves POST /redis/multi-exec: the commands as one MULTI
// ... EXEC transaction. A transaction rejected as a whole is one error, 400.
func handleMultiExec(s commandStore) http.Handler {
	return handleBatch(s, commandStore.Transaction)
}

// handleBatch reads a list of commands and runs them all with exec under
// the request's policy, which checks every one of them before any runs.
func handleBatch(s commandStore, exec func(commandStore, context.Context, store.Policy, [][]string) ([]store.Result, error)) http.Handler {
	return commandHandler(func(w http.ResponseWriter, r *http.Request) error {
		f, cmds, err := readBatch(r)
		if err != nil {
			return err
		}
		results, err := exec(s, r.Context(), policy(r), cmds)
		if err != nil {
			return err
		}
		syncAfterBatch(w, s)
		writeResults(w, f, results)
		return nil
	})
}

func readBatch(r *http.Request) (replyFormat, [][]string, error) {
	f, err := readReplyFormat(r)
	if err != nil {
		return f, nil, err
	}
	b, err := readBody(r, commandBadRequest)
	if err != nil {
		return f, nil, err
	}
	if cmds, ok := scanCommands(b); ok {
		return f, cmds, nil
	}
	var raw [][]any
	if err := decodeCommandJSON(b, &raw); err != nil {
		return f, nil, err
	}
	if len(raw) == 0 {
		return f, nil, commandBadRequest("the body must be a non-empty array of commands")
	}
	cmds := make([][]string, len(raw))
	for i, c := range raw {
		if cmds[i], err = commandArgs(c, fmt.Sprintf("command %d: ", i+1)); err != nil {
			return f, nil, err
		}
	}
	return f, cmds, nil
}

// decodeCommandJSON decodes a body scanCommand or scanCommands did not
// read into v, numbers kept as written, and refuses what is not a command.
// The Content-Type is not checked: the protocol's clients send JSON, and
// curl's default form type must not turn a command into a 415.
func decodeCommandJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return commandBadRequest("the body must be a JSON array of commands: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return commandBadRequest("the body must be one JSON array")
	}
	return nil
}

// commandArgs turns a decoded JSON command into arguments: strings as they
// are, numbers exactly as written, booleans as "true" and "false".
func commandArgs(raw []any, where string) ([]string, error) {
	if len(raw) == 0 {
		return nil, commandBadRequest("%sa command needs at least its name", where)
	}
	args := make([]string, len(raw))
	for i, v := range raw {
		switch v := v.(type) {
		case string:
			args[i] = v
		case json.Number:
			args[i] = v.String()
		case bool:
			args[i] = strconv.FormatBool(v)
		default:
			return nil, commandBadRequest("%sargument %d must be a string, number or boolean", where, i+1)
		}
	}
	return args, nil
}

// pathArgs reads the path form. The router matches on the escaped path, so
// each segment is decoded here, exactly once.
func pathArgs(r *http.Request) ([]string, error) {
	name, err := url.PathUnescape(chi.URLParam(r, "command"))
	if err != nil {
		return nil, commandBadRequest("invalid percent-encoding in the command name")
	}
	rest := chi.URLParam(r, "*")
	// Room for every segment, the body and a few query arguments: one
	// allocation for the usual request.
	args := make([]string, 1, 4+strings.Count(rest, "/"))
	args[0] = name
	if rest != "" {
		for i := 2; ; i++ {
			seg, more, found := strings.Cut(rest, "/")
			a, err := url.PathUnescape(seg)
			if err != nil {
				return nil, commandBadRequest("invalid percent-encoding in path segment %d", i)
			}
			args = append(args, a)
			if !found {
				break
			}
			rest = more
		}
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		b, err := readBody(r, commandBadRequest)
		if err != nil {
			return nil, err
		}
		if len(b) > 0 {
			args = append(args, string(b))
		}
	}
	return queryArgs(args, r.URL.RawQuery)
}

// queryArgs appends ?EX=100&NX to args as EX 100 NX, in the order sent.
// _token is the credential, never an argument.
func queryArgs(args []string, raw string) ([]string, error) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, hasValue := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, commandBadRequest("malformed query string")
		}
		if name == "_token" {
			continue
		}
		args = append(args, name)
		if hasValue {
			value, err := url.QueryUnescape(v)
			if err != nil {
				return nil, commandBadRequest("malformed query string")
			}
			args = append(args, value)
		}
	}
	return args, nil
}

// commandBadRequest is a 400 in the command API's style: the message reads
// like a Redis error.
func commandBadRequest(format string, args ...any) error {
	return &httpError{Status: http.StatusBadRequest, Slug: "bad-request", Message: "ERR " + fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error string `json:"error"`
}

func writeReply(w http.ResponseWriter, f replyFormat, reply store.Reply) {
	if f.resp2 {
		writeRESP2(w, appendRESP2(nil, reply))
		return
	}
	bp := getReplyBuf()
	b := append(*bp, `{"result":`...)
	b = appendJSONReply(b, reply, f.base64)
	b = append(b, '}')
	writeRawJSON(w, http.StatusOK, b)
	putReplyBuf(bp, b)
}

func writeResults(w http.ResponseWriter, f replyFormat, results []store.Result) {
	if f.resp2 {
		b := fmt.Appendf(nil, "*%d\r\n", len(results))
		for _, res := range results {
			if res.Err != nil {
				b = appendRESP2(b, store.ReplyError(entryError(res.Err)))
			} else {
				b = appendRESP2(b, res.Reply)
			}
		}
		writeRESP2(w, b)
		return
	}
	// [{"result": ...}, {"error": ...}, ...], one per command, in order.
	bp := getReplyBuf()
	b := append(*bp, '[')
	for i, res := range results {
		if i > 0 {
			b = append(b, ',')
		}
		if res.Err != nil {
			b = append(b, `{"error":`...)
			b = jsonquote.Append(b, entryError(res.Err))
		} else {
			b = append(b, `{"result":`...)
			b = appendJSONReply(b, res.Reply, f.base64)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	writeRawJSON(w, http.StatusOK, b)
	putReplyBuf(bp, b)
}

// entryError is the text of one failed command in a pipeline: Redis's own,
// or what kept Redis from answering.
func entryError(err error) string {
	var cerr *store.CommandError
	switch {
	case errors.As(err, &cerr):
		return cerr.Msg
	case errors.Is(err, store.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "ERR redis timeout"
	default:
		return "ERR redis unavailable"
	}
}

// appendRESP2 encodes a reply as RESP2. Simple-string replies (OK, PONG)
// arrive from go-redis as strings, like bulk strings, so every string is
// written as a bulk string; RESP2 clients read both the same way.
func appendRESP2(b []byte, r store.Reply) []byte {
	switch v := r.(type) {
	case nil:
		return append(b, "$-1\r\n"...)
	case int64:
		return fmt.Appendf(b, ":%d\r\n", v)
	case string:
		b = fmt.Appendf(b, "$%d\r\n", len(v))
		b = append(b, v...)
		return append(b, "\r\n"...)
	case store.ReplyError:
		// An error line cannot hold a line break.
		return append(append(append(b, '-'), strings.NewReplacer("\r", " ", "\n", " ").Replace(string(v))...), "\r\n"...)
	case []store.Reply:
		b = fmt.Appendf(b, "*%d\r\n", len(v))
		for _, e := range v {
			b = appendRESP2(b, e)
		}
		return b
	default:
		return appendRESP2(b, fmt.Sprint(v))
	}
}

func writeRESP2(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// writeCommandJSON is writeJSON without HTML escaping: the command API
// returns stored values, and "<" should arrive as "<".
func writeCommandJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Replies hold only strings, integers, nil and arrays of them.
		panic("encode reply: " + err.Error())
	}
	writeRawJSON(w, status, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// syncToken answers the upstash-sync-token header clients send for
// read-your-writes. The gateway reads from the primary it writes to, so every
// token is already satisfied; it echoes a well-formed one, else gives "0".
func syncToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := r.Header.Get("Upstash-Sync-Token")
		if !echo.Verbatim(token) {
			token = "0"
		}
		w.Header().Set("Upstash-Sync-Token", token)
		next.ServeHTTP(w, r)
	})
}

// commandNotFound and commandMethodNotAllowed keep the protocol's envelope
// for paths and methods the command API does not serve.
func commandNotFound(w http.ResponseWriter, r *http.Request) {
	writeCommandJSON(w, http.StatusNotFound, errorBody{Error: "ERR no such route"})
}

func commandMethodNotAllowed(routes chi.Routes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		path := "/"
		if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePath != "" {
			path = rctx.RoutePath
		}
		w.Header().Set("Allow", allowedMethods(routes, path))
		writeCommandJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "ERR " + r.Method + " is not allowed here"})
	}
}

// writeCommandUnauthorized answers a 401 on the command API: the Upstash
// clients parse every error body as {"error": ...}.
func writeCommandUnauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	writeCommandJSON(w, http.StatusUnauthorized, errorBody{Error: "ERR " + msg})
}
