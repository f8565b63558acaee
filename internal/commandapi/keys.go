package commandapi

import (
	"strconv"
	"strings"
)

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

// keysFromSpecs follows Redis 7's key specifications, as Redis itself does
// in getKeysUsingKeySpecs, with two corrections:
//
//   - A keyword spec takes every occurrence of its keyword, not only the
//     first. Redis 7.0's own search stops at the first, while GEORADIUS and
//     GEORADIUSBYMEMBER store into the last STORE or STOREDIST they are
//     given: the first occurrence named a key the command never wrote.
//     Where the keyword is followed by a variable number of keys, a second
//     occurrence makes the positions ambiguous, and the keys are not exact.
//   - A zero key count is no keys rather than a fallback to the command's
//     own parser.
//
// Specs marked not_key name shard channels, not keys.
func (e *entry) keysFromSpecs(args []string) ([]string, bool) {
	var keys []string
	for _, ks := range e.specs {
		if ks.flags["not_key"] {
			continue
		}
		if ks.flags["incomplete"] || ks.beginType == "unknown" || ks.findType == "unknown" {
			return nil, false
		}
		var starts []int
		switch ks.beginType {
		case "index":
			starts = []int{ks.index}
		case "keyword":
			starts = keywordOccurrences(args, ks.keyword, ks.startFrom)
			if len(starts) == 0 {
				continue // the keyword is not there: this spec names no key
			}
			if len(starts) > 1 && !(ks.findType == "range" && ks.lastKey >= 0) {
				return nil, false
			}
		default:
			return nil, false
		}
		for _, first := range starts {
			found, ok := ks.find(args, first)
			if !ok {
				return nil, false
			}
			keys = append(keys, found...)
		}
	}
	return keys, true
}

// keywordOccurrences returns the position after each occurrence of keyword
// in the part of args a spec searches: from startFrom to the end, or, when
// startFrom is not positive, from argc+startFrom back to the first
// argument.
func keywordOccurrences(args []string, keyword string, startFrom int) []int {
	argc := len(args)
	var starts []int
	if startFrom > 0 {
		for i := startFrom; i < argc; i++ {
			if strings.EqualFold(args[i], keyword) {
				starts = append(starts, i+1)
			}
		}
		return starts
	}
	for i := min(argc+startFrom, argc-1); i >= 1; i-- {
		if strings.EqualFold(args[i], keyword) {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// find returns the keys of one spec whose search begins at first.
func (ks keySpec) find(args []string, first int) ([]string, bool) {
	argc := len(args)
	var last, step int
	switch ks.findType {
	case "range":
		step = ks.keyStep
		switch {
		case ks.lastKey >= 0:
			last = first + ks.lastKey
		case ks.limit <= 1:
			last = argc + ks.lastKey
		default:
			last = first + (argc-first)/ks.limit + ks.lastKey
		}
	case "keynum":
		step = ks.keyStep
		if first+ks.keyNumIdx >= argc || first+ks.keyNumIdx < 1 {
			return nil, false
		}
		n, err := strconv.Atoi(args[first+ks.keyNumIdx])
		if err != nil || n < 0 || n > argc {
			return nil, false
		}
		if n == 0 {
			return nil, true
		}
		first += ks.firstKey
		last = first + (n-1)*max(step, 1)
	default:
		return nil, false
	}
	if first < 1 || first >= argc || last >= argc || last < first || step < 1 {
		return nil, false
	}
	var keys []string
	for i := first; i <= last; i += step {
		keys = append(keys, args[i])
	}
	return keys, true
}

// keysFromRange locates keys the way Redis did before key specifications:
// from the first to the last key position, every step arguments.
func (e *entry) keysFromRange(args []string) ([]string, bool) {
	if e.first <= 0 {
		return nil, true
	}
	last := e.last
	if last < 0 {
		last += len(args)
	}
	if e.first >= len(args) || last >= len(args) || last < e.first || e.step < 1 {
		return nil, false
	}
	var keys []string
	for i := e.first; i <= last; i += e.step {
		keys = append(keys, args[i])
	}
	return keys, true
}
