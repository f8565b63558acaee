package access

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// The tokens file (GATEWAY_TOKENS_FILE) is JSON:
//
//	{"tokens": [{
//	  "name":     "orders",                     // for logs and metrics; required
//	  "secret":   "sha256:<64 hex digits>",     // or the secret itself
//	  "routes":   ["cache", "redis"],           // default: every route
//	  "access":   {"cache": "write", "redis": "read"},  // or "read" / "write" for all; default write
//	  "keys":     ["orders:*"],                 // default: every key
//	  "channels": ["orders.*"],                 // default: every channel
//	  "commands": {"classes": ["read", "write"], "allow": ["eval"], "deny": ["keys"]}
//	}]}
//
// Unknown members are errors, so that a misspelt scope never grants more
// than was meant.

type fileDoc struct {
	Tokens *[]json.RawMessage `json:"tokens"`
}

type fileToken struct {
	Name     string          `json:"name"`
	Secret   string          `json:"secret"`
	Routes   []Route         `json:"routes"`
	Access   json.RawMessage `json:"access"`
	Keys     []string        `json:"keys"`
	Channels []string        `json:"channels"`
	Commands *fileCommands   `json:"commands"`
}

type fileCommands struct {
	Classes []string `json:"classes"`
	Allow   []string `json:"allow"`
	Deny    []string `json:"deny"`
}

// minSecretBytes is the shortest secret the file takes: a token anyone can
// guess is no token. openssl rand -hex 32 gives 64.
const minSecretBytes = 16

