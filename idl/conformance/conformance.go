// Package conformance holds the golden vectors of noon's client wire, in
// files any language can read (JSON, bytes as lowercase hex), and the Go
// types of those files:
//
//   - frames.json: pandaparty frames (requests, replies, pushes) and every
//     bad_frame case of the decoder (Frames);
//   - thrift/<service>.json: the Thrift compact encoding of every method's
//     request and reply of idl/methods, beside their JSON (ThriftFile);
//   - brokerlist.json: BrokerList bodies, the broker a client picks, and
//     bodies it must reject (BrokerLists);
//   - sessions/*.json: scripted sessions recorded from a real `noon dev`
//     platform, bytes out and in, with per-run values as placeholders
//     (Session).
//
// The files are written by `go run ./idl/conformance/gen` (`make gen`) and
// committed; a test fails when regenerating would change them. The Go
// client passes them in edge/client's conformance test; a client in
// another language replays them in its own tests.
package conformance

//go:generate go run ./gen -out .

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/thrift/lib/go/thrift"
)

// Frames is frames.json.
type Frames struct {
	// MaxFrame is the largest TotalLen a decoder accepts (1 MiB).
	MaxFrame int `json:"max_frame"`
	// MaxMethod is the longest request method (128 bytes).
	MaxMethod int `json:"max_method"`
	// MaxErr is the longest first string of a response: an error string
	// or "@" + event type (1 KiB).
	MaxErr int `json:"max_err"`
	// MinFrame is the smallest legal TotalLen (8).
	MinFrame int `json:"min_frame"`
	// Notes explain the file.
	Notes []string `json:"notes"`
	// Vectors are the frames.
	Vectors []Frame `json:"vectors"`
}

// Frame kinds.
const (
	KindRequest = "request"
	KindReply   = "reply"
	KindPush    = "push"
	KindBad     = "bad"
)

// Scopes of a bad frame.
const (
	// ScopeFrame: bad however it arrives, as bytes on a TCP stream (the
	// reader rejects it) or as one WebSocket binary message.
	ScopeFrame = "frame"
	// ScopeMessage: bad as one whole WebSocket message (its TotalLen does
	// not match the message size); on a TCP stream the same bytes are a
	// truncated frame or a frame followed by more bytes.
	ScopeMessage = "message"
)

// Frame is one vector of frames.json.
type Frame struct {
	Name string `json:"name"`
	// Kind is request, reply, push or bad.
	Kind string `json:"kind"`
	// Hex is the whole frame, TotalLen included.
	Hex string `json:"hex"`
	// Method is a request's method.
	Method *string `json:"method,omitempty"`
	// Err is a reply's error string ("" on success).
	Err *string `json:"err,omitempty"`
	// Event is a push's event type without the leading "@".
	Event *string `json:"event,omitempty"`
	// First is the raw first string of the frame, as on the wire (a
	// push's includes the "@").
	First *string `json:"first,omitempty"`
	// PayloadHex is the payload of a good frame.
	PayloadHex *string `json:"payload_hex,omitempty"`
	// Shape is, for a bad frame, which side decodes it: request (the
	// edge, methods of at most max_method bytes) or response (a client,
	// first strings of at most max_err bytes).
	Shape string `json:"shape,omitempty"`
	// Scope is, for a bad frame, frame or message (see ScopeFrame).
	Scope string `json:"scope,omitempty"`
	// Reason says what is wrong with a bad frame.
	Reason string `json:"reason,omitempty"`
	// Code is bad_frame for a bad frame.
	Code string `json:"code,omitempty"`
	// Error is the Go decoder's exact text for a bad frame; the edge
	// answers "bad_frame: " + Error and closes the connection. Other
	// clients need not match it.
	Error string `json:"error,omitempty"`
	// Note is a remark.
	Note string `json:"note,omitempty"`
}

// ThriftFile is thrift/<service>.json.
type ThriftFile struct {
	Service  string   `json:"service"`
	Encoding string   `json:"encoding"`
	Notes    []string `json:"notes"`
	Methods  []Method `json:"methods"`
}

// RawType is the request_type and reply_type of a method whose payload
// is raw bytes, not a Thrift struct (echo.Echo).
const RawType = "raw"

// Method is one method of a ThriftFile.
type Method struct {
	Method string `json:"method"`
	// RequestType and ReplyType are "<namespace>.<Struct>", or RawType.
	RequestType string `json:"request_type"`
	ReplyType   string `json:"reply_type"`
	Cases       []Case `json:"cases"`
}

