package commandapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis-gateway/redis-gateway/access"
)

// Policy is what a request may do on the command API: its token's scopes.
// It is passed explicitly to every check and every run, never carried in a
// context.
type Policy struct {
	tok *access.Token // nil: authentication off, the default commands
}

// PolicyOf is the policy of a request made with tok (nil when
// authentication is off).
func PolicyOf(tok *access.Token) Policy { return Policy{tok: tok} }

// NeedsTable reports whether checking a command under p needs Redis's
// description of it: to know its keys, its class, or whether it only reads.
func (p Policy) NeedsTable() bool {
	return p.tok.RestrictsKeys() || p.tok.Commands().ChecksClasses() || p.tok.Level(access.Redis) < access.Write
}

// admitsAdmin reports whether the gateway's default refusal of
// administrative commands (FLUSHALL, CONFIG, SCRIPT FLUSH, ...) is lifted.
func (p Policy) admitsAdmin(name, sub string) bool {
	return p.tok.Commands().AdmitsAdmin(name, sub)
}

// Authorize checks every command against p before any runs: one refused
// command refuses the whole request, pipeline and transaction alike. The
// error is an *access.Denied, or the failure to ask Redis for keys.
func (t *Table) Authorize(ctx context.Context, p Policy, cmds [][]string) error {
	for i, args := range cmds {
		if err := t.authorize(ctx, p, args); err != nil {
			var denied *access.Denied
			if len(cmds) > 1 && errors.As(err, &denied) {
				return &access.Denied{Scope: denied.Scope, Detail: fmt.Sprintf("command %d: %s", i+1, denied.Detail)}
			}
			return err
		}
	}
	return nil
}

func (t *Table) authorize(ctx context.Context, p Policy, args []string) error {
	tok := p.tok
	if tok == nil || len(args) == 0 {
		return nil
	}
	// Nothing below refuses a command to a token that lists no commands,
	// restricts no channels and needs no table: the full-access tokens
	// most requests carry need no lookup.
	if tok.Commands() == nil && !tok.RestrictsChannels() && !p.NeedsTable() {
		return nil
	}
	c := t.Lookup(args)
	name, sub := c.base, c.sub
	cmds := tok.Commands()
	if cmds.Denies(name, sub) {
		return &access.Denied{Scope: access.ScopeCommands, Detail: fmt.Sprintf("this token's commands deny %q", strings.Join(args[:min(2, len(args))], " "))}
	}
	// A script can run any command, denied ones included: while the deny
	// list is not empty, scripts run only when allowed by name.
	if c.Reach == ReachScript && cmds != nil && len(cmds.Deny) > 0 && !cmds.Allows(name, sub) {
		return &access.Denied{Scope: access.ScopeCommands, Detail: fmt.Sprintf(
			"a script can run the commands this token's commands deny: %s needs an allow naming it", name)}
	}
	if err := commandChannels(tok, name, sub, args); err != nil {
		return err
	}
	if !p.NeedsTable() {
		return nil
	}

	scope := access.ScopeCommands
	if tok.RestrictsKeys() {
		scope = access.ScopeKeys
	}
	readOnly := tok.Level(access.Redis) < access.Write
	switch {
	case !t.Described():
		return &access.Denied{Scope: scope, Detail: "Redis does not describe its commands (COMMAND), so this token's " +
			scope + " cannot be checked; use the gateway's other routes, or a Redis that answers COMMAND"}
	case !c.Known:
		return &access.Denied{Scope: scope, Detail: fmt.Sprintf("Redis did not describe %q when the gateway read its commands, "+
			"so this token's %s cannot be checked", c.Name, scope)}
	case readOnly && c.Class != access.ClassRead:
		return &access.Denied{Scope: access.ScopeAccess, Detail: fmt.Sprintf("this token may only read on /redis, and %s is a %s command", c.Name, c.Class)}
	case !cmds.Allows(name, sub) && !cmds.AdmitsClass(c.Class):
		return &access.Denied{Scope: access.ScopeCommands, Detail: fmt.Sprintf("%s is a %s command, not in this token's commands", c.Name, c.Class)}
	}
	if tok.RestrictsKeys() {
		return t.commandKeys(ctx, tok, c, args)
	}
	return nil
}

// commandKeys checks a command's keys against a key-restricted token. The
// command API adds no prefix: the globs apply to Redis keys as they are.
func (t *Table) commandKeys(ctx context.Context, tok *access.Token, c Command, args []string) error {
	deny := func(format string, a ...any) error {
		return &access.Denied{Scope: access.ScopeKeys, Detail: fmt.Sprintf(format, a...)}
	}
	name, sub := c.base, c.sub
	allowed := tok.Commands().Allows(name, sub)
	switch {
	case c.Reach == ReachScript && !allowed:
		return deny("a script can reach keys it does not declare: a key-restricted token runs %s only when its commands allow it", name)
	case c.Reach == ReachServer && !allowed:
		return deny("%s reaches state every user of this Redis shares, not only keys: a key-restricted token runs it only when its commands allow it",
			strings.ReplaceAll(c.Name, "|", " "))
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
	case c.Reach == ReachKeyspace:
		return deny("%s reaches keys it does not name", c.Name)
	case name == "move" || name == "copy" && len(args) > 3 && slices.ContainsFunc(args[3:], func(a string) bool { return strings.EqualFold(a, "db") }):
		return deny("%s into another database leaves this token's reach", name)
	}
	keys, exact, err := t.Keys(ctx, c, args)
	switch {
	case err != nil:
		return err
	case !exact:
		return deny("cannot tell every key %s would touch (a keyword given twice, SORT with BY or GET, MIGRATE, malformed arguments)", c.Name)
	}
	return tok.Keys(keys...)
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
