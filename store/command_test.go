package store

import (
	"strings"
	"testing"
)

func TestClassifyCommand(t *testing.T) {
	tests := []struct {
		args string
		want commandClass
	}{
		{"GET k", classPlain},
		{"nosuchcommand", classPlain},
		{"FlushAll", classAdmin},
		{"script load x", classPlain},
		{"script exists a", classPlain},
		{"SCRIPT FLUSH", classAdmin},
		{"script kill", classAdmin},
		{"script debug yes", classConnection},
		{"script", classPlain}, // Redis answers the arity error
		{"function load x", classPlain},
		{"function restore x", classAdmin},
		{"client", classConnection},
		{"client setname x", classConnection},
		{"client list", classAdmin},
		{"blpop k 0", classBlocking},
		{"xread count 1 streams s 0", classPlain},
		{"xread count 1 BLOCK 0 streams s 0", classBlocking},
		{"xread streams block 0", classPlain},
		{"xreadgroup group g c block 10 streams s >", classBlocking},
		{"exec", classTransaction},
		{"psubscribe p*", classSubscribe},
		{"select 1", classConnection},
	}
	for _, tt := range tests {
		if got := classifyCommand(strings.Fields(tt.args)); got != tt.want {
			t.Errorf("classifyCommand(%s) = %d, want %d", tt.args, got, tt.want)
		}
	}
}

func TestCommandLabel(t *testing.T) {
	tests := []struct{ name, want string }{
		{"GET", "get"},
		{"evalsha", "evalsha"},
		{"FLUSHALL", "flushall"},
		{"made-up", "other"},
		{strings.Repeat("x", 1000), "other"},
	}
	for _, tt := range tests {
		if got := commandLabel(tt.name); got != tt.want {
			t.Errorf("commandLabel(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
