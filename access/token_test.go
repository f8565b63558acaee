package access

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

const (
	secretA = "aaaaaaaaaaaaaaaaaaaaaaaa"
	secretB = "bbbbbbbbbbbbbbbbbbbbbbbb"
)

func sha(s string) string {
	d := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(d[:])
}

func mustSet(t *testing.T, env []string, file string) *Set {
	t.Helper()
	s, err := NewSet(env, []byte(file))
	if err != nil {
		t.Fatalf("NewSet: %v", err)
	}
	return s
}

func TestLookup(t *testing.T) {
	s := mustSet(t, []string{"env-secret"}, `{"tokens": [
		{"name": "plain", "secret": "`+secretA+`"},
		{"name": "hashed", "secret": "SHA256:`+strings.ToUpper(sha(secretB)[len("sha256:"):])+`"}
	]}`)
	tests := []struct {
		secret, want string
	}{
		{"env-secret", "GATEWAY_TOKENS#1"},
		{secretA, "plain"},
		{secretB, "hashed"},
		{sha(secretB), ""}, // the digest is not the secret
		{secretA[:20], ""},
		{secretA + "a", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got := ""
		if tok := s.Lookup(tt.secret); tok != nil {
			got = tok.Name
		}
		if got != tt.want {
			t.Errorf("Lookup(%q) = %q, want %q", tt.secret, got, tt.want)
		}
	}
	if got := strings.Join(s.Names(), ","); got != "GATEWAY_TOKENS#1,plain,hashed" {
		t.Errorf("Names() = %s", got)
	}
}

func TestParseFileErrors(t *testing.T) {
	tok := func(members string) string {
		return `{"tokens": [{"name": "svc", "secret": "` + secretA + `"` + members + `}]}`
	}
	tests := []struct {
		name, file, want string
	}{
		{"not JSON", `{"tokens": [`, "not a tokens file"},
		{"no tokens member", `{}`, `no "tokens" array`},
		{"two documents", `{"tokens": []} {}`, "more than one JSON value"},
		{"unknown member", tok(`, "key": ["a*"]`), `unknown field "key"`},
		{"missing name", `{"tokens": [{"secret": "` + secretA + `"}]}`, "token 1: name"},
		{"bad name", `{"tokens": [{"name": "a b", "secret": "` + secretA + `"}]}`, "token 1: name"},
		{"short secret", `{"tokens": [{"name": "svc", "secret": "short"}]}`, "token 1 (svc): secret: 5 bytes; want at least 16"},
		{"15-byte secret", `{"tokens": [{"name": "svc", "secret": "4f9c2e7b1d6a8e0"}]}`, "token 1 (svc): secret: 15 bytes; want at least 16"},
		{"the Kubernetes template's placeholder", `{"tokens": [{"name": "svc", "secret": "replace-with-a-token"}]}`, `secret: looks like a template's placeholder (it contains "replace")`},
		{"a change-me secret", `{"tokens": [{"name": "svc", "secret": "orders-secret-Change_Me"}]}`, `it contains "changeme"`},
		{"an example secret", `{"tokens": [{"name": "svc", "secret": "EXAMPLE-4f9c2e7b1d6a"}]}`, `it contains "example"`},
		{"null keys", tok(`, "keys": null`), "token 1 (svc): keys: null"},
		{"null channels", tok(`, "channels": null`), "token 1 (svc): channels: null"},
		{"null routes", tok(`, "routes": null`), "token 1 (svc): routes: null"},
		{"null commands", tok(`, "commands": null`), "token 1 (svc): commands: null"},
		{"null deny", tok(`, "commands": {"deny": null}`), "token 1 (svc): commands.deny: null"},
		{"null access", tok(`, "access": null`), "token 1 (svc): access: null"},
		{"secret with a space", `{"tokens": [{"name": "svc", "secret": "aaaaaaaa aaaaaaaaaa"}]}`, "secret: spaces"},
		{"bad digest", `{"tokens": [{"name": "svc", "secret": "sha256:abc"}]}`, "64 hex digits"},
		{"unknown route", tok(`, "routes": ["cache", "admin"]`), `routes: unknown route "admin"`},
		{"empty routes", tok(`, "routes": []`), "routes: empty"},
		{"bad access", tok(`, "access": "readwrite"`), `access: "readwrite": want read or write`},
		{"bad access type", tok(`, "access": 1`), "access: want"},
		{"access for a route not given", tok(`, "routes": ["cache"], "access": {"redis": "read"}`), `access: route "redis" is not in routes`},
		{"access for an unknown route", tok(`, "access": {"nope": "read"}`), `routes: unknown route "nope"`},
		{"bad key glob", tok(`, "keys": ["orders:[a"]`), "keys[0]: has a [ with no closing ]"},
		{"empty key glob", tok(`, "keys": [""]`), "keys[0]: is empty"},
		{"bad channel glob", tok(`, "channels": ["x\\"]`), "channels[0]: ends with a lone backslash"},
		{"unknown class", tok(`, "commands": {"classes": ["read", "dangerous"]}`), `commands: classes: unknown class "dangerous"`},
		{"bad command name", tok(`, "commands": {"deny": ["get*"]}`), `commands: deny: "get*" is not a command name`},
		{"same secret twice", `{"tokens": [{"name": "a", "secret": "` + secretA + `"}, {"name": "b", "secret": "` + sha(secretA) + `"}]}`, "tokens a and b have the same secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSet(nil, []byte(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewSet: err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secretA) {
				t.Errorf("the error echoes a secret: %v", err)
			}
		})
	}
	if _, err := NewSet([]string{secretA}, []byte(tok(""))); err == nil || !strings.Contains(err.Error(), "GATEWAY_TOKENS#1 and svc") {
		t.Errorf("a file token with a GATEWAY_TOKENS secret: err = %v", err)
	}
}

