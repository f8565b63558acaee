// Package commandapi is the Upstash-compatible command API below HTTP: the one
// table of Redis commands (class, flags, key positions, served or refused),
// and the check of a request's commands against the policy it runs under.
package commandapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis-gateway/redis-gateway/access"
)

// ErrNoCommandInfo is a Redis that does not describe its commands (COMMAND):
// some proxies and embedded servers. Without the description the gateway
// cannot tell which keys a command touches.
var ErrNoCommandInfo = errors.New("redis does not describe its commands (COMMAND)")

// CommandError is Redis's error reply to a command, verbatim, or the
// gateway's refusal of a command in the same style.
type CommandError struct {
	Msg     string
	Refused bool // the gateway refused the command; Redis never saw it
}

func (e *CommandError) Error() string { return e.Msg }

// Table is the command table: Redis's description of its commands, read
// once, with the gateway's corrections and its own rules of what it serves.
// The zero Table (no description) still knows what the gateway serves; it
// cannot name a command's keys or class.
type Table struct {
	commands map[string]*entry // nil when Redis gave no description
	// upper names each command by its name in upper case, as clients
	// often spell it, so looking it up needs no lower-cased copy.
	upper    map[string]*entry
	keySpecs bool // Redis 7 or later: key specifications
	// getKeys asks Redis for the keys of a command whose keys the table
	// cannot locate (COMMAND GETKEYS); Redis 6 and older only.
	getKeys GetKeys
}

// GetKeys asks Redis which keys args names (COMMAND GETKEYS): the keys,
// whether they are every key, or an error when Redis could not be asked.
type GetKeys func(ctx context.Context, args []string) ([]string, bool, error)

// Described reports whether Redis described its commands to the table.
func (t *Table) Described() bool { return t != nil && t.commands != nil }

// Command is what the table says about one command a client sent.
type Command struct {
	Name string // lower case; "object|encoding" for a subcommand
	// Known: Redis describes the command (and subcommand).
	Known bool
	// Class is read, write or admin (access.Class*). Admin: Redis flags it
	// admin, or its ACL categories say @admin or @dangerous (KEYS, INFO,
	// SORT, CONFIG, ...). Write: flagged write or may_replicate, the scripts
	// and publishing commands Redis does not flag but that change data or
	// reach other clients, and SCRIPT LOAD, which grows the script cache.
	// Read: the rest. Empty when the command is not Known.
	Class string
	// ReadOnly: Redis flags it read-only, so it may be sent twice (see the
	// store's retry policy). False for everything not Known.
	ReadOnly bool
	Serve    Serving
	Reach    Reach

	entry *entry
	sub   string // the subcommand as the client spelled it, lower case
	base  string // the command name, lower case
}

// Write reports whether the command must not be sent twice: everything
// but what Redis flags read-only, so an unknown command counts as a write.
func (c Command) Write() bool { return !c.ReadOnly }

// Changes reports whether the command may change data, so that durable
// writes wait for replicas to have it: Redis flags it write (or
// may_replicate), its class is write, or Redis did not describe it.
func (c Command) Changes() bool {
	if c.entry == nil {
		return true
	}
	return c.entry.flags["write"] || c.entry.flags["may_replicate"] || c.Class == access.ClassWrite
}

// Changes is Lookup(args).Changes(), without the lookups Changes does not
// need: it is asked after every command.
func (t *Table) Changes(args []string) bool {
	if !t.Described() {
		return true
	}
	e := t.commands[t.Lower(args[0])]
	if e != nil && len(e.subcommands) > 0 && len(args) > 1 {
		e = e.subcommands[e.name+"|"+strings.ToLower(args[1])]
	}
	if e == nil {
		return true
	}
	return Command{entry: e, Class: e.cls}.Changes()
}

// Lookup finds args (command name first) in the table.
func (t *Table) Lookup(args []string) Command {
	name := t.Lower(args[0])
	c := Command{Name: name, base: name}
	if len(args) > 1 {
		c.sub = strings.ToLower(args[1])
	}
	c.Serve = serving(name, c.sub, args)
	c.Reach = staticReach(name, c.sub)
	if !t.Described() {
		return c
	}
	e := t.commands[name]
	if e == nil {
		return c
	}
	if len(e.subcommands) > 0 && len(args) > 1 {
		c.Name = name + "|" + c.sub
		if e = e.subcommands[c.Name]; e == nil {
			return c
		}
	}
	c.entry, c.Known = e, true
	c.ReadOnly = e.flags["readonly"]
	c.Class = e.cls
	if c.Reach == ReachKeys && e.serverWide {
		c.Reach = ReachServer
	}
	if c.Reach == ReachKeys && e.keyspace {
		c.Reach = ReachKeyspace
	}
	return c
}

