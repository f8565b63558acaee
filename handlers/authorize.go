package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/store"
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
// against the token's level and commands.
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

// commandDescriber is what checking the command API's commands needs from
// Redis: its own description of each command.
type commandDescriber interface {
	DescribeCommand(ctx context.Context, args []string) (store.CommandFacts, error)
}

// authorizeCommands checks every command against the request's token before
// any runs: one refused command refuses the whole request, pipeline and
// transaction alike. It returns the context to run them in, in which the
// administrative commands the token was granted are let through.
func authorizeCommands(ctx context.Context, d commandDescriber, cmds [][]string) (context.Context, error) {
	tok := access.FromContext(ctx)
	for i, args := range cmds {
		if err := authorizeCommand(ctx, d, tok, args); err != nil {
			var denied *access.Denied
			if len(cmds) > 1 && errors.As(err, &denied) {
				return ctx, &access.Denied{Scope: denied.Scope, Detail: fmt.Sprintf("command %d: %s", i+1, denied.Detail)}
			}
			return ctx, err
		}
	}
	if c := tok.Commands(); c != nil {
		ctx = store.WithAdmin(ctx, func(args []string) bool {
			name, sub := commandName(args)
			return c.AdmitsAdmin(name, sub)
		})
	}
	return ctx, nil
}

func commandName(args []string) (name, sub string) {
	name = strings.ToLower(args[0])
	if len(args) > 1 {
		sub = strings.ToLower(args[1])
	}
	return name, sub
}

func authorizeCommand(ctx context.Context, d commandDescriber, tok *access.Token, args []string) error {
	if tok == nil {
		return nil
	}
	name, sub := commandName(args)
	cmds := tok.Commands()
	if cmds.Denies(name, sub) {
		return &access.Denied{Scope: access.ScopeCommands, Detail: fmt.Sprintf("this token's commands deny %q", strings.Join(args[:min(2, len(args))], " "))}
	}
	if err := commandChannels(tok, name, sub, args); err != nil {
		return err
	}
	readOnly := tok.Level(access.Redis) < access.Write
	if !tok.RestrictsKeys() && !cmds.ChecksClasses() && !readOnly {
		return nil
	}

	scope := access.ScopeCommands
	if tok.RestrictsKeys() {
		scope = access.ScopeKeys
	}
	f, err := d.DescribeCommand(ctx, args)
	switch {
	case errors.Is(err, store.ErrNoCommandInfo):
		return &access.Denied{Scope: scope, Detail: "Redis does not describe its commands (COMMAND), so this token's " +
			scope + " cannot be checked; use the gateway's other routes, or a Redis that answers COMMAND"}
	case err != nil:
		return err
	case !f.Known:
		return &access.Denied{Scope: scope, Detail: fmt.Sprintf("Redis did not describe %q when the gateway read its commands, "+
			"so this token's %s cannot be checked", f.Name, scope)}
	case readOnly && f.Class != access.ClassRead:
		return &access.Denied{Scope: access.ScopeAccess, Detail: fmt.Sprintf("this token may only read on /redis, and %s is a %s command", f.Name, f.Class)}
	case !cmds.Allows(name, sub) && !cmds.AdmitsClass(f.Class):
		return &access.Denied{Scope: access.ScopeCommands, Detail: fmt.Sprintf("%s is a %s command, not in this token's commands", f.Name, f.Class)}
	}
	if tok.RestrictsKeys() {
		return commandKeys(tok, f, name, sub, args)
	}
	return nil
}

// commandKeys checks a command's keys against a key-restricted token. The
// command API adds no prefix: the globs apply to Redis keys as they are.
func commandKeys(tok *access.Token, f store.CommandFacts, name, sub string, args []string) error {
	deny := func(format string, a ...any) error {
		return &access.Denied{Scope: access.ScopeKeys, Detail: fmt.Sprintf(format, a...)}
	}
	switch {
	case f.Script && !tok.Commands().Allows(name, sub):
		return deny("a script can reach keys it does not declare: a key-restricted token runs %s only when its commands allow it", name)
	case name == "keys" && len(args) == 2:
		return tok.KeyPattern(args[1])
	case name == "scan":
		patterns := scanMatches(args)
		if len(patterns) == 0 {
			return deny("SCAN without MATCH lists every key; give a MATCH pattern within this token's keys")
		}
		for _, p := range patterns {
			if err := tok.KeyPattern(p); err != nil {
				return err
			}
		}
		return nil
	case f.Keyspace:
		return deny("%s reaches keys it does not name", f.Name)
	case !f.KeysKnown:
		return deny("cannot tell every key %s would touch (SORT with BY or GET, MIGRATE, malformed arguments)", f.Name)
	case name == "move" || name == "copy" && len(args) > 3 && slices.ContainsFunc(args[3:], func(a string) bool { return strings.EqualFold(a, "db") }):
		return deny("%s into another database leaves this token's reach", name)
	}
	return tok.Keys(f.Keys...)
}

// commandChannels checks the channels of the pub/sub commands against a
// channel-restricted token.
func commandChannels(tok *access.Token, name, sub string, args []string) error {
	if !tok.RestrictsChannels() {
		return nil
	}
	switch {
	case (name == "publish" || name == "spublish") && len(args) > 1:
		return tok.Channels(args[1])
	case name == "pubsub" && (sub == "channels" || sub == "shardchannels"):
		pattern := "*"
		if len(args) > 2 {
			pattern = args[2]
		}
		return tok.ChannelPattern(pattern)
	case name == "pubsub" && (sub == "numsub" || sub == "shardnumsub"):
		return tok.Channels(args[2:]...)
	}
	return nil
}

// scanMatches returns SCAN's MATCH patterns. Its options come in pairs
// after the cursor (MATCH, COUNT, TYPE), read as Redis reads them, so a
// value that spells "match" is not taken for the option.
func scanMatches(args []string) []string {
	var patterns []string
	for i := 2; i+1 < len(args); i += 2 {
		if strings.EqualFold(args[i], "match") {
			patterns = append(patterns, args[i+1])
		}
	}
	return patterns
}
