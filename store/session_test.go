package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

func memoryStore(t *testing.T) *Store {
	t.Helper()
	mr := miniredis.RunT(t)
	s, err := New(Options{URL: "redis://" + mr.Addr()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A write between UpdateSession's read and its write, even one that puts
// back the same document, makes it merge again on what is there now.
func TestUpdateSessionRetriesAfterAConcurrentWrite(t *testing.T) {
	s := memoryStore(t)
	ctx := context.Background()
	if _, err := s.PutSession(ctx, "id", []byte(`{"a":1}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	var seen []string
	got, err := s.UpdateSession(ctx, "id", func(doc []byte) ([]byte, error) {
		seen = append(seen, string(doc))
		if len(seen) == 1 {
			// Another writer: the same document, a new version.
			if _, err := s.PutSession(ctx, "id", []byte(`{"a":1}`), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		return fmt.Appendf(nil, `%s,"n":%d}`, strings.TrimSuffix(string(doc), "}"), len(seen)), nil
	})
	if err != nil || string(got) != `{"a":1,"n":2}` || len(seen) != 2 {
		t.Errorf("UpdateSession = %s, %v after update saw %q; want the second merge, {\"a\":1,\"n\":2}", got, err, seen)
	}
	if doc, _ := s.GetSession(ctx, "id", false); string(doc) != `{"a":1,"n":2}` {
		t.Errorf("stored %s, want the second merge", doc)
	}
}

func TestUpdateSessionGivesUpUnderConstantConflict(t *testing.T) {
	s := memoryStore(t)
	ctx := context.Background()
	if _, err := s.PutSession(ctx, "id", []byte(`{}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err := s.UpdateSession(ctx, "id", func(doc []byte) ([]byte, error) {
		calls++
		if _, err := s.PutSession(ctx, "id", []byte(`{}`), time.Minute); err != nil {
			t.Fatal(err)
		}
		return []byte(`{"lost":true}`), nil
	})
	if !errors.Is(err, ErrConflict) || calls != updateAttempts {
		t.Errorf("UpdateSession against a writer that always comes first: %v after %d attempts, want ErrConflict after %d", err, calls, updateAttempts)
	}
	if doc, _ := s.GetSession(ctx, "id", false); string(doc) != `{}` {
		t.Errorf("stored %s, want the other writer's {}", doc)
	}
}

func TestUpdateSessionOfADeletedSession(t *testing.T) {
	s := memoryStore(t)
	ctx := context.Background()
	if _, err := s.UpdateSession(ctx, "none", func(doc []byte) ([]byte, error) { return doc, nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateSession of a missing session: %v, want ErrNotFound", err)
	}
	if _, err := s.PutSession(ctx, "id", []byte(`{}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err := s.UpdateSession(ctx, "id", func(doc []byte) ([]byte, error) {
		if err := s.DeleteSession(ctx, "id"); err != nil {
			t.Fatal(err)
		}
		return []byte(`{"x":1}`), nil
	})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateSession of a session deleted meanwhile: %v, want ErrNotFound", err)
	}
	if _, err := s.GetSession(ctx, "id", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("the deleted session came back: %v", err)
	}
}