// Keys returns the keys args names and whether they are every key it
// touches. A command whose key positions are ambiguous (a keyword that may
// repeat where Redis reads only one of its occurrences, SORT's BY and GET
// patterns, MIGRATE, arguments that do not parse) is not exact.
func (t *Table) Keys(ctx context.Context, c Command, args []string) ([]string, bool, error) {
	e := c.entry
	if e == nil {
		return nil, false, nil
	}
	switch {
	case c.base == "sort" || c.base == "sort_ro":
		// BY and GET read keys named by the sorted values: no server lists
		// those.
		return nil, false, nil
	case t.keySpecs && (len(e.specs) > 0 || !e.flags["movablekeys"]):
		keys, exact := e.keysFromSpecs(args)
		return keys, exact, nil
	case !t.keySpecs && !e.flags["movablekeys"]:
		keys, exact := e.keysFromRange(args)
		return keys, exact, nil
	case t.getKeys != nil:
		return t.getKeys(ctx, args)
	}
	return nil, false, nil
}

// Label is the metric label for a command name: the name in lower case
// when Redis (or, without its description, the gateway) knows it, "other"
// otherwise, so clients cannot grow the number of series.
func (t *Table) Label(name string) string {
	name = t.Lower(name)
	if t.Described() {
		if t.commands[name] != nil {
			return name
		}
		return "other"
	}
	return Label(name)
}

// Each calls fn with every command and subcommand Redis described, in no
// particular order: tests cover the table with it.
func (t *Table) Each(fn func(name string, keySpecs int, flags []string)) {
	if !t.Described() {
		return
	}
	var visit func(e *entry)
	visit = func(e *entry) {
		var flags []string
		for f := range e.flags {
			flags = append(flags, f)
		}
		fn(e.name, len(e.specs), flags)
		for _, s := range e.subcommands {
			visit(s)
		}
	}
	for _, e := range t.commands {
		visit(e)
	}
}

// entry is Redis's description of one command or subcommand.
type entry struct {
	name       string
	flags      map[string]bool
	categories map[string]bool
	// first, last and step locate keys before Redis 7; from Redis 7 on,
	// specs does.
	first, last, step int
	specs             []keySpec
	subcommands       map[string]*entry // "object|encoding"

	// What Lookup says of every command a client sends, worked out once
	// from the above (derive).
	cls string
	// serverWide: an administrative command that names no key, about the
	// state of the whole server (SLOWLOG, LATENCY, INFO, CONFIG, ...), not
	// of some keys.
	serverWide bool
	keyspace   bool // it reaches keys it does not name
}

// derive fills in what the entry's description implies.
func (e *entry) derive() {
	e.cls = e.class()
	e.serverWide = e.cls == access.ClassAdmin && e.first == 0 && len(e.specs) == 0 && !e.flags["movablekeys"] &&
		!e.categories["@keyspace"] && !keyspaceCommands[e.name]
	e.keyspace = keyspaceCommands[e.name] || e.categories["@keyspace"] && e.first == 0 && len(e.specs) == 0 && !e.flags["movablekeys"]
}

func (e *entry) class() string {
	switch {
	case classCorrections[e.name] != "":
		return classCorrections[e.name]
	case e.flags["admin"] || e.categories["@admin"] || e.categories["@dangerous"]:
		return access.ClassAdmin
	case e.flags["write"] || e.flags["may_replicate"],
		scriptCommands[e.name] && !e.flags["readonly"],
		e.flags["pubsub"] && (e.name == "publish" || e.name == "spublish"):
		return access.ClassWrite
	}
	return access.ClassRead
}

// Lower is a command's name in lower case.
func (t *Table) Lower(name string) string {
	if t != nil {
		if e, ok := t.upper[name]; ok {
			return e.name
		}
	}
	return strings.ToLower(name)
}

// LowerShared is the table's own copy of Lower(name) for a name the table
// knows in upper case, nil for any other: a caller that sends the name may
// point to it rather than copy it, and must not change it.
func (t *Table) LowerShared(name string) *string {
	if t != nil {
		if e, ok := t.upper[name]; ok {
			return &e.name
		}
	}
	return nil
}

