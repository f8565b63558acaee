// Package access decides who may do what: the gateway's tokens and their
// scopes, read from GATEWAY_TOKENS and GATEWAY_TOKENS_FILE, and the checks
// the routes make against them.
package access

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis-gateway/redis-gateway/internal/echo"
)

// Route is one family of data routes a token may be given.
type Route string

// The routes of a token's routes scope.
const (
	Cache     Route = "cache"     // /cache
	Session   Route = "session"   // /session
	RateLimit Route = "ratelimit" // /ratelimit
	Lock      Route = "lock"      // /lock
	PubSub    Route = "pubsub"    // /publish, /subscribe
	Redis     Route = "redis"     // /redis, the command API
)

// allRoutes is every route, in the order the docs list them.
var allRoutes = []Route{Cache, Session, RateLimit, Lock, PubSub, Redis}

// Level is what a token may do on a route: read, or read and write.
type Level uint8

// Read-only tokens cannot change anything: no PUT, DELETE, PATCH, incr,
// expire, lock acquisition or publish, and on /redis only commands Redis
// flags as reading.
const (
	Read Level = iota + 1
	Write
)

func (l Level) String() string {
	if l == Write {
		return "write"
	}
	return "read"
}

// Command classes, from Redis's own command flags and ACL categories.
const (
	ClassRead  = "read"
	ClassWrite = "write"
	ClassAdmin = "admin"
)

// Scope names, as 403 answers, logs and metrics give them.
const (
	ScopeRoutes   = "routes"
	ScopeAccess   = "access"
	ScopeKeys     = "keys"
	ScopeChannels = "channels"
	ScopeCommands = "commands"
)

// Token is one token's identity and scopes. Its secret is not kept here;
// only its name, which logs and metrics may carry.
//
// A nil *Token is the gateway with authentication off: every route, key and
// channel, and the command API's default commands.
type Token struct {
	Name string

	routes   map[Route]Level // every route, writing, when nil
	keys     []string        // globs; any key when nil, none when empty
	channels []string        // globs; any channel when nil, none when empty
	commands *Commands       // the default commands when nil
}

// Commands is the commands scope of the command API.
type Commands struct {
	// Classes admits commands by class (read, write, admin). Nil admits
	// every command the gateway serves by default, its administrative ones
	// excepted, whatever Redis's flags say.
	Classes map[string]bool
	// Allow admits commands whatever their class; Deny refuses them whatever
	// else admits them. Names are lower case: "get", or "script|flush" for
	// one subcommand.
	Allow map[string]bool
	Deny  map[string]bool
}

// FullAccess is a token of GATEWAY_TOKENS: every route, key and channel, and
// the command API's default commands.
func FullAccess(name string) *Token { return &Token{Name: name} }

// Denied is a request refused by a token's scope: 403. Its message names the
// scope and never the secret.
type Denied struct {
	Scope  string // routes, access, keys, channels or commands
	Detail string
}

func (d *Denied) Error() string { return "scope " + d.Scope + ": " + d.Detail }

func deny(scope, format string, args ...any) error {
	return &Denied{Scope: scope, Detail: fmt.Sprintf(format, args...)}
}

// Route checks that the token may use route at level.
func (t *Token) Route(r Route, l Level) error {
	if t == nil || t.routes == nil {
		return nil
	}
	got, ok := t.routes[r]
	switch {
	case !ok:
		return deny(ScopeRoutes, "this token may not use the %s routes", r)
	case got < l:
		return deny(ScopeAccess, "this token may only read on the %s routes", r)
	}
	return nil
}

// Level is what the token may do on route r, when it may use it at all.
func (t *Token) Level(r Route) Level {
	if t == nil || t.routes == nil {
		return Write
	}
	return t.routes[r]
}

// RestrictsKeys reports whether the token is limited to some keys.
func (t *Token) RestrictsKeys() bool { return t != nil && t.keys != nil }