var (
	validName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,63}$`)
	validCommand = regexp.MustCompile(`^[a-z0-9_.-]+(\|[a-z0-9_.-]+)?$`)
	hexDigest    = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// entry is a token and the SHA-256 of its secret.
type entry struct {
	token  *Token
	digest [sha256.Size]byte
}

// parseFile reads a tokens file. Errors name the token by its position and
// name, never by its secret.
func parseFile(data []byte) ([]entry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc fileDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a tokens file: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a tokens file: more than one JSON value")
	}
	if doc.Tokens == nil {
		return nil, errors.New(`not a tokens file: no "tokens" array`)
	}
	entries := make([]entry, 0, len(*doc.Tokens))
	for i, raw := range *doc.Tokens {
		e, ft, err := parseToken(raw)
		if err != nil {
			if validName.MatchString(ft.Name) {
				return nil, fmt.Errorf("token %d (%s): %w", i+1, ft.Name, err)
			}
			return nil, fmt.Errorf("token %d: %w", i+1, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func parseToken(raw []byte) (entry, fileToken, error) {
	var ft fileToken
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ft); err != nil {
		return entry{}, ft, err
	}
	if err := noNull(raw); err != nil {
		return entry{}, ft, err
	}
	e, err := ft.entry()
	return e, ft, err
}

// noNull refuses a member whose value is null, in a token or in an object
// within it: decoded, "keys": null would be the same as no keys member,
// every key, where its writer surely meant fewer.
func noNull(raw []byte) error {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return nil // not an object: decoding it said so already
	}
	for name, v := range members {
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return fmt.Errorf("%s: null; leave the member out for its default, or give a value ([] admits none)", name)
		}
		if err := noNull(v); err != nil {
			return fmt.Errorf("%s.%w", name, err)
		}
	}
	return nil
}

func (ft fileToken) entry() (entry, error) {
	if !validName.MatchString(ft.Name) {
		return entry{}, errors.New("name: want 1 to 64 letters, digits and . _ : @ / -, starting with a letter or digit")
	}
	e := entry{token: &Token{Name: ft.Name, keys: ft.Keys, channels: ft.Channels}}
	switch s := ft.Secret; {
	case strings.HasPrefix(strings.ToLower(s), "sha256:"):
		digest := s[len("sha256:"):]
		if !hexDigest.MatchString(digest) {
			return entry{}, errors.New("secret: sha256: must be followed by 64 hex digits")
		}
		_, _ = hex.Decode(e.digest[:], []byte(digest))
	default:
		if err := CheckSecret(s); err != nil {
			return entry{}, fmt.Errorf("secret: %w", err)
		}
		e.digest = sha256.Sum256([]byte(s))
	}

	routes, err := ft.routes()
	if err != nil {
		return entry{}, err
	}
	e.token.routes = routes
	for i, g := range ft.Keys {
		if why := checkGlob(g); why != "" {
			return entry{}, fmt.Errorf("keys[%d]: %s", i, why)
		}
	}
	for i, g := range ft.Channels {
		if why := checkGlob(g); why != "" {
			return entry{}, fmt.Errorf("channels[%d]: %s", i, why)
		}
	}
	if ft.Commands != nil {
		if e.token.commands, err = ft.Commands.scope(); err != nil {
			return entry{}, fmt.Errorf("commands: %w", err)
		}
	}
	return e, nil
}

// routes combines routes and access into each route's level. Without
// routes, an access object names the routes; without both, every route.
func (ft fileToken) routes() (map[Route]Level, error) {
	var all *Level
	var each map[Route]string
	if len(ft.Access) > 0 {
		var one string
		if json.Unmarshal(ft.Access, &one) == nil {
			l, err := parseLevel(one)
			if err != nil {
				return nil, fmt.Errorf("access: %w", err)
			}
			all = &l
		} else if err := json.Unmarshal(ft.Access, &each); err != nil {
			return nil, errors.New(`access: want "read", "write" or an object such as {"cache": "write", "redis": "read"}`)
		}
	}
	names := ft.Routes
	switch {
	case names == nil && each != nil:
		for r := range each {
			names = append(names, r)
		}
	case names == nil:
		if all == nil {
			return nil, nil // every route, writing
		}
		names = allRoutes
	case len(names) == 0:
		return nil, errors.New("routes: empty; leave it out for every route")
	}
	routes := make(map[Route]Level, len(names))
	for _, r := range names {
		if !isRoute(r) {
			return nil, fmt.Errorf("routes: unknown route %q (want %s)", r, routeList())
		}
		routes[r] = Write
		if all != nil {
			routes[r] = *all
		}
	}
	for r, s := range each {
		if _, ok := routes[r]; !ok {
			if !isRoute(r) {
				return nil, fmt.Errorf("access: unknown route %q (want %s)", r, routeList())
			}
			return nil, fmt.Errorf("access: route %q is not in routes", r)
		}
		l, err := parseLevel(s)
		if err != nil {
			return nil, fmt.Errorf("access: %s: %w", r, err)
		}
		routes[r] = l
	}
	return routes, nil
}

func parseLevel(s string) (Level, error) {
	switch s {
	case "read":
		return Read, nil
	case "write":
		return Write, nil
	}
	return 0, fmt.Errorf("%q: want read or write", s)
}

func isRoute(r Route) bool {
	for _, known := range allRoutes {
		if r == known {
			return true
		}
	}
	return false
}

func routeList() string {
	names := make([]string, len(allRoutes))
	for i, r := range allRoutes {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

func (fc fileCommands) scope() (*Commands, error) {
	c := &Commands{Allow: map[string]bool{}, Deny: map[string]bool{}}
	if fc.Classes != nil {
		c.Classes = map[string]bool{}
		for _, class := range fc.Classes {
			switch class {
			case ClassRead, ClassWrite, ClassAdmin:
				c.Classes[class] = true
			default:
				return nil, fmt.Errorf("classes: unknown class %q (want read, write or admin)", class)
			}
		}
	}
	for _, list := range []struct {
		name  string
		names []string
		into  map[string]bool
	}{{"allow", fc.Allow, c.Allow}, {"deny", fc.Deny, c.Deny}} {
		for _, n := range list.names {
			// "SCRIPT FLUSH", "script flush" and "script|flush" are one subcommand.
			n = strings.Join(strings.Fields(strings.ToLower(n)), "|")
			if !validCommand.MatchString(n) {
				return nil, fmt.Errorf("%s: %q is not a command name (such as get, or script|flush for a subcommand)", list.name, n)
			}
			list.into[n] = true
		}
	}
	return c, nil
}

// placeholderWords mark a secret as a template's stand-in rather than a
// secret: compared ignoring case and the separators - _ . and space.
var placeholderWords = []string{"changeme", "replace", "example", "placeholder", "yourtoken", "yoursecret"}

// CheckSecret refuses a secret a bearer token cannot safely be: shorter than
// 16 bytes, holding spaces or control characters, or shaped like a
// template's placeholder (see placeholderWords). The error never holds the
// secret.
func CheckSecret(s string) error {
	if len(s) < minSecretBytes {
		return fmt.Errorf("%d bytes; want at least %d (openssl rand -hex 32 gives 64), or sha256:<hex> of the secret in a tokens file", len(s), minSecretBytes)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("spaces and control characters cannot travel in a bearer token")
	}
	folded := strings.ToLower(strings.NewReplacer("-", "", "_", "", ".", "", " ", "").Replace(s))
	for _, w := range placeholderWords {
		if strings.Contains(folded, w) {
			return fmt.Errorf("looks like a template's placeholder (it contains %q); generate one with openssl rand -hex 32", w)
		}
	}
	return nil
}