// Parse builds the table from the reply to COMMAND (RESP2 or RESP3): one
// array per command, [name, arity, flags, first, last, step] up to Redis 5, then ACL
// categories (6), tips, key specifications and subcommands (7). getKeys
// serves the commands whose keys the reply cannot locate.
func Parse(reply any, getKeys GetKeys) (*Table, error) {
	list, ok := reply.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("%w: the reply to COMMAND is not a list of commands", ErrNoCommandInfo)
	}
	t := &Table{commands: make(map[string]*entry, len(list)), upper: make(map[string]*entry, len(list)), getKeys: getKeys}
	for _, v := range list {
		e, err := parseEntry(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoCommandInfo, err)
		}
		t.commands[e.name] = e
		t.upper[strings.ToUpper(e.name)] = e
		t.keySpecs = t.keySpecs || e.specs != nil
	}
	return t, nil
}

func parseEntry(v any) (*entry, error) {
	a, ok := v.([]any)
	if !ok || len(a) < 6 {
		return nil, fmt.Errorf("a command in the reply to COMMAND has %d fields, want 6 or more", len(a))
	}
	name, _ := a[0].(string)
	e := &entry{
		name:       strings.ToLower(name),
		flags:      asSet(a[2]),
		first:      asInt(a[3]),
		last:       asInt(a[4]),
		step:       asInt(a[5]),
		categories: map[string]bool{},
	}
	if e.name == "" {
		return nil, errors.New("a command in the reply to COMMAND has no name")
	}
	if len(a) > 6 {
		e.categories = asSet(a[6])
	}
	if len(a) > 8 {
		raw, _ := a[8].([]any)
		e.specs = make([]keySpec, 0, len(raw))
		for _, r := range raw {
			e.specs = append(e.specs, parseKeySpec(asMap(r)))
		}
	}
	if len(a) > 9 {
		subs, _ := a[9].([]any)
		for _, sv := range subs {
			sub, err := parseEntry(sv)
			if err != nil {
				return nil, err
			}
			if e.subcommands == nil {
				e.subcommands = map[string]*entry{}
			}
			e.subcommands[sub.name] = sub
		}
	}
	e.derive()
	return e, nil
}

func parseKeySpec(m map[string]any) keySpec {
	ks := keySpec{flags: map[string]bool{}}
	for f := range asSet(m["flags"]) {
		ks.flags[strings.ToLower(f)] = true
	}
	begin := asMap(m["begin_search"])
	ks.beginType, _ = begin["type"].(string)
	bs := asMap(begin["spec"])
	ks.index = asInt(bs["index"])
	ks.keyword, _ = bs["keyword"].(string)
	ks.startFrom = asInt(bs["startfrom"])

	find := asMap(m["find_keys"])
	ks.findType, _ = find["type"].(string)
	fs := asMap(find["spec"])
	ks.lastKey, ks.keyStep, ks.limit = asInt(fs["lastkey"]), asInt(fs["keystep"]), asInt(fs["limit"])
	ks.keyNumIdx, ks.firstKey = asInt(fs["keynumidx"]), asInt(fs["firstkey"])
	switch {
	case ks.beginType == "index" && bs["index"] == nil,
		ks.beginType == "keyword" && ks.keyword == "",
		ks.findType == "range" && fs["lastkey"] == nil,
		ks.findType == "keynum" && fs["keynumidx"] == nil:
		// A spec this parser does not understand names keys it cannot see.
		ks.flags["incomplete"] = true
	}
	return ks
}

// asMap reads RESP2's flat [key, value, ...] arrays, and RESP3's maps.
func asMap(v any) map[string]any {
	if m, ok := v.(map[any]any); ok {
		out := make(map[string]any, len(m))
		for k, e := range m {
			if k, ok := k.(string); ok {
				out[k] = e
			}
		}
		return out
	}
	a, _ := v.([]any)
	m := make(map[string]any, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		if k, ok := a[i].(string); ok {
			m[k] = a[i+1]
		}
	}
	return m
}

func asSet(v any) map[string]bool {
	a, _ := v.([]any)
	m := make(map[string]bool, len(a))
	for _, e := range a {
		if s, ok := e.(string); ok {
			m[s] = true
		}
	}
	return m
}

func asInt(v any) int {
	n, _ := v.(int64)
	return int(n)
}