func TestScopes(t *testing.T) {
	s := mustSet(t, []string{"env-secret"}, `{"tokens": [
		{"name": "all", "secret": "`+secretA+`"},
		{"name": "reader", "secret": "`+secretB+`", "access": "read"},
		{"name": "orders", "secret": "cccccccccccccccccccc", "routes": ["cache", "pubsub"], "access": {"pubsub": "read"},
		 "keys": ["orders:*", "shared"], "channels": ["orders.*"]},
		{"name": "by-access", "secret": "dddddddddddddddddddd", "access": {"lock": "write", "redis": "read"}},
		{"name": "nothing", "secret": "eeeeeeeeeeeeeeeeeeee", "keys": [], "channels": []}
	]}`)
	tok := func(secret string) *Token {
		t.Helper()
		tk := s.Lookup(secret)
		if tk == nil {
			t.Fatalf("no token for %q", secret)
		}
		return tk
	}
	type check struct {
		name  string
		err   error
		scope string // "" = allowed
	}
	var off *Token // authentication off
	orders, reader, byAccess := tok("cccccccccccccccccccc"), tok(secretB), tok("dddddddddddddddddddd")
	nothing := tok("eeeeeeeeeeeeeeeeeeee")
	checks := []check{
		{"off: any route", off.Route(Redis, Write), ""},
		{"off: any key", off.Keys("sessions:x"), ""},
		{"env: any route", tok("env-secret").Route(Lock, Write), ""},
		{"all: any route", tok(secretA).Route(PubSub, Write), ""},
		{"reader reads", reader.Route(Session, Read), ""},
		{"reader cannot write", reader.Route(Session, Write), ScopeAccess},
		{"orders writes cache", orders.Route(Cache, Write), ""},
		{"orders has no session", orders.Route(Session, Read), ScopeRoutes},
		{"orders has no redis", orders.Route(Redis, Read), ScopeRoutes},
		{"orders subscribes", orders.Route(PubSub, Read), ""},
		{"orders cannot publish", orders.Route(PubSub, Write), ScopeAccess},
		{"access object names the routes", byAccess.Route(Lock, Write), ""},
		{"access object: redis read", byAccess.Route(Redis, Write), ScopeAccess},
		{"access object: no cache", byAccess.Route(Cache, Read), ScopeRoutes},
		{"key inside", orders.Keys("orders:1"), ""},
		{"exact key", orders.Keys("shared"), ""},
		{"key outside", orders.Keys("sessions:1"), ScopeKeys},
		{"one key outside refuses all", orders.Keys("orders:1", "shared", "ordersX"), ScopeKeys},
		{"a decoded escape stays inside", orders.Keys("orders:../../sessions:x"), ""},
		{"an encoded key is not decoded again", orders.Keys("orders%3A1"), ScopeKeys},
		{"pattern inside", orders.KeyPattern("orders:eu:*"), ""},
		{"pattern outside", orders.KeyPattern("*"), ScopeKeys},
		{"channel inside", orders.Channels("orders.eu"), ""},
		{"channel outside", orders.Channels("sessions"), ScopeChannels},
		{"channel pattern inside", orders.ChannelPattern("orders.*"), ""},
		{"channel pattern outside", orders.ChannelPattern("orders*"), ScopeChannels},
		{"no keys at all", nothing.Keys("a"), ScopeKeys},
		{"no channels at all", nothing.Channels("a"), ScopeChannels},
		{"no key patterns at all", nothing.KeyPattern("a"), ScopeKeys},
	}
	for _, c := range checks {
		var d *Denied
		switch {
		case c.scope == "" && c.err != nil:
			t.Errorf("%s: %v, want allowed", c.name, c.err)
		case c.scope != "" && !errors.As(c.err, &d):
			t.Errorf("%s: err = %v, want denied by %s", c.name, c.err, c.scope)
		case c.scope != "" && d.Scope != c.scope:
			t.Errorf("%s: denied by %s (%v), want %s", c.name, d.Scope, d, c.scope)
		}
	}
}

