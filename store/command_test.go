package store

import (
	"fmt"
	"testing"
)

func TestCompatScript(t *testing.T) {
	tests := []struct {
		in, want string
		changed  bool
	}{
		{"#!lua flags=allow-key-locking\nreturn 1", "#!lua\nreturn 1", true},
		{"#!lua flags=no-writes,allow-key-locking\nreturn 1", "#!lua flags=no-writes\nreturn 1", true},
		{"#!lua flags=allow-key-locking,allow-oom,allow-stale,no-cluster,allow-cross-slot-keys\nx", "#!lua flags=allow-oom,allow-stale,no-cluster,allow-cross-slot-keys\nx", true},
		{"#!lua   flags=allow-key-locking,no-writes \r\nreturn 1\n", "#!lua flags=no-writes\nreturn 1\n", true},
		{"#!lua name=lib flags=allow-key-locking\nx", "#!lua name=lib\nx", true},
		// Nothing Redis rejects for a flag: untouched, byte for byte.
		{"#!lua flags=no-writes\nreturn 1", "#!lua flags=no-writes\nreturn 1", false},
		{"#!lua\nreturn 1", "#!lua\nreturn 1", false},
		{"return 1", "return 1", false},
		{"  #!lua flags=allow-key-locking\nreturn 1", "  #!lua flags=allow-key-locking\nreturn 1", false},
		// Left for Redis to judge: no line end, another engine, quoting.
		{"#!lua flags=allow-key-locking", "#!lua flags=allow-key-locking", false},
		{"#!python flags=allow-key-locking\nx", "#!python flags=allow-key-locking\nx", false},
		{"#!lua \"flags=allow-key-locking\"\nx", "#!lua \"flags=allow-key-locking\"\nx", false},
	}
	for _, tt := range tests {
		got, changed := compatScript(tt.in)
		if got != tt.want || changed != tt.changed {
			t.Errorf("compatScript(%q) = %q, %v; want %q, %v", tt.in, got, changed, tt.want, tt.changed)
		}
	}
}

func TestScriptAliasesAreBounded(t *testing.T) {
	a := newScriptAliases(3)
	for i := range 5 {
		a.put(fmt.Sprintf("client%d", i), fmt.Sprintf("loaded%d", i))
	}
	for i := range 5 {
		client := fmt.Sprintf("client%d", i)
		want := fmt.Sprintf("loaded%d", i)
		if i < 2 {
			want = client // the oldest were forgotten
		}
		if got := a.get(client); got != want {
			t.Errorf("after 5 puts into 3 places: get(%s) = %s, want %s", client, got, want)
		}
	}
	if len(a.m) != 3 {
		t.Errorf("%d aliases kept, want 3", len(a.m))
	}
	// Redis takes SHAs in either case.
	if got := a.get("CLIENT4"); got != "loaded4" {
		t.Errorf("get(CLIENT4) = %s, want loaded4", got)
	}
	if got := a.get("unknown"); got != "unknown" {
		t.Errorf("get of an unknown SHA = %s, want it unchanged", got)
	}
}
