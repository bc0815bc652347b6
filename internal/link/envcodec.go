package link

import (
	"encoding/binary"
	"math"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// A hand-written codec for platformpb.Envelope, the one message of the hot
// path, written with protowire instead of proto-go's table-driven
// MarshalAppend and Unmarshal. It follows proto-go's proto3 rules exactly
// (FuzzEnvelopeCodec checks it against proto-go):
//
//   - implicit presence: a zero scalar, an empty string or empty bytes is not
//     written; a double is written when its bits are non-zero, so -0.0 and
//     NaN are; a non-nil Session is written even when empty;
//   - a nil element of Bindings or Subscriptions is written as an empty
//     submessage (what proto-go writes for it);
//   - a map entry of Session.Bindings is a submessage {key = 1, value = 2}
//     with both fields written even when empty, in map order;
//   - known fields go in field-number order, then the message's unknown
//     fields, so that an envelope forwarded loses nothing;
//   - Kind is an open enum: a negative value is written as a 10-byte
//     varint, and a varint read is truncated to int32;
//   - an empty bytes field read sets Payload to nil (proto-go's
//     consumeBytesNoZero), a non-empty one is copied.
//
// The decoder takes a fast path for what the platform sends; on anything
// else (an unknown field, a known field of an unexpected wire type, a second
// Session, which proto semantics merge, invalid UTF-8, a malformed input) it
// starts over with proto.Unmarshal, so errors and odd inputs behave exactly
// as proto-go's.

// Tags (field number << 3 | wire type) of the fields, one byte each.
const (
	tagEnvKind          = 1<<3 | byte(protowire.VarintType)
	tagEnvRequestID     = 2<<3 | byte(protowire.VarintType)
	tagEnvMethod        = 3<<3 | byte(protowire.BytesType)
	tagEnvSession       = 4<<3 | byte(protowire.BytesType)
	tagEnvDeadline      = 5<<3 | byte(protowire.VarintType)
	tagEnvPayload       = 6<<3 | byte(protowire.BytesType)
	tagEnvErrorCode     = 7<<3 | byte(protowire.BytesType)
	tagEnvErrorMessage  = 8<<3 | byte(protowire.BytesType)
	tagEnvBindings      = 9<<3 | byte(protowire.BytesType)
	tagEnvSubscriptions = 10<<3 | byte(protowire.BytesType)
	tagEnvLoad          = 11<<3 | byte(protowire.Fixed64Type)
	tagEnvSender        = 12<<3 | byte(protowire.BytesType)
	tagEnvAddressed     = 13<<3 | byte(protowire.BytesType)

	tagSesID         = 1<<3 | byte(protowire.BytesType)
	tagSesUserID     = 2<<3 | byte(protowire.BytesType)
	tagSesBindings   = 3<<3 | byte(protowire.BytesType)
	tagSesRemoteAddr = 4<<3 | byte(protowire.BytesType)
	tagSesBroker     = 5<<3 | byte(protowire.BytesType)

	tagMapKey   = 1<<3 | byte(protowire.BytesType)
	tagMapValue = 2<<3 | byte(protowire.BytesType)

	tagBndKey     = 1<<3 | byte(protowire.BytesType)
	tagBndValue   = 2<<3 | byte(protowire.BytesType)
	tagBndUnset   = 3<<3 | byte(protowire.VarintType)
	tagBndSession = 4<<3 | byte(protowire.BytesType)
	tagBndExpires = 5<<3 | byte(protowire.VarintType)

	tagSubTopic       = 1<<3 | byte(protowire.BytesType)
	tagSubUnsubscribe = 2<<3 | byte(protowire.VarintType)
)

// sizeStr is the size of a non-empty string or bytes field with a one-byte
// tag, 0 for an empty one.
func sizeStr(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(uint64(n)) + n
}

// sizeVar is the size of a varint field with a one-byte tag, 0 for 0.
func sizeVar(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func sizeBool(v bool) int {
	if v {
		return 2
	}
	return 0
}

// sizeSub is the size of a submessage field of n bytes with a one-byte tag.
func sizeSub(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

func appendStr(b []byte, tag byte, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, tag)
	b = protowire.AppendVarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendVar(b []byte, tag byte, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, tag)
	return protowire.AppendVarint(b, v)
}

func appendBool(b []byte, tag byte, v bool) []byte {
	if !v {
		return b
	}
	return append(b, tag, 1)
}

// sizeEnvelope is the size of appendEnvelope's encoding of m.
func sizeEnvelope(m *platformpb.Envelope) int {
	if m == nil {
		return 0
	}
	n := sizeVar(uint64(int64(m.Kind))) +
		sizeVar(m.RequestId) +
		sizeStr(len(m.Method)) +
		sizeVar(uint64(m.DeadlineUnixNano)) +
		sizeStr(len(m.Payload)) +
		sizeStr(len(m.ErrorCode)) +
		sizeStr(len(m.ErrorMessage)) +
		sizeStr(len(m.Sender)) +
		sizeStr(len(m.Addressed))
	if m.Session != nil {
		n += sizeSub(sizeSession(m.Session))
	}
	for _, x := range m.Bindings {
		n += sizeSub(sizeBinding(x))
	}
	for _, x := range m.Subscriptions {
		n += sizeSub(sizeSubscription(x))
	}
	if math.Float64bits(m.Load) != 0 {
		n += 9
	}
	return n + len(m.ProtoReflect().GetUnknown())
}

func sizeSession(m *platformpb.Session) int {
	n := sizeStr(len(m.Id)) + sizeStr(len(m.UserId)) + sizeStr(len(m.RemoteAddr)) + sizeStr(len(m.Broker))
	for k, v := range m.Bindings {
		n += sizeSub(sizeMapEntry(k, v))
	}
	return n + len(m.ProtoReflect().GetUnknown())
}

// sizeMapEntry is the size of a map entry's body: both fields are written,
// even when empty.
func sizeMapEntry(k, v string) int {
	return 2 + protowire.SizeVarint(uint64(len(k))) + len(k) + protowire.SizeVarint(uint64(len(v))) + len(v)
}

func sizeBinding(m *platformpb.Binding) int {
	if m == nil {
		return 0
	}
	return sizeStr(len(m.Key)) + sizeStr(len(m.Value)) + sizeBool(m.Unset) + sizeStr(len(m.Session)) +
		sizeVar(uint64(m.ExpiresUnix)) + len(m.ProtoReflect().GetUnknown())
}

func sizeSubscription(m *platformpb.Subscription) int {
	if m == nil {
		return 0
	}
	return sizeStr(len(m.Topic)) + sizeBool(m.Unsubscribe) + len(m.ProtoReflect().GetUnknown())
}

// appendEnvelope appends the proto3 encoding of m (nothing for nil) to b:
// what proto.MarshalOptions{}.MarshalAppend appends, but for the order of
// map entries, which is unspecified in both. Unlike proto-go it does not
// refuse strings of invalid UTF-8 (see validEnvelopeUTF8).
func appendEnvelope(b []byte, m *platformpb.Envelope) []byte {
	if m == nil {
		return b
	}
	b = appendVar(b, tagEnvKind, uint64(int64(m.Kind)))
	b = appendVar(b, tagEnvRequestID, m.RequestId)
	b = appendStr(b, tagEnvMethod, m.Method)
	if s := m.Session; s != nil {
		b = append(b, tagEnvSession)
		b = protowire.AppendVarint(b, uint64(sizeSession(s)))
		b = appendSession(b, s)
	}
	b = appendVar(b, tagEnvDeadline, uint64(m.DeadlineUnixNano))
	if len(m.Payload) > 0 {
		b = append(b, tagEnvPayload)
		b = protowire.AppendVarint(b, uint64(len(m.Payload)))
		b = append(b, m.Payload...)
	}
	b = appendStr(b, tagEnvErrorCode, m.ErrorCode)
	b = appendStr(b, tagEnvErrorMessage, m.ErrorMessage)
	for _, x := range m.Bindings {
		b = append(b, tagEnvBindings)
		b = protowire.AppendVarint(b, uint64(sizeBinding(x)))
		b = appendBinding(b, x)
	}
	for _, x := range m.Subscriptions {
		b = append(b, tagEnvSubscriptions)
		b = protowire.AppendVarint(b, uint64(sizeSubscription(x)))
		b = appendSubscription(b, x)
	}
	if bits := math.Float64bits(m.Load); bits != 0 {
		b = append(b, tagEnvLoad)
		b = protowire.AppendFixed64(b, bits)
	}
	b = appendStr(b, tagEnvSender, m.Sender)
	b = appendStr(b, tagEnvAddressed, m.Addressed)
	return append(b, m.ProtoReflect().GetUnknown()...)
}

func appendSession(b []byte, m *platformpb.Session) []byte {
	b = appendStr(b, tagSesID, m.Id)
	b = appendStr(b, tagSesUserID, m.UserId)
	for k, v := range m.Bindings {
		b = append(b, tagSesBindings)
		b = protowire.AppendVarint(b, uint64(sizeMapEntry(k, v)))
		b = append(b, tagMapKey)
		b = protowire.AppendString(b, k)
		b = append(b, tagMapValue)
		b = protowire.AppendString(b, v)
	}
	b = appendStr(b, tagSesRemoteAddr, m.RemoteAddr)
	b = appendStr(b, tagSesBroker, m.Broker)
	return append(b, m.ProtoReflect().GetUnknown()...)
}

func appendBinding(b []byte, m *platformpb.Binding) []byte {
	if m == nil {
		return b
	}
	b = appendStr(b, tagBndKey, m.Key)
	b = appendStr(b, tagBndValue, m.Value)
	b = appendBool(b, tagBndUnset, m.Unset)
	b = appendStr(b, tagBndSession, m.Session)
	b = appendVar(b, tagBndExpires, uint64(m.ExpiresUnix))
	return append(b, m.ProtoReflect().GetUnknown()...)
}

func appendSubscription(b []byte, m *platformpb.Subscription) []byte {
	if m == nil {
		return b
	}
	b = appendStr(b, tagSubTopic, m.Topic)
	b = appendBool(b, tagSubUnsubscribe, m.Unsubscribe)
	return append(b, m.ProtoReflect().GetUnknown()...)
}

// validEnvelopeUTF8 reports whether every string of m is valid UTF-8, which
// proto-go's Marshal requires of proto3 strings (it fails with an error on
// others, where appendEnvelope writes them, and the receiver's decoder then
// refuses the envelope). A caller that must refuse such envelopes as
// proto-go did checks this first.
func validEnvelopeUTF8(m *platformpb.Envelope) bool {
	if m == nil {
		return true
	}
	if !validUTF8(m.Method) || !validUTF8(m.ErrorCode) || !validUTF8(m.ErrorMessage) ||
		!validUTF8(m.Sender) || !validUTF8(m.Addressed) {
		return false
	}
	if s := m.Session; s != nil {
		if !validUTF8(s.Id) || !validUTF8(s.UserId) || !validUTF8(s.RemoteAddr) ||
			!validUTF8(s.Broker) {
			return false
		}
		for k, v := range s.Bindings {
			if !validUTF8(k) || !validUTF8(v) {
				return false
			}
		}
	}
	for _, x := range m.Bindings {
		if x != nil && (!validUTF8(x.Key) || !validUTF8(x.Value) || !validUTF8(x.Session)) {
			return false
		}
	}
	for _, x := range m.Subscriptions {
		if x != nil && !validUTF8(x.Topic) {
			return false
		}
	}
	return true
}

// validUTF8 is utf8.ValidString with the call saved for ASCII strings.
func validUTF8(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.ValidString(s[i:])
		}
	}
	return true
}

