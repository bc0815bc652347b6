package config

import (
	"errors"
	"fmt"
	"strings"
)

// Set sets the field of dst (a pointer to a struct) at the dotted yaml path,
// e.g. Set(&cfg, "broker.max_frame", "2MiB"), converting value as ApplyEnv
// does. A path that ends at a section (a struct, a slice, a map) takes value as
// strict YAML: "broker.listeners=[{addr: ':1055'}]" replaces the list, and a
// mapping merges into a struct or map. A map with string keys takes the rest
// of the path as the key: "edge.aliases.CreateRoom=room.Create". Nil pointers
// on the way are allocated. Items inside a list cannot be addressed.
//
// Errors are [FieldError]s: "config: broker.max_fram: unknown option".
func Set(dst any, path, value string) error {
	root, err := target(dst)
	if err != nil {
		return err
	}
	path = strings.TrimSpace(path)
	if path == "" {
		return FieldError{Msg: "empty option path"}
	}
	if err := setPath(root, strings.Split(path, "."), value); err != nil {
		if errors.Is(err, errUnknownOption) {
			return FieldError{Field: path, Msg: "unknown option"}
		}
		return FieldError{Field: path, Msg: err.Error()}
	}
	return nil
}

// SetFlag collects the "path=value" arguments of a repeatable -set flag:
//
//	var sets config.SetFlag
//	fs.Var(&sets, "set", "override one option, `path=value` (repeatable)")
//
// It implements [flag.Value]; [SetFlag.Apply] (or [Load]) applies the entries
// in the order given, so a later one wins.
type SetFlag []string

// String joins the collected entries with spaces.
func (s *SetFlag) String() string {
	if s == nil {
		return ""
	}
	return strings.Join(*s, " ")
}

// Set checks that v has the form path=value and appends it.
func (s *SetFlag) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want path=value, e.g. broker.max_frame=2MiB, got %q", v)
	}
	*s = append(*s, v)
	return nil
}

// Apply sets each collected entry on dst in order with [Set] and stops at the
// first error.
func (s SetFlag) Apply(dst any) error {
	if _, err := target(dst); err != nil {
		return err
	}
	for _, kv := range s {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("config: -set %q: want path=value", kv)
		}
		if err := Set(dst, k, v); err != nil {
			return err
		}
	}
	return nil
}
