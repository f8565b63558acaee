package store

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"sync"
)

// redisScriptFlags are the shebang flags Redis 7 and Valkey accept. The
// hosted Upstash service knows more (allow-key-locking, which
// @upstash/ratelimit puts on every script); Redis rejects a script carrying
// one with "Unexpected flag in script shebang".
var redisScriptFlags = map[string]bool{
	"no-writes": true, "allow-oom": true, "allow-stale": true, "no-cluster": true, "allow-cross-slot-keys": true,
}

// compatScript returns src with the shebang flags Redis does not know
// removed, and whether it changed anything. The shebang line itself stays,
// even with no flag left: a script with a shebang runs without Redis's
// compatibility mode, as it would on the hosted service, and line numbers in
// error messages stay right.
func compatScript(src string) (string, bool) {
	if !strings.HasPrefix(src, "#!") {
		return src, false
	}
	end := strings.IndexByte(src, '\n')
	if end < 0 {
		return src, false // Redis answers "Invalid script shebang" itself
	}
	line := src[:end]
	if strings.ContainsAny(line, `"'`) {
		return src, false // quoted shebang parts: leave them for Redis to judge
	}
	parts := strings.Fields(line)
	if len(parts) == 0 || parts[0] != "#!lua" {
		return src, false // another engine: Redis's to refuse
	}
	changed := false
	for i := 1; i < len(parts); i++ {
		list, ok := strings.CutPrefix(parts[i], "flags=")
		if !ok {
			continue
		}
		var keep []string
		for _, f := range strings.Split(list, ",") {
			if redisScriptFlags[f] {
				keep = append(keep, f)
			} else {
				changed = true
			}
		}
		parts[i] = "flags=" + strings.Join(keep, ",")
		if len(keep) == 0 {
			parts[i] = ""
		}
	}
	if !changed {
		return src, false
	}
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ") + src[end:], true
}

// scriptSHA is the SHA-1 Redis names a script by.
func scriptSHA(src string) string {
	sum := sha1.Sum([]byte(src))
	return hex.EncodeToString(sum[:])
}

// scriptAliases maps the SHA-1 a client computed over its script to the
// SHA-1 of the script Redis actually holds, once compatScript changed it, so
// EVALSHA with the client's SHA finds the script without a NOSCRIPT round
// trip on every call. It holds at most max entries and forgets the oldest
// first; a forgotten alias costs the client one NOSCRIPT and EVAL.
type scriptAliases struct {
	mu    sync.Mutex
	m     map[string]string
	order []string // ring of keys in insertion order
	next  int
}

func newScriptAliases(max int) *scriptAliases {
	return &scriptAliases{m: make(map[string]string, max), order: make([]string, 0, max)}
}

func (a *scriptAliases) put(clientSHA, loadedSHA string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.m[clientSHA]; ok || cap(a.order) == 0 {
		return
	}
	if len(a.order) < cap(a.order) {
		a.order = append(a.order, clientSHA)
	} else {
		delete(a.m, a.order[a.next])
		a.order[a.next] = clientSHA
		a.next = (a.next + 1) % len(a.order)
	}
	a.m[clientSHA] = loadedSHA
}

// get returns the SHA to send to Redis for sha: its alias, or sha itself.
func (a *scriptAliases) get(sha string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if loaded, ok := a.m[strings.ToLower(sha)]; ok {
		return loaded
	}
	return sha
}