// unmarshalEnvelope decodes b into a new Envelope as proto.Unmarshal does:
// the same message for what it accepts, its error (and a nil Envelope) for
// what it refuses. The payload and strings are copied out of b: the payload
// to its own slice, the strings to one allocation they share (so a string
// kept keeps the envelope's other strings, but never its payload), and the
// elements of Bindings (of Subscriptions) to one array.
func unmarshalEnvelope(b []byte) (*platformpb.Envelope, error) {
	if sc, ok := scanEnvelope(b); ok {
		// Strings are checked for UTF-8 all at once when all ASCII (as
		// nearly all are), one by one otherwise.
		if m, ok := decodeEnvelopeFast(b, sc, false); ok {
			return m, nil
		}
		if m, ok := decodeEnvelopeFast(b, sc, true); ok {
			return m, nil
		}
	}
	m := new(platformpb.Envelope)
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeEnvelopeFast decodes b, which scanEnvelope counted, or reports
// false. With strict false, it reports false too when the strings are not
// all ASCII; with strict, it checks that each is valid UTF-8.
func decodeEnvelopeFast(b []byte, sc envScan, strict bool) (*platformpb.Envelope, bool) {
	m := new(platformpb.Envelope)
	d := envDecoder{strict: strict}
	d.sb.Grow(sc.strBytes)
	if sc.bindings > 0 {
		m.Bindings = make([]*platformpb.Binding, 0, sc.bindings)
		d.bindings = make([]platformpb.Binding, sc.bindings)
	}
	if sc.subscriptions > 0 {
		m.Subscriptions = make([]*platformpb.Subscription, 0, sc.subscriptions)
		d.subscriptions = make([]platformpb.Subscription, sc.subscriptions)
	}
	if !d.envelope(b, m) || !strict && !isASCII(d.sb.String()) {
		return nil, false
	}
	return m, true
}

// isASCII reports whether s is all ASCII (so valid UTF-8).
func isASCII(s string) bool {
	for len(s) >= 8 {
		if binary.LittleEndian.Uint64([]byte(s[:8]))&0x8080808080808080 != 0 {
			return false
		}
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// envScan is what scanEnvelope counts of an encoded Envelope.
type envScan struct {
	strBytes      int // bytes of the length-delimited fields but the payload: at least those of the strings
	session       bool
	bindings      int
	subscriptions int
}

// scanEnvelope walks the top-level fields of b, counting what decoding it
// will allocate; it reports false for anything decoding would leave to
// proto-go at the top level.
func scanEnvelope(b []byte) (sc envScan, ok bool) {
	for len(b) > 0 {
		var tag byte
		tag, b = consumeTag(b)
		switch tag {
		case tagEnvKind, tagEnvRequestID, tagEnvDeadline:
			if _, b, ok = consumeVarint(b); !ok {
				return sc, false
			}
		case tagEnvLoad:
			if len(b) < 8 {
				return sc, false
			}
			b = b[8:]
		case tagEnvPayload:
			if _, b, ok = consumeBytes(b); !ok {
				return sc, false
			}
		case tagEnvMethod, tagEnvSession, tagEnvErrorCode, tagEnvErrorMessage, tagEnvBindings,
			tagEnvSubscriptions, tagEnvSender, tagEnvAddressed:
			var v []byte
			if v, b, ok = consumeBytes(b); !ok {
				return sc, false
			}
			sc.strBytes += len(v)
			switch tag {
			case tagEnvSession:
				if sc.session { // a second one merges: proto-go's business
					return sc, false
				}
				sc.session = true
			case tagEnvBindings:
				sc.bindings++
			case tagEnvSubscriptions:
				sc.subscriptions++
			}
		default:
			return sc, false
		}
	}
	return sc, true
}

// envDecoder decodes the fast path of unmarshalEnvelope.
type envDecoder struct {
	strict        bool                      // check each string for UTF-8 (else the caller checks all are ASCII)
	sb            strings.Builder           // the strings, sized by scanEnvelope
	bindings      []platformpb.Binding      // the Bindings elements still to use
	subscriptions []platformpb.Subscription // the Subscriptions elements still to use
}

// consumeTag reads a tag that fits one byte; 0 (never a valid tag) for any
// other, which the callers' switches send to the fallback.
func consumeTag(b []byte) (byte, []byte) {
	if b[0] < 0x80 {
		return b[0], b[1:]
	}
	return 0, b
}

// consumeVarint reads a varint; ok is false for a malformed one.
func consumeVarint(b []byte) (uint64, []byte, bool) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), b[1:], true
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

// consumeBytes reads a length-delimited value, aliasing b.
func consumeBytes(b []byte) ([]byte, []byte, bool) {
	var n int
	if len(b) > 0 && b[0] < 0x80 {
		n = int(b[0])
		b = b[1:]
	} else {
		v, k := protowire.ConsumeVarint(b)
		if k < 0 || v > uint64(len(b)-k) {
			return nil, b, false
		}
		n = int(v)
		b = b[k:]
	}
	if n > len(b) {
		return nil, b, false
	}
	return b[:n:n], b[n:], true
}

// str reads a length-delimited value as a string, copying it to d's
// strings; when d is strict, it must be valid UTF-8.
func (d *envDecoder) str(b []byte) (string, []byte, bool) {
	v, b, ok := consumeBytes(b)
	if !ok || d.strict && !utf8.Valid(v) {
		return "", b, false
	}
	if len(v) == 0 {
		return "", b, true
	}
	start := d.sb.Len()
	d.sb.Write(v)
	return d.sb.String()[start:], b, true
}

// envelope decodes b into the zero m, or reports false for anything but
// the fields, wire types and values proto-go would decode into what it
// decodes here.
func (d *envDecoder) envelope(b []byte, m *platformpb.Envelope) bool {
	var ok bool
	for len(b) > 0 {
		var tag byte
		tag, b = consumeTag(b)
		var v uint64
		switch tag {
		case tagEnvKind:
			v, b, ok = consumeVarint(b)
			m.Kind = platformpb.Kind(int32(v))
		case tagEnvRequestID:
			m.RequestId, b, ok = consumeVarint(b)
		case tagEnvMethod:
			m.Method, b, ok = d.str(b)
		case tagEnvSession:
			if m.Session != nil { // a second one merges: proto-go's business
				return false
			}
			var sb []byte
			sb, b, ok = consumeBytes(b)
			if ok {
				m.Session = new(platformpb.Session)
				ok = d.session(sb, m.Session)
			}
		case tagEnvDeadline:
			v, b, ok = consumeVarint(b)
			m.DeadlineUnixNano = int64(v)
		case tagEnvPayload:
			var p []byte
			p, b, ok = consumeBytes(b)
			if len(p) == 0 {
				m.Payload = nil // as proto-go's consumeBytesNoZero
			} else {
				m.Payload = append([]byte(nil), p...)
			}
		case tagEnvErrorCode:
			m.ErrorCode, b, ok = d.str(b)
		case tagEnvErrorMessage:
			m.ErrorMessage, b, ok = d.str(b)
		case tagEnvBindings:
			var sb []byte
			sb, b, ok = consumeBytes(b)
			if ok {
				var x *platformpb.Binding
				if len(d.bindings) > 0 {
					x, d.bindings = &d.bindings[0], d.bindings[1:]
				} else {
					x = new(platformpb.Binding)
				}
				ok = d.binding(sb, x)
				m.Bindings = append(m.Bindings, x)
			}
		case tagEnvSubscriptions:
			var sb []byte
			sb, b, ok = consumeBytes(b)
			if ok {
				var x *platformpb.Subscription
				if len(d.subscriptions) > 0 {
					x, d.subscriptions = &d.subscriptions[0], d.subscriptions[1:]
				} else {
					x = new(platformpb.Subscription)
				}
				ok = d.subscription(sb, x)
				m.Subscriptions = append(m.Subscriptions, x)
			}
		case tagEnvLoad:
			if len(b) < 8 {
				return false
			}
			v, _ = protowire.ConsumeFixed64(b)
			m.Load = math.Float64frombits(v)
			b, ok = b[8:], true
		case tagEnvSender:
			m.Sender, b, ok = d.str(b)
		case tagEnvAddressed:
			m.Addressed, b, ok = d.str(b)
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

func (d *envDecoder) session(b []byte, m *platformpb.Session) bool {
	var ok bool
	for len(b) > 0 {
		var tag byte
		tag, b = consumeTag(b)
		switch tag {
		case tagSesID:
			m.Id, b, ok = d.str(b)
		case tagSesUserID:
			m.UserId, b, ok = d.str(b)
		case tagSesBindings:
			var e []byte
			e, b, ok = consumeBytes(b)
			if ok {
				ok = d.mapEntry(e, m)
			}
		case tagSesRemoteAddr:
			m.RemoteAddr, b, ok = d.str(b)
		case tagSesBroker:
			m.Broker, b, ok = d.str(b)
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

// mapEntry decodes one entry of Session.Bindings: a missing key or
// value is "", a repeated one's last occurrence wins, and so does the last
// entry of a key.
func (d *envDecoder) mapEntry(b []byte, m *platformpb.Session) bool {
	var k, v string
	var ok bool
	for len(b) > 0 {
		var tag byte
		tag, b = consumeTag(b)
		switch tag {
		case tagMapKey:
			k, b, ok = d.str(b)
		case tagMapValue:
			v, b, ok = d.str(b)
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	if m.Bindings == nil {
		m.Bindings = make(map[string]string, 1)
	}
	m.Bindings[k] = v
	return true
}

func (d *envDecoder) binding(b []byte, m *platformpb.Binding) bool {
	var ok bool
	for len(b) > 0 {
		var tag byte
		tag, b = consumeTag(b)
		var v uint64
		switch tag {
		case tagBndKey:
			m.Key, b, ok = d.str(b)
		case tagBndValue:
			m.Value, b, ok = d.str(b)
		case tagBndUnset:
			v, b, ok = consumeVarint(b)
			m.Unset = v != 0
		case tagBndSession:
			m.Session, b, ok = d.str(b)
		case tagBndExpires:
			v, b, ok = consumeVarint(b)
			m.ExpiresUnix = int64(v)
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

func (d *envDecoder) subscription(b []byte, m *platformpb.Subscription) bool {
	var ok bool
	for len(b) > 0 {
		var tag byte
		tag, b = consumeTag(b)
		var v uint64
		switch tag {
		case tagSubTopic:
			m.Topic, b, ok = d.str(b)
		case tagSubUnsubscribe:
			v, b, ok = consumeVarint(b)
			m.Unsubscribe = v != 0
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}
