package main

import (
	"encoding/json"
	"fmt"
	"math"
	"path"
	"reflect"
	"strconv"
	"strings"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/conformance"
	"github.com/noonhq/noon/idl/methods"
	"github.com/noonhq/noon/internal/thriftx"
)

// thriftFiles is thrift/<service>.json for every service of idl/methods.
func thriftFiles() ([]conformance.ThriftFile, error) {
	by := map[string]*conformance.ThriftFile{}
	var order []string
	for _, name := range methods.Names() {
		m, _ := methods.Lookup(name)
		svc, _, _ := strings.Cut(name, ".")
		f := by[svc]
		if f == nil {
			f = &conformance.ThriftFile{
				Service:  svc,
				Encoding: "thrift compact protocol (version 1); request_hex and reply_hex are the frame payloads",
				Notes: []string{
					"request and reply are JSON of the structs with exactly the fields their encoding carries: every field that is not optional (at its value, default or zero), and the optional fields that are set. Field names as in idl/*.thrift; binary as lowercase hex; i64 as a JSON number, or a string when beyond +-2^53; map keys sorted.",
					"Cases: \"full\" sets every field, optionals included (lists of 2, maps of 1 entry: Thrift leaves the order of map entries to the writer, so only one-entry maps have one encoding); \"extremes\" sets every field to an edge value (int32 and int64 minimum or maximum, empty or non-ASCII strings, binary 00 ff, optionals set to zero values); \"minimal\" sets no optional field and leaves every other at its default (nested structs minimal, lists and maps empty).",
					"A conforming client decodes request_hex and reply_hex to request and reply, and encodes request and reply to exactly request_hex and reply_hex (fields in id order, as the Go encoder writes them).",
				},
			}
			if svc == "echo" {
				f.Notes = append(f.Notes, "echo.Echo's payloads are raw bytes, not a Thrift struct: request_type and reply_type are \"raw\", and request and reply are the payload as a hex string, equal to request_hex and reply_hex (echo.Echo replies with its request unchanged).")
			}
			by[svc] = f
			order = append(order, svc)
		}
		mm, err := methodCases(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		f.Methods = append(f.Methods, mm)
	}
	out := make([]conformance.ThriftFile, 0, len(order))
	for _, svc := range order {
		out = append(out, *by[svc])
	}
	return out, nil
}

// fill styles.
const (
	styleFull = iota
	styleExtremes
	styleMinimal
)

var styleNames = []string{"full", "extremes", "minimal"}

func methodCases(m methods.Method) (conformance.Method, error) {
	out := conformance.Method{Method: m.Name, RequestType: typeName(m.NewReq), ReplyType: typeName(m.NewReply)}
	if m.NewReq == nil && m.NewReply == nil {
		for _, c := range []struct {
			name string
			b    []byte
		}{{"text", []byte("hello")}, {"binary", []byte{0, 1, 0x7f, 0x80, 0xff}}, {"empty", nil}} {
			h := conformance.Hex(c.b)
			j, _ := json.Marshal(h)
			out.Cases = append(out.Cases, conformance.Case{Name: c.name, Request: j, RequestHex: h, Reply: j, ReplyHex: h})
		}
		return out, nil
	}
	if m.NewReq == nil || m.NewReply == nil {
		return out, fmt.Errorf("half-raw methods are not supported")
	}
	for style, name := range styleNames {
		var c conformance.Case
		c.Name = name
		var err error
		if c.Request, c.RequestHex, err = encodeCase(m.NewReq(), style); err != nil {
			return out, fmt.Errorf("request: %w", err)
		}
		if c.Reply, c.ReplyHex, err = encodeCase(m.NewReply(), style); err != nil {
			return out, fmt.Errorf("reply: %w", err)
		}
		out.Cases = append(out.Cases, c)
	}
	return out, nil
}

// typeName is "<namespace>.<Struct>" of what newT makes, or "raw".
func typeName(newT func() thrift.TStruct) string {
	if newT == nil {
		return conformance.RawType
	}
	t := reflect.TypeOf(newT()).Elem()
	return path.Base(t.PkgPath()) + "." + t.Name()
}

// serial numbers the values of a full case, so that no two fields or
// list elements are alike; encodeCase resets it, so the values are the
// same at every run.
var serial int

func encodeCase(s thrift.TStruct, style int) (json.RawMessage, string, error) {
	serial = 0
	fill(reflect.ValueOf(s).Elem(), style, 0)
	b, err := thriftx.Marshal(s)
	if err != nil {
		return nil, "", err
	}
	j, err := conformance.ToJSON(s)
	if err != nil {
		return nil, "", err
	}
	return j, conformance.Hex(b), nil
}

// fill sets the fields of struct v, made by its New function (defaults
// set), in style.
func fill(v reflect.Value, style, depth int) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("thrift")
		if !ok {
			continue
		}
		parts := strings.Split(tag, ",")
		id, _ := strconv.Atoi(parts[1])
		optional := strings.HasSuffix(sf.Tag.Get("json"), ",omitempty")
		fv := v.Field(i)
		if style == styleMinimal {
			if !optional && fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Struct && fv.IsNil() {
				nv := newStruct(fv.Type().Elem())
				fill(nv.Elem(), style, depth+1)
				fv.Set(nv)
			}
			continue
		}
		fv.Set(value(fv.Type(), parts[0], id, style, depth))
	}
}

