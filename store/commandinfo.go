package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrNoCommandInfo is a Redis that does not describe its commands (COMMAND):
// some proxies and embedded servers. Without the description the gateway
// cannot tell which keys a command touches.
var ErrNoCommandInfo = errors.New("redis does not describe its commands (COMMAND)")

// CommandFacts is what Redis's description of its commands says about one
// command a client sent: its class and the keys its arguments name.
type CommandFacts struct {
	Name  string // lower case; "object|encoding" for a subcommand
	Known bool   // Redis describes the command (and subcommand)
	// Class is read, write or admin. Admin: Redis flags it admin, or its ACL
	// categories say @admin or @dangerous (KEYS, INFO, SORT, CONFIG, ...).
	// Write: flagged write or may_replicate, and the scripts and publishing
	// commands that Redis does not flag but that change data or reach other
	// clients (EVAL, EVALSHA, FCALL, PUBLISH, SPUBLISH). Read: the rest.
	Class string
	Keys  []string // the keys the arguments name
	// KeysKnown is false when the description cannot name every key: SORT's
	// BY and GET patterns, MIGRATE, arguments that do not parse.
	KeysKnown bool
	// Keyspace commands reach keys they do not name: KEYS, SCAN, RANDOMKEY,
	// DBSIZE, FLUSHDB, FLUSHALL, SWAPDB.
	Keyspace bool
	// Script commands run code that can reach keys it does not declare.
	Script bool
}

// commandSpec is Redis's description of one command or subcommand.
type commandSpec struct {
	name       string
	flags      map[string]bool
	categories map[string]bool
	// first, last and step locate keys before Redis 7; from Redis 7 on,
	// specs does.
	first, last, step int
	specs             []keySpec
	subcommands       map[string]*commandSpec // "object|encoding"
}

// keySpec is one key specification of Redis 7's COMMAND reply: where the
// search for keys begins, and how the keys are found from there.
type keySpec struct {
	flags map[string]bool // RO, RW, ..., incomplete, not_key

	beginType string // index, keyword or unknown
	index     int
	keyword   string
	startFrom int

	findType  string // range, keynum or unknown
	lastKey   int
	keyStep   int
	limit     int
	keyNumIdx int
	firstKey  int
}

// commandTable holds Redis's description of its commands, read once, on
// first use (or at start-up, see LoadCommandInfo).
type commandTable struct {
	mu       sync.Mutex
	commands map[string]*commandSpec // nil until read
	keySpecs bool                    // Redis 7 or later: key specifications
}

// scriptCommands run scripts: Redis's key specifications name the keys they
// declare, and the script may still reach others.
var scriptCommands = map[string]bool{
	"eval": true, "evalsha": true, "eval_ro": true, "evalsha_ro": true, "fcall": true, "fcall_ro": true,
}

// keyspaceCommands reach keys they do not name. From Redis 6 on, the ACL
// category @keyspace on a command without keys says the same; this list
// serves older servers.
var keyspaceCommands = map[string]bool{
	"keys": true, "scan": true, "randomkey": true, "dbsize": true, "flushdb": true, "flushall": true, "swapdb": true,
}

// LoadCommandInfo reads Redis's description of its commands, so the first
// request that needs it does not wait. Until it succeeds, every request that
// needs it tries again.
func (s *Store) LoadCommandInfo(ctx context.Context) error {
	_, _, err := s.commandTable(ctx)
	return err
}

func (s *Store) commandTable(ctx context.Context) (map[string]*commandSpec, bool, error) {
	t := &s.commandInfo
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.commands != nil {
		return t.commands, t.keySpecs, nil
	}
	v, err := s.cmd.Do(ctx, "COMMAND").Result()
	var rerr redis.Error
	switch {
	case errors.As(err, &rerr) && (strings.HasPrefix(rerr.Error(), "NOPERM") || !isUnavailableReply(rerr.Error())):
		return nil, false, fmt.Errorf("%w: %s", ErrNoCommandInfo, rerr.Error())
	case err != nil:
		return nil, false, classify("command", err)
	}
	commands, keySpecs, err := parseCommandTable(v)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrNoCommandInfo, err)
	}
	t.commands, t.keySpecs = commands, keySpecs
	return commands, keySpecs, nil
}

