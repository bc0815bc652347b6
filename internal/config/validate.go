package config

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/noonhq/noon/wire"
)

// Validator is implemented by option structs that check themselves. Validate
// returns nil, a [FieldError], or [Errors], with field paths relative to the
// struct (e.g. "max_frame"); [Validate] and [Nested] add the outer path.
type Validator interface {
	Validate() error
}

// FieldError is a bad option value: Field is the dotted yaml path of the
// option ("broker.max_frame"), Msg says what is wrong with it.
type FieldError struct {
	Field string
	Msg   string
}

// Error returns "config: <field>: <msg>" ("config: <msg>" without a field).
func (e FieldError) Error() string {
	if e.Field == "" {
		return "config: " + e.Msg
	}
	return "config: " + e.Field + ": " + e.Msg
}

// Errors collects several FieldErrors, e.g. everything wrong with one Options:
//
//	var errs config.Errors
//	errs.Add(config.Positive("max_frame", o.MaxFrame))
//	errs.Add(config.HostPort("tcp_address", o.TCPAddress))
//	errs.Add(config.Nested("log", o.Log.Validate()))
//	return errs.Err()
type Errors []FieldError

// Error returns "config: a: msg; b: msg".
func (e Errors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = strings.TrimPrefix(fe.Error(), "config: ")
	}
	return "config: " + strings.Join(parts, "; ")
}

// Unwrap returns the FieldErrors, for errors.As and errors.Is.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, fe := range e {
		out[i] = fe
	}
	return out
}

// Add appends err unless it is nil: a FieldError as it is, Errors and joined
// errors (errors.Join) item by item, any other error as a FieldError with no
// field.
func (e *Errors) Add(err error) {
	*e = appendField(*e, "", err)
}

// Addf appends a FieldError for field with a formatted message.
func (e *Errors) Addf(field, format string, args ...any) {
	*e = append(*e, FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Err returns nil when e is empty, the single FieldError when it holds one,
// and e otherwise. Return it rather than e itself, so that an empty list is a
// nil error.
func (e Errors) Err() error {
	switch len(e) {
	case 0:
		return nil
	case 1:
		return e[0]
	}
	return e
}

// Nested puts prefix in front of the fields in err, the result of validating
// the option struct found at path prefix: Nested("log", FieldError{"level",
// ...}) is FieldError{"log.level", ...}. It returns nil for a nil err.
func Nested(prefix string, err error) error {
	if err == nil {
		return nil
	}
	return Errors(appendField(nil, prefix, err)).Err()
}

// appendField flattens err into FieldErrors under prefix and appends them.
func appendField(dst Errors, prefix string, err error) Errors {
	if err == nil {
		return dst
	}
	switch e := err.(type) {
	case FieldError:
		return append(dst, FieldError{Field: joinPath(prefix, e.Field), Msg: e.Msg})
	case *FieldError:
		if e == nil {
			return dst
		}
		return append(dst, FieldError{Field: joinPath(prefix, e.Field), Msg: e.Msg})
	case Errors:
		for _, fe := range e {
			dst = appendField(dst, prefix, fe)
		}
		return dst
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			dst = appendField(dst, prefix, inner)
		}
		return dst
	}
	return append(dst, FieldError{Field: prefix, Msg: strings.TrimPrefix(err.Error(), "config: ")})
}

// joinPath joins two dotted paths; an index ("[2]") joins without a dot.
func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case strings.HasPrefix(b, "["):
		return a + b
	}
	return a + "." + b
}

// Validate checks v (an options struct or a pointer to one) and everything in
// it: it walks the fields by yaml name, and where a value implements
// [Validator] it calls Validate, puts the value's path in front of the fields
// of what it returns, and does not descend further (a Validator checks its
// own nested options, with [Nested]). Lists and string-keyed maps are walked
// item by item ("listeners[0]", "aliases.CreateRoom"). It returns nil, one
// FieldError, or [Errors] with every problem found.
func Validate(v any) error {
	var errs Errors
	validateValue(reflect.ValueOf(v), "", &errs, map[reflect.Type]bool{})
	return errs.Err()
}