// RestrictsChannels reports whether the token is limited to some channels.
func (t *Token) RestrictsChannels() bool { return t != nil && t.channels != nil }

// Keys checks that the token may use every key; one outside its globs
// refuses them all.
func (t *Token) Keys(keys ...string) error {
	if !t.RestrictsKeys() {
		return nil
	}
	for _, k := range keys {
		if !matchAny(t.keys, k) {
			return deny(ScopeKeys, "key %s is outside this token's keys", echo.Quote(k))
		}
	}
	return nil
}

// KeyPattern checks that every key pattern can match (KEYS, SCAN MATCH) is
// within the token's keys.
func (t *Token) KeyPattern(pattern string) error {
	if !t.RestrictsKeys() || withinAny(t.keys, pattern) {
		return nil
	}
	return deny(ScopeKeys, "pattern %s can match keys outside this token's keys", echo.Quote(pattern))
}

// Channels checks that the token may use every channel.
func (t *Token) Channels(channels ...string) error {
	if !t.RestrictsChannels() {
		return nil
	}
	for _, c := range channels {
		if !matchAny(t.channels, c) {
			return deny(ScopeChannels, "channel %s is outside this token's channels", echo.Quote(c))
		}
	}
	return nil
}

// ChannelPattern checks that every channel pattern can match is within the
// token's channels, for pattern subscriptions.
func (t *Token) ChannelPattern(pattern string) error {
	if !t.RestrictsChannels() || withinAny(t.channels, pattern) {
		return nil
	}
	return deny(ScopeChannels, "pattern %s can match channels outside this token's channels", echo.Quote(pattern))
}

// Commands is the token's commands scope; nil is the default.
func (t *Token) Commands() *Commands {
	if t == nil {
		return nil
	}
	return t.commands
}

// Denies reports whether the deny list names the command, given as its lower
// case name and subcommand (or "").
func (c *Commands) Denies(name, sub string) bool {
	return c != nil && (c.Deny[name] || sub != "" && c.Deny[name+"|"+sub])
}

// Allows reports whether the allow list names the command.
func (c *Commands) Allows(name, sub string) bool {
	return c != nil && (c.Allow[name] || sub != "" && c.Allow[name+"|"+sub])
}

// ChecksClasses reports whether commands are admitted by class, which needs
// Redis's description of them.
func (c *Commands) ChecksClasses() bool { return c != nil && c.Classes != nil }

// AdmitsClass reports whether commands of class are admitted.
func (c *Commands) AdmitsClass(class string) bool {
	return c == nil || c.Classes == nil || c.Classes[class]
}

// AdmitsAdmin reports whether the command may run although the gateway
// refuses it by default (FLUSHALL, CONFIG, SCRIPT FLUSH, ...): only a
// commands scope with the admin class, or an allow list naming it, lets it.
func (c *Commands) AdmitsAdmin(name, sub string) bool {
	return c != nil && (c.Classes[ClassAdmin] || c.Allows(name, sub))
}

func matchAny(globs []string, s string) bool {
	return slices.ContainsFunc(globs, func(g string) bool { return Match(g, s) })
}

func withinAny(globs []string, pattern string) bool {
	return slices.ContainsFunc(globs, func(g string) bool { return within(pattern, g) })
}

// ContextKey is the key a request's token is found under in its context. A
// context made for the request before the token was known may answer it
// itself (ctx.Value(ContextKey{}) returning the *Token), which spares the
// request a context layer and a copy for its token.
type ContextKey struct{}

// NewContext returns ctx carrying the request's token.
func NewContext(ctx context.Context, t *Token) context.Context {
	return context.WithValue(ctx, ContextKey{}, t)
}

// FromContext returns the request's token: nil when authentication is off.
func FromContext(ctx context.Context) *Token {
	t, _ := ctx.Value(ContextKey{}).(*Token)
	return t
}