// newStruct makes a zero *T. (A nested struct's New function would set
// the IDL's default values, but no nested struct of the IDL has any: the
// one default, room.ReadyRequest.ready, is a request's.)
func newStruct(t reflect.Type) reflect.Value { return reflect.New(t) }

// value is a value of type t for field name (id) in style.
func value(t reflect.Type, name string, id, style, depth int) reflect.Value {
	ext := style == styleExtremes
	switch t.Kind() {
	case reflect.Pointer:
		nv := reflect.New(t.Elem())
		if t.Elem().Kind() == reflect.Struct {
			nv = newStruct(t.Elem())
			fill(nv.Elem(), style, depth+1)
			return nv
		}
		if ext {
			nv.Elem().Set(reflect.Zero(t.Elem())) // an optional set to its zero value
		} else {
			nv.Elem().Set(value(t.Elem(), name, id, style, depth))
		}
		return nv
	case reflect.String:
		if ext {
			if id%2 == 0 {
				return reflect.ValueOf("").Convert(t)
			}
			return reflect.ValueOf("é✓\U0001F600\"\\\n").Convert(t)
		}
		serial++
		return reflect.ValueOf(fmt.Sprintf("%s-%d", name, serial)).Convert(t)
	case reflect.Bool:
		return reflect.ValueOf(!ext).Convert(t)
	case reflect.Int32:
		switch {
		case ext && id%2 == 0:
			return reflect.ValueOf(int32(math.MinInt32)).Convert(t)
		case ext:
			return reflect.ValueOf(int32(math.MaxInt32)).Convert(t)
		}
		serial++
		return reflect.ValueOf(int32(100*id + serial)).Convert(t)
	case reflect.Int64:
		switch {
		case ext && id%2 == 0:
			return reflect.ValueOf(int64(math.MinInt64)).Convert(t)
		case ext:
			return reflect.ValueOf(int64(math.MaxInt64)).Convert(t)
		}
		serial++
		return reflect.ValueOf(int64(1_700_000_000_000 + 1000*id + serial)).Convert(t)
	case reflect.Float64:
		if ext {
			return reflect.ValueOf(-1.5e300).Convert(t)
		}
		return reflect.ValueOf(float64(id) + 0.25).Convert(t)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			if ext {
				return reflect.ValueOf([]byte{0x00, 0xff}).Convert(t)
			}
			return reflect.ValueOf([]byte(name)).Convert(t)
		}
		n := 2
		if ext || depth > 3 {
			n = 1
		}
		s := reflect.MakeSlice(t, n, n)
		for i := range n {
			s.Index(i).Set(value(t.Elem(), fmt.Sprintf("%s%d", name, i), id, style, depth+1))
		}
		return s
	case reflect.Map:
		m := reflect.MakeMapWithSize(t, 1)
		key := "key"
		if ext {
			key = ""
		}
		m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), value(t.Elem(), name, id, style, depth+1))
		return m
	}
	panic("conformance: unsupported type " + t.String())
}