// DescribeCommand says what args (command name first) is and which keys it
// names, from Redis's description of its commands: key specifications on
// Redis 7 and later, the first, last and step key positions and COMMAND
// GETKEYS before. It fails with ErrNoCommandInfo when Redis gives no
// description, and like every command when Redis cannot be asked.
func (s *Store) DescribeCommand(ctx context.Context, args []string) (CommandFacts, error) {
	commands, keySpecs, err := s.commandTable(ctx)
	if err != nil {
		return CommandFacts{}, err
	}
	return describe(ctx, commands, keySpecs, args, func(ctx context.Context) ([]string, bool, error) {
		return s.getKeys(ctx, args)
	})
}

// describe is DescribeCommand on a command table; getKeys asks Redis, for
// commands whose keys the table cannot locate.
func describe(ctx context.Context, commands map[string]*commandSpec, keySpecs bool, args []string,
	getKeys func(context.Context) ([]string, bool, error)) (CommandFacts, error) {
	name := strings.ToLower(args[0])
	f := CommandFacts{Name: name, Script: scriptCommands[name]}
	c := commands[name]
	if c == nil {
		return f, nil
	}
	if len(c.subcommands) > 0 && len(args) > 1 {
		f.Name = name + "|" + strings.ToLower(args[1])
		if c = c.subcommands[f.Name]; c == nil {
			return f, nil
		}
	}
	f.Known = true
	f.Class = c.class(f.Script)

	switch {
	case keySpecs && (len(c.specs) > 0 || !c.flags["movablekeys"]):
		f.Keys, f.KeysKnown = c.keysFromSpecs(args)
	case !keySpecs && !c.flags["movablekeys"] && name != "sort" && name != "sort_ro":
		f.Keys, f.KeysKnown = c.keysFromRange(args)
	case name == "sort" || name == "sort_ro":
		// BY and GET read keys named by the sorted values: no server
		// lists those.
	default:
		var err error
		if f.Keys, f.KeysKnown, err = getKeys(ctx); err != nil {
			return CommandFacts{}, err
		}
	}
	f.Keyspace = len(f.Keys) == 0 && f.KeysKnown && (c.categories["@keyspace"] || keyspaceCommands[name])
	return f, nil
}

func (c *commandSpec) class(script bool) string {
	switch {
	case c.flags["admin"] || c.categories["@admin"] || c.categories["@dangerous"]:
		return "admin"
	case c.flags["write"] || c.flags["may_replicate"],
		script && !c.flags["readonly"],
		c.flags["pubsub"] && (c.name == "publish" || c.name == "spublish"):
		return "write"
	}
	return "read"
}

// keysFromSpecs follows Redis 7's key specifications, as Redis itself does
// in getKeysUsingKeySpecs, except that a zero key count is no keys rather
// than a fallback to the command's own parser. Specs marked not_key name
// shard channels, not keys.
func (c *commandSpec) keysFromSpecs(args []string) ([]string, bool) {
	var keys []string
	for _, ks := range c.specs {
		if ks.flags["not_key"] {
			continue
		}
		if ks.flags["incomplete"] || ks.beginType == "unknown" || ks.findType == "unknown" {
			return nil, false
		}
		argc := len(args)
		first := 0
		switch ks.beginType {
		case "index":
			first = ks.index
		case "keyword":
			start, end := ks.startFrom, argc-1
			if ks.startFrom <= 0 {
				start, end = argc+ks.startFrom, 0
			}
			for i := start; i != end && i >= 1 && i < argc; {
				if strings.EqualFold(args[i], ks.keyword) {
					first = i + 1
					break
				}
				if start <= end {
					i++
				} else {
					i--
				}
			}
			if first == 0 {
				continue // the keyword is not there: this spec names no key
			}
		default:
			return nil, false
		}
		var last, step int
		switch ks.findType {
		case "range":
			step = ks.keyStep
			switch {
			case ks.lastKey >= 0:
				last = first + ks.lastKey
			case ks.limit == 0:
				last = argc + ks.lastKey
			default:
				last = first + (argc-first)/ks.limit + ks.lastKey
			}
		case "keynum":
			step = ks.keyStep
			if first+ks.keyNumIdx >= argc {
				return nil, false
			}
			n, err := strconv.Atoi(args[first+ks.keyNumIdx])
			if err != nil || n < 0 {
				return nil, false
			}
			if n == 0 {
				continue
			}
			first += ks.firstKey
			last = first + n - 1
		default:
			return nil, false
		}
		if first >= argc || last >= argc || last < first || step < 1 {
			return nil, false
		}
		for i := first; i <= last; i += step {
			keys = append(keys, args[i])
		}
	}
	return keys, true
}

