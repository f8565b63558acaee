package handlers_test

import (
	"strconv"
	"testing"
	"time"
)

// The read-your-writes token changes with every write, pipeline,
// transaction and script call, grows along a client's requests, and stays as
// the client sent it on reads.
func TestCommandSyncTokenChangesWithWrites(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := startGateway(t, b)
		token := ""
		step := func(what string, req request, changes bool) {
			t.Helper()
			if token != "" {
				req = with(req, "Upstash-Sync-Token", token)
			}
			got := g.must(req, 200).header.Get("Upstash-Sync-Token")
			switch {
			case !changes && token != "" && got != token:
				t.Errorf("%s: token %q became %q, want it kept on a read", what, token, got)
			case changes && (got == token || got == "0"):
				t.Errorf("%s: token stayed %q, want a new one after a write", what, got)
			case changes && token != "" && parseToken(t, got) <= parseToken(t, token):
				t.Errorf("%s: token %q after %q, want it to grow", what, got, token)
			}
			token = got
		}
		step("SET", post("/redis", `["SET","{ryw}a","1"]`), true)
		step("GET", post("/redis", `["GET","{ryw}a"]`), false)
		step("INCR by path", post("/redis/incr/{ryw}a", ""), true)
		step("GET by path", request{method: "GET", path: "/redis/get/%7Bryw%7Da"}, false)
		step("pipeline", post("/redis/pipeline", `[["INCR","{ryw}a"],["GET","{ryw}a"]]`), true)
		step("read-only pipeline", post("/redis/pipeline", `[["GET","{ryw}a"]]`), true)
		step("multi-exec", post("/redis/multi-exec", `[["INCR","{ryw}a"],["INCR","{ryw}b"]]`), true)
		step("EVAL", post("/redis", `["EVAL","return redis.call('INCR', KEYS[1])","1","{ryw}a"]`), true)
		step("DEL", post("/redis", `["DEL","{ryw}a"]`), true)

		// A token from a gateway replica whose clock runs ahead: the next
		// token is above it, so the client's tokens never go back.
		ahead := strconv.FormatInt(time.Now().Add(time.Hour).UnixMicro(), 10)
		token = ahead
		step("SET after a token from ahead", post("/redis", `["SET","{ryw}a","2"]`), true)
		if want := strconv.FormatInt(parseToken(t, ahead)+1, 10); token != want {
			t.Errorf("token after %s = %s, want %s", ahead, token, want)
		}
	})
}

func parseToken(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("sync token %q is not a number: %v", s, err)
	}
	return n
}