// Case is one request and reply of a Method. For a raw method Request and
// Reply are hex strings equal to RequestHex and ReplyHex.
type Case struct {
	Name       string          `json:"name"`
	Request    json.RawMessage `json:"request"`
	RequestHex string          `json:"request_hex"`
	Reply      json.RawMessage `json:"reply"`
	ReplyHex   string          `json:"reply_hex"`
}

// BrokerLists is brokerlist.json.
type BrokerLists struct {
	Notes     []string         `json:"notes"`
	Valid     []BrokerListCase `json:"valid"`
	Malformed []BrokerListBad  `json:"malformed"`
}

// BrokerListCase is a body a client accepts.
type BrokerListCase struct {
	Name string `json:"name"`
	// Body is the HTTP body, exactly as served.
	Body string `json:"body"`
	// Order is every broker, least loaded first, ties by address
	// (byte-wise ascending): the order a client tries them in.
	Order []string `json:"order"`
	// Pick is the broker a client connects to first: Order[0], or "" for
	// an empty list (the client fails: no brokers).
	Pick string `json:"pick"`
	// Avoid and OrderAvoiding, when set: reconnecting after losing the
	// broker Avoid, the client tries the others in order, Avoid last.
	Avoid         string   `json:"avoid,omitempty"`
	OrderAvoiding []string `json:"order_avoiding,omitempty"`
}

// BrokerListBad is a body a client must reject.
type BrokerListBad struct {
	Name   string `json:"name"`
	Body   string `json:"body"`
	Reason string `json:"reason"`
}

// Session is sessions/<name>.json: a scripted conversation with a broker.
type Session struct {
	Name string `json:"name"`
	// Setup says what the platform and the client do.
	Setup string `json:"setup"`
	// Notes are the rules of replaying a session (the same in every
	// file).
	Notes []string `json:"notes"`
	// Placeholders name what varies per run: in a hex string, "{NAME}"
	// stands for the Len bytes of that value, as they appear in the frame
	// (see Placeholder). Lengths around them were recorded with values of
	// those lengths.
	Placeholders []Placeholder `json:"placeholders"`
	// Connections are the connections in the order they are opened; the
	// steps of each run in order.
	Connections []Connection `json:"connections"`
}

// Placeholder is a value that varies per run.
type Placeholder struct {
	Name string `json:"name"`
	// Len is its length in bytes when fixed, else 0.
	Len int `json:"len,omitempty"`
	// Description says what it is and how it is encoded.
	Description string `json:"description"`
	// Wildcard: each occurrence may be another value (times). Otherwise
	// every occurrence of the name in a session is the same value: a
	// replayer binds it where it first appears and checks it after (a
	// token the broker sent must come back in a resume).
	Wildcard bool `json:"wildcard,omitempty"`
}

// Connection is one connection of a Session.
type Connection struct {
	// Broker names the broker ("broker1", "broker2"): a change of broker
	// is a new connection to another.
	Broker string `json:"broker"`
	Steps  []Step `json:"steps"`
}

// Step directions.
const (
	DirSend = "send" // client -> broker
	DirRecv = "recv" // broker -> client
)

// Step is one whole frame sent or received.
type Step struct {
	Dir string `json:"dir"`
	// Hex is the whole frame, TotalLen included, with placeholders.
	Hex string `json:"hex"`
	// Note says what the frame is.
	Note string `json:"note"`
}

// Hex returns b as lowercase hex.
func Hex(b []byte) string { return hex.EncodeToString(b) }

// maxSafeInt is 2^53: integers beyond it are written as JSON strings, as
// a JavaScript number cannot hold them exactly.
const maxSafeInt = 1 << 53

// ToJSON returns the JSON of a generated Thrift struct as the conformance
// files write it: exactly the fields its compact encoding carries (every
// field that is not optional, and the optional fields that are set),
// named as in idl/*.thrift and in field-id order; binary as lowercase hex;
// i64 as a number, or a string beyond ±2^53; map keys sorted.
func ToJSON(s thrift.TStruct) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := writeValue(&b, reflect.ValueOf(s)); err != nil {
		return nil, err
	}
	return json.RawMessage(b.Bytes()), nil
}

// field is one thrift field of a generated struct.
type field struct {
	index    int
	name     string
	id       int
	optional bool
}