// keysFromRange locates keys the way Redis did before key specifications:
// from the first to the last key position, every step arguments.
func (c *commandSpec) keysFromRange(args []string) ([]string, bool) {
	if c.first <= 0 {
		return nil, true
	}
	last := c.last
	if last < 0 {
		last += len(args)
	}
	if c.first >= len(args) || last >= len(args) || last < c.first || c.step < 1 {
		return nil, false
	}
	var keys []string
	for i := c.first; i <= last; i += c.step {
		keys = append(keys, args[i])
	}
	return keys, true
}

// getKeys asks Redis for the keys of args with COMMAND GETKEYS. The reply is
// read as it comes, since servers that lack GETKEYS answer other shapes.
func (s *Store) getKeys(ctx context.Context, args []string) ([]string, bool, error) {
	cmd := make([]any, 0, len(args)+2)
	cmd = append(cmd, "COMMAND", "GETKEYS")
	for _, a := range args {
		cmd = append(cmd, a)
	}
	v, err := s.cmd.Do(ctx, cmd...).Result()
	var rerr redis.Error
	switch {
	case errors.As(err, &rerr) && strings.Contains(rerr.Error(), "no key arguments"):
		return nil, true, nil
	case errors.As(err, &rerr) && !isUnavailableReply(rerr.Error()):
		return nil, false, nil // arguments Redis cannot parse: it will refuse the command too
	case err != nil:
		return nil, false, classify("command getkeys", err)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, false, nil
	}
	keys := make([]string, len(list))
	for i, k := range list {
		if keys[i], ok = k.(string); !ok {
			return nil, false, nil
		}
	}
	return keys, true, nil
}

// parseCommandTable reads the RESP2 reply to COMMAND: one array per command,
// [name, arity, flags, first, last, step] up to Redis 5, then ACL
// categories (6), tips, key specifications and subcommands (7).
func parseCommandTable(v any) (map[string]*commandSpec, bool, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, false, errors.New("the reply to COMMAND is not a list of commands")
	}
	commands := make(map[string]*commandSpec, len(list))
	keySpecs := false
	for _, e := range list {
		c, err := parseCommand(e)
		if err != nil {
			return nil, false, err
		}
		commands[c.name] = c
		keySpecs = keySpecs || c.specs != nil
	}
	return commands, keySpecs, nil
}

func parseCommand(v any) (*commandSpec, error) {
	a, ok := v.([]any)
	if !ok || len(a) < 6 {
		return nil, fmt.Errorf("a command in the reply to COMMAND has %d fields, want 6 or more", len(a))
	}
	name, _ := a[0].(string)
	c := &commandSpec{
		name:       strings.ToLower(name),
		flags:      asSet(a[2]),
		first:      asInt(a[3]),
		last:       asInt(a[4]),
		step:       asInt(a[5]),
		categories: map[string]bool{},
	}
	if c.name == "" {
		return nil, errors.New("a command in the reply to COMMAND has no name")
	}
	if len(a) > 6 {
		c.categories = asSet(a[6])
	}
	if len(a) > 8 {
		raw, _ := a[8].([]any)
		c.specs = make([]keySpec, 0, len(raw))
		for _, r := range raw {
			c.specs = append(c.specs, parseKeySpec(asMap(r)))
		}
	}
	if len(a) > 9 {
		subs, _ := a[9].([]any)
		for _, sv := range subs {
			sub, err := parseCommand(sv)
			if err != nil {
				return nil, err
			}
			if c.subcommands == nil {
				c.subcommands = map[string]*commandSpec{}
			}
			c.subcommands[sub.name] = sub
		}
	}
	return c, nil
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

// asMap reads RESP2's flat [key, value, ...] arrays, which RESP3 would send
// as maps.
func asMap(v any) map[string]any {
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