// validateValue is Validate for the value at path; onStack guards against
// recursive types reached through nil pointers.
func validateValue(v reflect.Value, path string, errs *Errors, onStack map[reflect.Type]bool) {
	if !v.IsValid() {
		return
	}
	if v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		if val, ok := asValidator(v); ok {
			*errs = appendField(*errs, path, val.Validate())
			return
		}
		validateValue(v.Elem(), path, errs, onStack)
		return
	}
	if !v.CanAddr() && v.CanInterface() { // make pointer-receiver Validate methods reachable
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		v = c
	}
	if v.CanAddr() {
		if val, ok := asValidator(v.Addr()); ok {
			*errs = appendField(*errs, path, val.Validate())
			return
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		if onStack[v.Type()] {
			return
		}
		onStack[v.Type()] = true
		defer delete(onStack, v.Type())
		for _, f := range structFields(v.Type()) {
			validateValue(v.Field(f.index), joinPath(path, f.name), errs, onStack)
		}
	case reflect.Slice, reflect.Array:
		if isScalar(v.Type().Elem()) {
			return
		}
		for i := range v.Len() {
			validateValue(v.Index(i), fmt.Sprintf("%s[%d]", path, i), errs, onStack)
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String || isScalar(v.Type().Elem()) {
			return
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			validateValue(v.MapIndex(k), joinPath(path, k.String()), errs, onStack)
		}
	}
}

// asValidator returns v as a Validator if it is one and reflection may
// expose it (the value of an unexported embedded struct may not be; its
// methods are promoted to the outer struct anyway).
func asValidator(v reflect.Value) (Validator, bool) {
	if !v.CanInterface() {
		return nil, false
	}
	val, ok := v.Interface().(Validator)
	return val, ok
}

// Number is the set of types the numeric checks take; time.Duration and
// ByteSize are in it.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64
}

// Positive checks v > 0.
func Positive[T Number](field string, v T) error {
	if v > 0 {
		return nil
	}
	return FieldError{Field: field, Msg: fmt.Sprintf("must be positive, got %v", v)}
}

// NonNegative checks v >= 0.
func NonNegative[T Number](field string, v T) error {
	if v >= 0 {
		return nil
	}
	return FieldError{Field: field, Msg: fmt.Sprintf("must not be negative, got %v", v)}
}

// Range checks lo <= v <= hi.
func Range[T Number](field string, v, lo, hi T) error {
	if v >= lo && v <= hi {
		return nil
	}
	return FieldError{Field: field, Msg: fmt.Sprintf("must be between %v and %v, got %v", lo, hi, v)}
}

// NonEmpty checks that s holds more than white space.
func NonEmpty(field, s string) error {
	if strings.TrimSpace(s) != "" {
		return nil
	}
	return FieldError{Field: field, Msg: "must not be empty"}
}

// OneOf checks that v is one of allowed.
func OneOf(field, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return FieldError{Field: field, Msg: fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, "|"), v)}
}

// HostPort checks a listen or dial address "host:port": the host may be
// empty (all interfaces, ":1055"), a name, or an IP (IPv6 in brackets); the
// port is a number from 0 (pick a free port, for tests) to 65535. An empty
// addr is an error; options where empty means "off" check that first.
func HostPort(field, addr string) error {
	if _, _, err := splitHostPort(addr); err != nil {
		return FieldError{Field: field, Msg: err.Error()}
	}
	return nil
}

// splitHostPort splits and checks "host:port".
func splitHostPort(addr string) (host string, port int, err error) {
	if addr == "" {
		return "", 0, errors.New("must be host:port, got an empty string")
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("must be host:port, got %q", addr)
	}
	if strings.ContainsAny(h, " /") {
		return "", 0, fmt.Errorf("invalid host in %q", addr)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port must be a number from 0 to 65535, got %q in %q", p, addr)
	}
	return h, int(n), nil
}

// Endpoint checks a ZeroMQ endpoint a socket binds, in the one grammar of
// wire.ValidateListenEndpoint: "tcp://host:port", where host may be "*"
// (all interfaces) and port may be 0 or "*" (a free port).
func Endpoint(field, ep string) error {
	if err := wire.ValidateListenEndpoint(ep); err != nil {
		return FieldError{Field: field, Msg: err.Error()}
	}
	return nil
}

// DialEndpoint checks a ZeroMQ endpoint a socket connects to
// (wire.ValidateDialEndpoint): a real host and a non-zero port.
func DialEndpoint(field, ep string) error {
	if err := wire.ValidateDialEndpoint(ep); err != nil {
		return FieldError{Field: field, Msg: err.Error()}
	}
	return nil
}