// fieldsOf lists the thrift fields of struct type t by id.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("thrift")
		if !ok {
			continue
		}
		parts := strings.Split(tag, ",")
		id, _ := strconv.Atoi(parts[1])
		// The Go generator marks optional fields omitempty in JSON.
		optional := strings.HasSuffix(sf.Tag.Get("json"), ",omitempty")
		out = append(out, field{index: i, name: parts[0], id: id, optional: optional})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func writeValue(b *bytes.Buffer, v reflect.Value) error {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return fmt.Errorf("conformance: nil %s", v.Type())
		}
		return writeValue(b, v.Elem())
	case reflect.Struct:
		b.WriteByte('{')
		n := 0
		for _, f := range fieldsOf(v.Type()) {
			fv := v.Field(f.index)
			if f.optional && isNil(fv) {
				continue
			}
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			name, _ := json.Marshal(f.name)
			b.Write(name)
			b.WriteByte(':')
			if err := writeValue(b, fv); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
		b.WriteByte('}')
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b.WriteString(`"` + Hex(v.Bytes()) + `"`)
			return nil
		}
		b.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeValue(b, v.Index(i)); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			name, _ := json.Marshal(k.String())
			b.Write(name)
			b.WriteByte(':')
			if err := writeValue(b, v.MapIndex(k)); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case reflect.String:
		s, _ := json.Marshal(v.String())
		b.Write(s)
	case reflect.Bool:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case reflect.Int8, reflect.Int16, reflect.Int32:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Int64:
		n := v.Int()
		if n > maxSafeInt || n < -maxSafeInt {
			b.WriteString(`"` + strconv.FormatInt(n, 10) + `"`)
		} else {
			b.WriteString(strconv.FormatInt(n, 10))
		}
	case reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("conformance: %v has no JSON", f)
		}
		b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	default:
		return fmt.Errorf("conformance: unsupported %s", v.Type())
	}
	return nil
}

func isNil(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return v.IsNil()
	}
	return false
}

// FromJSON fills s, a fresh generated Thrift struct, from JSON written as
// ToJSON writes it. Every field that is not optional must be present, and
// no unknown field may be.
func FromJSON(data []byte, s thrift.TStruct) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return err
	}
	return readValue(reflect.ValueOf(s), x)
}

func readValue(v reflect.Value, x any) error {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return readValue(v.Elem(), x)
	case reflect.Struct:
		obj, ok := x.(map[string]any)
		if !ok {
			return fmt.Errorf("want an object for %s, got %T", v.Type(), x)
		}
		seen := 0
		for _, f := range fieldsOf(v.Type()) {
			fx, ok := obj[f.name]
			if !ok {
				if !f.optional {
					return fmt.Errorf("%s: field %s missing", v.Type(), f.name)
				}
				continue
			}
			seen++
			if err := readValue(v.Field(f.index), fx); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
		if seen != len(obj) {
			return fmt.Errorf("%s: unknown fields in %v", v.Type(), obj)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("want a hex string, got %T", x)
			}
			b, err := hex.DecodeString(s)
			if err != nil {
				return err
			}
			v.SetBytes(b)
			return nil
		}
		arr, ok := x.([]any)
		if !ok {
			return fmt.Errorf("want an array, got %T", x)
		}
		out := reflect.MakeSlice(v.Type(), len(arr), len(arr))
		for i, e := range arr {
			if err := readValue(out.Index(i), e); err != nil {
				return err
			}
		}
		v.Set(out)
	case reflect.Map:
		obj, ok := x.(map[string]any)
		if !ok {
			return fmt.Errorf("want an object, got %T", x)
		}
		out := reflect.MakeMapWithSize(v.Type(), len(obj))
		for k, e := range obj {
			ev := reflect.New(v.Type().Elem()).Elem()
			if err := readValue(ev, e); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), ev)
		}
		v.Set(out)
	case reflect.String:
		s, ok := x.(string)
		if !ok {
			return fmt.Errorf("want a string, got %T", x)
		}
		v.SetString(s)
	case reflect.Bool:
		bv, ok := x.(bool)
		if !ok {
			return fmt.Errorf("want a bool, got %T", x)
		}
		v.SetBool(bv)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var s string
		switch n := x.(type) {
		case json.Number:
			s = n.String()
		case string:
			s = n
		default:
			return fmt.Errorf("want an integer, got %T", x)
		}
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Float64:
		n, ok := x.(json.Number)
		if !ok {
			return fmt.Errorf("want a number, got %T", x)
		}
		f, err := n.Float64()
		if err != nil {
			return err
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("conformance: unsupported %s", v.Type())
	}
	return nil
}
