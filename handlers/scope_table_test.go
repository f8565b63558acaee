package handlers_test

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/commandapi"
)

// The matrix's cells for every command in the command table that takes
// keys: each command built from Redis's own argument docs (COMMAND DOCS),
// once with every key inside orders:* and once with its last key outside.
// The keys are placed by the test, from the docs, not by the gateway's key
// extraction; the class and whether it runs a script come from the table.

// docArg is one argument of COMMAND DOCS.
type docArg struct {
	typ, token         string
	optional, multiple bool
	args               []docArg
}

func parseDocArgs(v any) []docArg {
	list, _ := v.([]any)
	out := make([]docArg, 0, len(list))
	for _, e := range list {
		m := flatMap(e)
		a := docArg{}
		a.typ, _ = m["type"].(string)
		a.token, _ = m["token"].(string)
		flags, _ := m["flags"].([]any)
		for _, f := range flags {
			a.optional = a.optional || f == "optional"
			a.multiple = a.multiple || f == "multiple"
		}
		a.args = parseDocArgs(m["arguments"])
		out = append(out, a)
	}
	return out
}

func flatMap(v any) map[string]any {
	a, _ := v.([]any)
	m := map[string]any{}
	for i := 0; i+1 < len(a); i += 2 {
		if k, ok := a[i].(string); ok {
			m[k] = a[i+1]
		}
	}
	return m
}

func (a docArg) hasKey() bool {
	return a.typ == "key" || slices.ContainsFunc(a.args, docArg.hasKey)
}

// build appends the arguments of as: every required one, and the optional
// ones that name a key; numbers are 1, so a key count names one key.
func build(out []string, as []docArg, key func() string) []string {
	for _, a := range as {
		if a.optional && !a.hasKey() {
			continue
		}
		if a.token != "" && a.typ != "pure-token" {
			out = append(out, a.token)
		}
		switch a.typ {
		case "key":
			out = append(out, key())
		case "pure-token":
			out = append(out, a.token)
		case "integer", "double", "unix-time":
			out = append(out, "1")
		case "pattern":
			out = append(out, "*")
		case "oneof":
			choice := a.args[0]
			if i := slices.IndexFunc(a.args, docArg.hasKey); i >= 0 {
				choice = a.args[i]
			}
			out = build(out, []docArg{choice}, key)
		case "block":
			out = build(out, a.args, key)
		default:
			out = append(out, "0")
		}
	}
	return out
}

// keyCommand is one command of the table that takes keys, ready to send.
type keyCommand struct {
	name, sub string
	args      []string // with the placeholder key "\x00" at each key position
}

// tableKeyCommands reads the table and the docs from the Redis at addr.
func tableKeyCommands(t *testing.T, addr string) (*commandapi.Table, []keyCommand) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	ctx := context.Background()
	v, err := c.Do(ctx, "COMMAND").Result()
	if err != nil {
		t.Fatalf("COMMAND: %v", err)
	}
	table, err := commandapi.Parse(v, nil)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := c.Do(ctx, "COMMAND", "DOCS").Result()
	if err != nil {
		t.Fatalf("COMMAND DOCS: %v", err)
	}
	argsOf := map[string][]docArg{}
	var walk func(m map[string]any)
	walk = func(m map[string]any) {
		for name, d := range m {
			dm := flatMap(d)
			argsOf[strings.ToLower(name)] = parseDocArgs(dm["arguments"])
			if subs := flatMap(dm["subcommands"]); len(subs) > 0 {
				walk(subs)
			}
		}
	}
	walk(flatMap(docs))

	var out []keyCommand
	table.Each(func(name string, keySpecs int, flags []string) {
		if keySpecs == 0 || name == "spublish" || name == "ssubscribe" || name == "sunsubscribe" { // shard channels, not keys
			return
		}
		as, ok := argsOf[name]
		if !ok || !slices.ContainsFunc(as, docArg.hasKey) {
			return
		}
		base, sub, _ := strings.Cut(name, "|")
		args := []string{base}
		if sub != "" {
			args = append(args, sub)
		}
		args = build(args, as, func() string { return "\x00" })
		out = append(out, keyCommand{name: base, sub: sub, args: args})
	})
	sort.Slice(out, func(i, j int) bool { return strings.Join(out[i].args, " ") < strings.Join(out[j].args, " ") })
	return table, out
}

// tableCells turns each command that takes keys into two cells of the
// matrix.
func tableCells(t *testing.T, addr string) []matrixCell {
	table, cmds := tableKeyCommands(t, addr)
	var cells []matrixCell
	for _, kc := range cmds {
		n := strings.Count(strings.Join(kc.args, "\n"), "\x00")
		for _, outside := range []bool{false, true} {
			var keys []string
			args := slices.Clone(kc.args)
			i := 0
			for j, a := range args {
				if a != "\x00" {
					continue
				}
				k := "orders:gen:" + strconv.Itoa(i)
				if outside && i == n-1 {
					k = "sessions:1"
				}
				args[j] = k
				keys = append(keys, k)
				i++
			}
			info := table.Lookup(args)
			mc := matrixCmd{name: kc.name, sub: kc.sub, class: info.Class, keys: keys,
				script:      info.Reach == commandapi.ReachScript,
				unknownKeys: kc.name == "sort" || kc.name == "sort_ro" || kc.name == "migrate",
				otherDB:     kc.name == "move",
			}
			body, _ := json.Marshal(args)
			where := "inside"
			if outside {
				where = "last key outside"
			}
			cells = append(cells, matrixCell{
				name:  "table: " + strings.Join(args[:min(2, len(args))], " ") + " " + where,
				req:   request{method: "POST", path: "/redis", body: string(body)},
				route: "redis", level: 1, cmds: []matrixCmd{mc}, anyStatus: true, guards: []string{"sessions:1"},
			})
		}
	}
	if len(cells) < 2*100 {
		t.Fatalf("only %d commands that take keys in the table; want the 100 and more Redis 7 has", len(cells)/2)
	}
	return cells
}
