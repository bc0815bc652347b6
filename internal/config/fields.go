package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// Sections is implemented by a config section whose keys are known only at
// run time, not by a Go struct: cmd/noon's services section has one key per
// service module, each a struct of its own type. ConfigSections returns the
// value of each key, a non-nil pointer to a struct. [Set], [ApplyEnv] and
// [EnvNames] address its fields as they would those of a struct field of
// that name: "services.login.session_ttl", NOON_SERVICES_LOGIN_SESSION_TTL.
// Decoding YAML (yaml.Unmarshaler) and validating are the type's own.
type Sections interface {
	ConfigSections() map[string]any
}

// sectionsOf returns v as Sections when its type (or a pointer to it)
// implements it.
func sectionsOf(v reflect.Value) (Sections, bool) {
	if v.CanAddr() && v.Addr().CanInterface() {
		if s, ok := v.Addr().Interface().(Sections); ok {
			return s, true
		}
	}
	if v.CanInterface() {
		if s, ok := v.Interface().(Sections); ok {
			return s, true
		}
	}
	return nil, false
}

// section returns the struct that key of secs points to.
func section(secs Sections, key string) (reflect.Value, bool) {
	p, ok := secs.ConfigSections()[key]
	if !ok {
		return reflect.Value{}, false
	}
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	return v.Elem(), true
}

// errUnknownOption reports a path that names no field.
var errUnknownOption = errors.New("unknown option")

// field is one yaml-visible field of a struct type.
type field struct {
	name   string // yaml name; empty for inline
	index  int    // reflect field index
	inline bool
}

// structFields lists the yaml-visible fields of struct type t the way
// go.yaml.in/yaml/v3 names them: the tag name, else the lower-cased Go name;
// `yaml:"-"` and unexported fields are left out (an unexported embedded struct
// marked inline stays: its exported fields are settable through it).
func structFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() && !sf.Anonymous {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		inline := false
		for _, o := range strings.Split(opts, ",") {
			if o == "inline" {
				inline = true
			}
		}
		if !sf.IsExported() && !inline {
			continue // an unexported embedded type is visible only when inline
		}
		if inline {
			if sf.Type.Kind() == reflect.Struct {
				out = append(out, field{index: i, inline: true})
			}
			continue // inline maps are not addressable by name
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, field{name: name, index: i})
	}
	return out
}

// lookupField finds the field named name in struct value v, descending into
// inline structs.
func lookupField(v reflect.Value, name string) (reflect.Value, bool) {
	for _, f := range structFields(v.Type()) {
		fv := v.Field(f.index)
		if f.inline {
			if got, ok := lookupField(fv, name); ok {
				return got, true
			}
			continue
		}
		if f.name == name {
			return fv, true
		}
	}
	return reflect.Value{}, false
}

// isLeaf reports whether values of type t are set from one piece of text.
func isLeaf(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
		if t.Kind() == reflect.Pointer {
			return false
		}
	}
	if isScalar(t) {
		return true
	}
	return t.Kind() == reflect.Slice && isScalar(t.Elem())
}

// isScalar reports whether type t is one value converted from text.
func isScalar(t reflect.Type) bool {
	if t == durationType || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	return isBuiltinScalar(t.Kind())
}

// setLeaf converts s and stores it in v, which must be settable and of a type
// for which isLeaf is true.
func setLeaf(v reflect.Value, s string) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if v.Kind() == reflect.Slice && !reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
		if strings.TrimSpace(s) == "" {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return nil
		}
		parts := strings.Split(s, ",")
		out := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, p := range parts {
			if err := setScalar(out.Index(i), strings.TrimSpace(p)); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		v.Set(out)
		return nil
	}
	return setScalar(v, s)
}

// setScalar converts s and stores it in v. A type with its own text or YAML
// decoding uses it (a YAML decoder is handed a scalar node).
func setScalar(v reflect.Value, s string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		return u.UnmarshalYAML(&yaml.Node{Kind: yaml.ScalarNode, Value: s})
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. 1s, 250ms, 1m30s)", s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 0, v.Type().Bits())
		if err != nil {
			return numError(s, "integer", err)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 0, v.Type().Bits())
		if err != nil {
			return numError(s, "unsigned integer", err)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), v.Type().Bits())
		if err != nil {
			return numError(s, "number", err)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("cannot set a %s from text", v.Type())
	}
	return nil
}

// isBuiltinScalar reports whether setScalar converts kind k itself.
func isBuiltinScalar(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// parseBool accepts strconv.ParseBool's forms and yes/no/on/off.
func parseBool(s string) (bool, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "yes", "on", "y":
		return true, nil
	case "no", "off", "n":
		return false, nil
	}
	b, err := strconv.ParseBool(t)
	if err != nil {
		return false, fmt.Errorf("invalid boolean %q (want true or false)", s)
	}
	return b, nil
}

// numError turns a strconv error into a short message.
func numError(s, what string, err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%s %q out of range", what, s)
	}
	return fmt.Errorf("invalid %s %q", what, s)
}

// setPath sets the field that segs names under v (a settable value) from
// value. A leaf is converted from text; a section (struct, slice of structs,
// map) is decoded from value as strict YAML. Nil pointers on the way are
// allocated. A map of string keys takes the rest of the path as the key.
func setPath(v reflect.Value, segs []string, value string) error {
	for v.Kind() == reflect.Pointer && !isLeaf(v.Type()) {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if len(segs) == 0 {
		if isLeaf(v.Type()) {
			return setLeaf(v, value)
		}
		return setYAML(v, value)
	}
	if secs, ok := sectionsOf(v); ok {
		sec, ok := section(secs, segs[0])
		if !ok {
			return errUnknownOption
		}
		return setPath(sec, segs[1:], value)
	}
	switch {
	case v.Kind() == reflect.Struct && !isLeaf(v.Type()):
		f, ok := lookupField(v, segs[0])
		if !ok {
			return errUnknownOption
		}
		return setPath(f, segs[1:], value)
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		key := reflect.New(v.Type().Key()).Elem()
		key.SetString(strings.Join(segs, "."))
		elem := reflect.New(v.Type().Elem()).Elem()
		if old := v.MapIndex(key); old.IsValid() {
			elem.Set(old)
		}
		if err := setPath(elem, nil, value); err != nil {
			return err
		}
		v.SetMapIndex(key, elem)
		return nil
	default:
		return errUnknownOption
	}
}

// setYAML decodes value as strict YAML into v, which must be addressable.
func setYAML(v reflect.Value, value string) error {
	dec := yaml.NewDecoder(strings.NewReader(value))
	dec.KnownFields(true)
	if err := dec.Decode(v.Addr().Interface()); err != nil {
		return fmt.Errorf("invalid YAML value for a %s: %s", v.Type(), strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "\n ", ""))
	}
	return nil
}

// target checks that dst is a non-nil pointer to a struct and returns the struct.
func target(dst any) (reflect.Value, error) {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, fmt.Errorf("config: destination must be a non-nil pointer to a struct, got %T", dst)
	}
	return v.Elem(), nil
}
