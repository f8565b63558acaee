package access

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strconv"
)

// Set is one immutable set of tokens. A reload builds a new Set and swaps it
// in whole, so a request sees either the old tokens or the new ones.
type Set struct {
	entries []entry
}

// NewSet builds the set of the GATEWAY_TOKENS secrets, each with full access
// and named GATEWAY_TOKENS#1, #2, ..., and of a tokens file's contents (nil
// for none). A file token with the secret of another token is an error: the
// gateway could not tell which scopes apply.
func NewSet(env []string, file []byte) (*Set, error) {
	s := EnvSet(env)
	if file == nil {
		return s, nil
	}
	fromFile, err := parseFile(file)
	if err != nil {
		return nil, err
	}
	seen := make(map[[sha256.Size]byte]string, len(s.entries)+len(fromFile))
	for _, e := range s.entries {
		seen[e.digest] = e.token.Name
	}
	for _, e := range fromFile {
		if other, dup := seen[e.digest]; dup {
			return nil, fmt.Errorf("tokens %s and %s have the same secret", other, e.token.Name)
		}
		seen[e.digest] = e.token.Name
		s.entries = append(s.entries, e)
	}
	return s, nil
}

// EnvSet is NewSet without a file. A secret listed twice is one token.
func EnvSet(env []string) *Set {
	s := &Set{}
	seen := make(map[[sha256.Size]byte]bool, len(env))
	for i, secret := range env {
		d := sha256.Sum256([]byte(secret))
		if !seen[d] {
			seen[d] = true
			s.entries = append(s.entries, entry{token: FullAccess("GATEWAY_TOKENS#" + strconv.Itoa(i+1)), digest: d})
		}
	}
	return s
}

// OneToken is the set of one full-access token, such as METRICS_TOKEN.
func OneToken(name, secret string) *Set {
	return &Set{entries: []entry{{token: FullAccess(name), digest: sha256.Sum256([]byte(secret))}}}
}

// Lookup returns the token whose secret was presented, or nil. Secrets are
// compared as SHA-256 digests, in constant time and against every token, so
// neither a secret's length nor its place in the set leaks through timing.
func (s *Set) Lookup(secret string) *Token {
	d := sha256.Sum256([]byte(secret))
	var found *Token
	for _, e := range s.entries {
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			found = e.token
		}
	}
	return found
}

// Len is the number of tokens.
func (s *Set) Len() int { return len(s.entries) }

// Names lists the tokens' names, in order.
func (s *Set) Names() []string {
	names := make([]string, len(s.entries))
	for i, e := range s.entries {
		names[i] = e.token.Name
	}
	return names
}
