package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// mergePatch applies a JSON merge patch (RFC 7396) to doc and returns the
// result, compacted. Nothing is decoded into Go numbers or maps: values are
// carried as their raw bytes, so numbers keep every digit, [] stays apart from
// {}, and an object keeps its members' order, new members going last.
//
// Each level of objects is split anew, so the work grows with the size times
// the depth: both documents are held to maxDepth first (see checkJSON), and
// the merge stops as soon as ctx ends, a client that left included.
func mergePatch(ctx context.Context, doc, patch []byte, maxDepth int) ([]byte, error) {
	if err := checkJSON(patch, maxDepth); err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	if err := checkJSON(doc, maxDepth); err != nil {
		return nil, fmt.Errorf("merge patch target: %w", err)
	}
	merged, err := mergeValue(ctx, doc, patch)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, merged); err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	return out.Bytes(), nil
}

// mergeValue is RFC 7396's MergePatch(Target, Patch). A nil target is a
// member the target does not have.
func mergeValue(ctx context.Context, target, patch []byte) ([]byte, error) {
	p, isObject, err := parseObject(ctx, patch)
	if err != nil || !isObject {
		return patch, err
	}
	t, _, err := parseObject(ctx, target) // a target that is not an object counts as {}
	if err != nil {
		return nil, err
	}
	for _, m := range p.members {
		if isNull(m.value) {
			t.remove(m.name)
			continue
		}
		v, err := mergeValue(ctx, t.get(m.name), m.value)
		if err != nil {
			return nil, err
		}
		t.set(m.name, m.rawName, v)
	}
	return t.encode(), nil
}

// object is a JSON object as its members' raw bytes, in order, with an index
// by name so that large objects merge in linear time.
type object struct {
	members []member // a removed member stays, with a nil value
	index   map[string]int
}

// member is one name/value pair; name is the decoded name, to compare.
type member struct {
	name    string
	rawName []byte
	value   []byte
}

func (o *object) get(name string) []byte {
	if i, ok := o.index[name]; ok {
		return o.members[i].value
	}
	return nil
}

// set replaces a member's value in its place, or adds it last.
func (o *object) set(name string, rawName, value []byte) {
	if i, ok := o.index[name]; ok {
		o.members[i].value = value
		return
	}
	if o.index == nil {
		o.index = map[string]int{}
	}
	o.index[name] = len(o.members)
	o.members = append(o.members, member{name: name, rawName: rawName, value: value})
}

func (o *object) remove(name string) {
	if i, ok := o.index[name]; ok {
		o.members[i].value = nil
		delete(o.index, name)
	}
}

func (o *object) encode() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for _, m := range o.members {
		if m.value == nil {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.Write(m.rawName)
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// parseObject splits raw into its members when it is an object. A name
// given twice keeps its first place and its last value, as decoding it into
// a map would.
func parseObject(ctx context.Context, raw []byte) (object, bool, error) {
	var o object
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return o, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err != nil { // {
		return o, true, fmt.Errorf("merge patch: %w", err)
	}
	for dec.More() {
		if err := ctx.Err(); err != nil {
			return o, true, fmt.Errorf("merge patch: %w", err)
		}
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return o, true, fmt.Errorf("merge patch: %w", err)
		}
		name, _ := tok.(string)
		// The name's bytes as sent, less the comma and spaces before them.
		rawName := bytes.TrimLeft(trimmed[start:dec.InputOffset()], " \t\r\n,")
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return o, true, fmt.Errorf("merge patch: %w", err)
		}
		o.set(name, rawName, value)
	}
	return o, true, nil
}

func isNull(v []byte) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }
