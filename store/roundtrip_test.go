package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Operations reach Redis only through roundtrip.go: elsewhere in store, the
// clients are built, hooked, closed and subscribed on, nothing more. A call
// such as s.rdb.Get in cache.go would bypass the retry policy and durable
// writes, as the command API's writes once bypassed WAIT.
func TestOnePathToRedis(t *testing.T) {
	allowed := map[string][]string{ // file: methods of s.rdb and s.cmdAPI it may call
		"store.go":   {"AddHook", "Close"},
		"pubsub.go":  {"Subscribe", "PSubscribe"},
		"command.go": {"AddHook"},
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "roundtrip.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			client, ok := sel.X.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if recv, ok := client.X.(*ast.Ident); !ok || recv.Name != "s" {
				return true
			}
			switch client.Sel.Name {
			case "rdb", "cmdAPI", "ap", "apClient":
				if !slices.Contains(allowed[name], sel.Sel.Name) {
					t.Errorf("%s: s.%s.%s: send operations through roundtrip.go", fset.Position(sel.Pos()), client.Sel.Name, sel.Sel.Name)
				}
			}
			return true
		})
	}
	if checked < 10 {
		t.Fatalf("checked %d files; the test is not looking at store's sources", checked)
	}
}