func TestCommandsScope(t *testing.T) {
	s := mustSet(t, nil, `{"tokens": [
		{"name": "default", "secret": "`+secretA+`"},
		{"name": "classes", "secret": "`+secretB+`", "commands": {"classes": ["read"], "allow": ["EVAL", "script load"], "deny": ["keys", "CONFIG|GET"]}},
		{"name": "admin", "secret": "cccccccccccccccccccc", "commands": {"classes": ["read", "write", "admin"]}},
		{"name": "lists-only", "secret": "dddddddddddddddddddd", "commands": {"deny": ["flushdb"]}}
	]}`)
	def, classes := s.Lookup(secretA).Commands(), s.Lookup(secretB).Commands()
	admin, listsOnly := s.Lookup("cccccccccccccccccccc").Commands(), s.Lookup("dddddddddddddddddddd").Commands()
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"default checks no classes", def.ChecksClasses(), false},
		{"default admits writes", def.AdmitsClass(ClassWrite), true},
		{"default keeps admin refused", def.AdmitsAdmin("flushall", ""), false},
		{"default denies nothing", def.Denies("keys", ""), false},
		{"classes are checked", classes.ChecksClasses(), true},
		{"read admitted", classes.AdmitsClass(ClassRead), true},
		{"write refused", classes.AdmitsClass(ClassWrite), false},
		{"allow, upper case in the file", classes.Allows("eval", ""), true},
		{"allow a subcommand, written with a space", classes.Allows("script", "load"), true},
		{"allowing a subcommand is not the command", classes.Allows("script", "flush"), false},
		{"deny", classes.Denies("keys", ""), true},
		{"deny a subcommand", classes.Denies("config", "get"), true},
		{"denying a subcommand is not the command", classes.Denies("config", "set"), false},
		{"an allowed command may be administrative", classes.AdmitsAdmin("eval", ""), true},
		{"admin class admits administrative commands", admin.AdmitsAdmin("flushall", ""), true},
		{"lists alone check no classes", listsOnly.ChecksClasses(), false},
		{"lists alone keep admin refused", listsOnly.AdmitsAdmin("flushall", ""), false},
		{"lists alone deny", listsOnly.Denies("flushdb", ""), true},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}
