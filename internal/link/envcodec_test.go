package link

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// withUnknown returns m with raw fields appended to its encoding, decoded by
// proto-go: a message that carries unknown fields.
func withUnknown[M proto.Message](t testing.TB, m M, raw []byte) M {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := m.ProtoReflect().New().Interface().(M)
	if err := proto.Unmarshal(append(b, raw...), out); err != nil {
		t.Fatal(err)
	}
	return out
}

// rawField99 is an unknown field 99 (a string) and an unknown field 100 (a
// varint).
func rawField99() []byte {
	b := protowire.AppendTag(nil, 99, protowire.BytesType)
	b = protowire.AppendString(b, "from the future")
	b = protowire.AppendTag(b, 100, protowire.VarintType)
	return protowire.AppendVarint(b, 12345)
}

func fullEnvelope() *platformpb.Envelope {
	return &platformpb.Envelope{
		Kind: platformpb.Kind_KIND_REQUEST, RequestId: 1 << 40, Method: "room.Join",
		Session: &platformpb.Session{
			Id: "s1", UserId: "u1", Bindings: map[string]string{"room": "r42", "team": "blue", "": "", "e": ""},
			RemoteAddr: "10.0.0.1:5555", Broker: "broker-1",
		},
		DeadlineUnixNano: 1_700_000_000_000_000_000, Payload: []byte{1, 2, 3},
		ErrorCode: "moved", ErrorMessage: "elsewhere",
		Bindings: []*platformpb.Binding{
			{Key: "room", Value: "r42"},
			{Key: "room", Unset: true, Session: "s2", ExpiresUnix: -5},
		},
		Subscriptions: []*platformpb.Subscription{{Topic: "room/r42"}, {Topic: "x", Unsubscribe: true}},
		Load:          0.5, Sender: "room-1", Addressed: "r42",
	}
}

func requestEnvelope() *platformpb.Envelope {
	return &platformpb.Envelope{
		Kind: platformpb.Kind_KIND_REQUEST, RequestId: 123456, Method: "echo.Echo",
		Session: &platformpb.Session{
			Id: "3f9c2a7e1b5d4c60", UserId: "user-42", RemoteAddr: "203.0.113.7:51234", Broker: "broker-7f3a",
		},
		DeadlineUnixNano: 1_764_000_000_123_456_789,
		Payload:          bytes.Repeat([]byte{0xab}, 64),
		Sender:           "broker-7f3a",
	}
}

func replyEnvelope() *platformpb.Envelope {
	return &platformpb.Envelope{
		Kind: platformpb.Kind_KIND_REPLY, RequestId: 123456, Method: "echo.Echo",
		Payload: bytes.Repeat([]byte{0xcd}, 64),
		Load:    0.125, Sender: "echo-9b1c",
	}
}

func envelopeCases(t testing.TB) []struct {
	name string
	m    *platformpb.Envelope
} {
	negZero := math.Copysign(0, -1)
	withUnknownSession := fullEnvelope()
	withUnknownSession.Session = withUnknown(t, withUnknownSession.Session, rawField99())
	withUnknownElems := fullEnvelope()
	withUnknownElems.Bindings[1] = withUnknown(t, withUnknownElems.Bindings[1], rawField99())
	withUnknownElems.Subscriptions[0] = withUnknown(t, withUnknownElems.Subscriptions[0], rawField99())
	return []struct {
		name string
		m    *platformpb.Envelope
	}{
		{"empty", &platformpb.Envelope{}},
		{"full", fullEnvelope()},
		{"request", requestEnvelope()},
		{"reply", replyEnvelope()},
		{"empty session", &platformpb.Envelope{Session: &platformpb.Session{}}},
		{"session without bindings", &platformpb.Envelope{Session: &platformpb.Session{Id: "a", Broker: "b"}}},
		{"session with empty bindings map", &platformpb.Envelope{Session: &platformpb.Session{Id: "a", Bindings: map[string]string{}}}},
		{"session with empty key and value", &platformpb.Envelope{Session: &platformpb.Session{Bindings: map[string]string{"": ""}}}},
		{"nil elements", &platformpb.Envelope{
			Bindings:      []*platformpb.Binding{nil, {Key: "k"}, nil},
			Subscriptions: []*platformpb.Subscription{{Topic: "t"}, nil},
		}},
		{"empty elements", &platformpb.Envelope{
			Bindings: []*platformpb.Binding{{}}, Subscriptions: []*platformpb.Subscription{{}},
		}},
		{"negative deadline", &platformpb.Envelope{DeadlineUnixNano: -1}},
		{"min deadline", &platformpb.Envelope{DeadlineUnixNano: math.MinInt64}},
		{"negative kind", &platformpb.Envelope{Kind: -3}},
		{"unknown kind", &platformpb.Envelope{Kind: math.MaxInt32}},
		{"load -0", &platformpb.Envelope{Load: negZero}},
		{"load NaN", &platformpb.Envelope{Load: math.NaN()}},
		{"load +Inf", &platformpb.Envelope{Load: math.Inf(1)}},
		{"load -Inf", &platformpb.Envelope{Load: math.Inf(-1)}},
		{"huge request id", &platformpb.Envelope{RequestId: math.MaxUint64}},
		{"non-ASCII", &platformpb.Envelope{
			Method: "chat.Say", Sender: "sérvice-ü", ErrorMessage: "日本語 🎉",
			Session:  &platformpb.Session{UserId: "Zoë", Bindings: map[string]string{"ключ": "значение"}},
			Bindings: []*platformpb.Binding{{Key: "κ", Value: "ν"}},
		}},
		{"empty payload", &platformpb.Envelope{Payload: []byte{}}},
		{"long strings", &platformpb.Envelope{
			Method: strings.Repeat("m", 200), Payload: bytes.Repeat([]byte{7}, 70000),
			ErrorMessage: strings.Repeat("é", 5000),
		}},
		{"unknown fields", withUnknown(t, fullEnvelope(), rawField99())},
		{"unknown fields only", withUnknown(t, &platformpb.Envelope{}, rawField99())},
		{"unknown fields in session", withUnknownSession},
		{"unknown fields in elements", withUnknownElems},
	}
}

// decodeProto decodes b with proto-go.
func decodeProto(t testing.TB, b []byte) *platformpb.Envelope {
	t.Helper()
	m := new(platformpb.Envelope)
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatalf("proto.Unmarshal: %v", err)
	}
	return m
}

func TestEnvelopeCodec(t *testing.T) {
	for _, c := range envelopeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			b := appendEnvelope(nil, c.m)
			if got := decodeProto(t, b); !proto.Equal(got, c.m) {
				t.Errorf("appendEnvelope does not decode to the message:\n got %v\nwant %v", got, c.m)
			}
			if n := sizeEnvelope(c.m); n != len(b) {
				t.Errorf("sizeEnvelope = %d, encoding is %d bytes", n, len(b))
			}
			if n := proto.Size(c.m); n != len(b) {
				t.Errorf("proto.Size = %d, encoding is %d bytes", n, len(b))
			}
			// Appending keeps what is already in the buffer.
			if b2 := appendEnvelope([]byte("prefix"), c.m); string(b2[:6]) != "prefix" || len(b2) != 6+len(b) {
				t.Errorf("appendEnvelope to a prefix: %x", b2)
			}
			// Without a map of two entries or more (whose order is free),
			// the encoding is proto-go's, byte for byte.
			if len(c.m.GetSession().GetBindings()) < 2 {
				want, err := proto.MarshalOptions{Deterministic: true}.Marshal(c.m)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, want) {
					t.Errorf("encoding differs from proto-go's:\n got %x\nwant %x", b, want)
				}
			}

			pb, err := proto.Marshal(c.m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := unmarshalEnvelope(pb)
			if err != nil {
				t.Fatalf("unmarshalEnvelope: %v", err)
			}
			if !proto.Equal(got, c.m) {
				t.Errorf("unmarshalEnvelope:\n got %v\nwant %v", got, c.m)
			}
			checkSameDecode(t, pb)
			checkSameDecode(t, b)
		})
	}
}

// checkSameDecode checks that unmarshalEnvelope and proto.Unmarshal agree
// on b, down to whether Payload is nil, and that the payload and strings do
// not alias b.
func checkSameDecode(t *testing.T, b []byte) {
	t.Helper()
	want := new(platformpb.Envelope)
	werr := proto.Unmarshal(b, want)
	got, gerr := unmarshalEnvelope(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("proto.Unmarshal: %v, unmarshalEnvelope: %v", werr, gerr)
	}
	if werr != nil {
		return
	}
	if !proto.Equal(got, want) {
		t.Fatalf("decoders disagree:\n got %v\nwant %v", got, want)
	}
	if (got.Payload == nil) != (want.Payload == nil) {
		t.Fatalf("Payload nil: got %v, proto-go %v", got.Payload == nil, want.Payload == nil)
	}
	if (got.Session == nil) != (want.Session == nil) ||
		got.Session != nil && (got.Session.Bindings == nil) != (want.Session.Bindings == nil) {
		t.Fatalf("Session or its map nil differs: got %v, proto-go %v", got.Session, want.Session)
	}
	if len(b) > 0 {
		c := bytes.Clone(b)
		for i := range b {
			b[i] ^= 0xff
		}
		if !proto.Equal(got, want) {
			t.Fatalf("the decoded envelope aliases its input")
		}
		copy(b, c)
	}
}

// TestEnvelopeDecodeEdges checks inputs proto-go decodes in its own ways:
// an empty payload after a non-empty one, a Session twice (merged), map
// entries with missing, repeated or duplicate keys, out-of-range enums,
// booleans of any non-zero varint, and refused inputs.
func TestEnvelopeDecodeEdges(t *testing.T) {
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	str := func(b []byte, num protowire.Number, s string) []byte {
		return protowire.AppendString(tag(b, num, protowire.BytesType), s)
	}
	vint := func(b []byte, num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(tag(b, num, protowire.VarintType), v)
	}
	entry := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	sess := func(b []byte, body []byte) []byte {
		return protowire.AppendBytes(tag(b, 4, protowire.BytesType), body)
	}
	cases := map[string][]byte{
		"empty":                   nil,
		"payload then empty":      str(str(nil, 6, "abc"), 6, ""),
		"empty payload":           str(nil, 6, ""),
		"empty strings on wire":   str(str(nil, 3, ""), 12, ""),
		"last value wins":         vint(vint(str(str(nil, 3, "a"), 3, "b"), 2, 7), 2, 9),
		"session twice":           sess(sess(nil, str(nil, 1, "id")), str(str(nil, 2, "user"), 3, string(entry(str(nil, 1, "k"), str(nil, 2, "v"))))),
		"empty session":           sess(nil, nil),
		"map entry empty":         sess(nil, str(nil, 3, "")),
		"map entry key only":      sess(nil, str(nil, 3, string(str(nil, 1, "k")))),
		"map entry value only":    sess(nil, str(nil, 3, string(str(nil, 2, "v")))),
		"map entry value first":   sess(nil, str(nil, 3, string(entry(str(nil, 2, "v"), str(nil, 1, "k"))))),
		"map entry key twice":     sess(nil, str(nil, 3, string(entry(str(nil, 1, "a"), str(nil, 1, "b"), str(nil, 2, "v"))))),
		"map duplicate keys":      sess(nil, str(str(nil, 3, string(entry(str(nil, 1, "k"), str(nil, 2, "1")))), 3, string(entry(str(nil, 1, "k"), str(nil, 2, "2"))))),
		"map entry unknown field": sess(nil, str(nil, 3, string(entry(str(nil, 1, "k"), vint(nil, 3, 1))))),
		"map entry bad utf8":      sess(nil, str(nil, 3, string(entry(str(nil, 1, "\xff"))))),
		"kind out of range":       vint(nil, 1, 1<<40|5),
		"kind negative":           vint(nil, 1, math.MaxUint64),
		"bool of 2":               str(nil, 10, string(vint(str(nil, 1, "t"), 2, 2))),
		"bool of 1<<40":           str(nil, 9, string(vint(nil, 3, 1<<40))),
		"empty binding":           str(nil, 9, ""),
		"kind as bytes":           str(nil, 1, "x"),
		"load as varint":          vint(nil, 11, 5),
		"load -0":                 protowire.AppendFixed64(tag(nil, 11, protowire.Fixed64Type), 1<<63),
		"truncated load":          tag(nil, 11, protowire.Fixed64Type),
		"overlong tag":            append([]byte{0x88, 0x00}, 5),
		"overlong varint":         []byte{0x08, 0x81, 0x80, 0x80, 0x00},
		"invalid utf8":            str(nil, 3, "a\xffb"),
		"invalid utf8 in binding": str(nil, 9, string(str(nil, 1, "\xc3"))),
		"field 0":                 []byte{0x00, 0x01},
		"truncated length":        []byte{0x1a, 0x05, 'a'},
		"huge length":             []byte{0x32, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"group":                   []byte{0x0b, 0x0c},
		"unknown field":           str(str(nil, 3, "m"), 99, "x"),
		"varint overflow":         []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) { checkSameDecode(t, b) })
	}
	// What proto-go does, pinned: an empty bytes field decodes to nil.
	if m := decodeProto(t, cases["payload then empty"]); m.Payload != nil {
		t.Errorf("proto-go decoded an empty payload to %#v", m.Payload)
	}
	if m := decodeProto(t, cases["kind out of range"]); m.Kind != 5 {
		t.Errorf("proto-go decoded kind 1<<40|5 to %d", m.Kind)
	}
	// proto.Equal does not tell -0 from +0: check the sign.
	if m, err := unmarshalEnvelope(cases["load -0"]); err != nil || !math.Signbit(m.Load) {
		t.Errorf("unmarshalEnvelope(load -0) = %v, %v", m.GetLoad(), err)
	}
	if m := decodeProto(t, appendEnvelope(nil, &platformpb.Envelope{Load: math.Copysign(0, -1)})); !math.Signbit(m.Load) {
		t.Errorf("appendEnvelope lost the sign of -0")
	}
}

// TestEnvelopeOverrides checks wire.go's idiom: fields appended after an
// encoded envelope override its own, for both decoders.
func TestEnvelopeOverrides(t *testing.T) {
	for _, c := range envelopeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			o := envelopeOverrides{
				kind: platformpb.Kind_KIND_REPLY, requestID: 77, deadline: -9, setLoad: true, load: 0.75, sender: "over-1",
			}
			b := appendEnvelope(nil, c.m)
			b = protowire.AppendTag(b, fieldKind, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(o.kind))
			b = protowire.AppendTag(b, fieldRequestID, protowire.VarintType)
			b = protowire.AppendVarint(b, o.requestID)
			b = protowire.AppendTag(b, fieldDeadline, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(o.deadline))
			b = protowire.AppendTag(b, fieldLoad, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, math.Float64bits(o.load))
			b = protowire.AppendTag(b, fieldSender, protowire.BytesType)
			b = protowire.AppendString(b, o.sender)

			want := proto.Clone(c.m).(*platformpb.Envelope)
			want.Kind, want.RequestId, want.DeadlineUnixNano, want.Load, want.Sender = o.kind, o.requestID, o.deadline, o.load, o.sender
			if got := decodeProto(t, b); !proto.Equal(got, want) {
				t.Errorf("proto.Unmarshal:\n got %v\nwant %v", got, want)
			}
			got, err := unmarshalEnvelope(b)
			if err != nil || !proto.Equal(got, want) {
				t.Errorf("unmarshalEnvelope: %v\n got %v\nwant %v", err, got, want)
			}

			// And through encodeEnvelope itself, the way wire.go sends.
			eb, err := encodeEnvelope(c.m, o)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := unmarshalEnvelope(eb); err != nil || !proto.Equal(got, want) {
				t.Errorf("unmarshalEnvelope(encodeEnvelope): %v\n got %v\nwant %v", err, got, want)
			}
		})
	}
}

func TestAppendEnvelopeNil(t *testing.T) {
	if b := appendEnvelope([]byte("x"), nil); string(b) != "x" {
		t.Errorf("appendEnvelope(nil) appended %q", b[1:])
	}
	if n := sizeEnvelope(nil); n != 0 {
		t.Errorf("sizeEnvelope(nil) = %d", n)
	}
	if !validEnvelopeUTF8(nil) || !validEnvelopeUTF8(fullEnvelope()) {
		t.Error("validEnvelopeUTF8 refused valid envelopes")
	}
}

// TestValidEnvelopeUTF8 checks validEnvelopeUTF8 against proto-go's Marshal,
// which refuses invalid UTF-8 in every string field.
func TestValidEnvelopeUTF8(t *testing.T) {
	const bad = "a\xffb"
	for i, mutate := range []func(m *platformpb.Envelope){
		func(m *platformpb.Envelope) {},
		func(m *platformpb.Envelope) { m.Method = bad },
		func(m *platformpb.Envelope) { m.ErrorCode = bad },
		func(m *platformpb.Envelope) { m.ErrorMessage = bad },
		func(m *platformpb.Envelope) { m.Sender = bad },
		func(m *platformpb.Envelope) { m.Addressed = bad },
		func(m *platformpb.Envelope) { m.Session.Id = bad },
		func(m *platformpb.Envelope) { m.Session.UserId = bad },
		func(m *platformpb.Envelope) { m.Session.RemoteAddr = bad },
		func(m *platformpb.Envelope) { m.Session.Broker = bad },
		func(m *platformpb.Envelope) { m.Session.Bindings[bad] = "v" },
		func(m *platformpb.Envelope) { m.Session.Bindings["k"] = bad },
		func(m *platformpb.Envelope) { m.Bindings[0].Key = bad },
		func(m *platformpb.Envelope) { m.Bindings[1].Value = bad },
		func(m *platformpb.Envelope) { m.Bindings[1].Session = bad },
		func(m *platformpb.Envelope) { m.Subscriptions[1].Topic = bad },
		func(m *platformpb.Envelope) { m.Payload = []byte(bad) }, // bytes: anything goes
	} {
		m := fullEnvelope()
		mutate(m)
		_, err := proto.Marshal(m)
		if valid := validEnvelopeUTF8(m); valid != (err == nil) {
			t.Errorf("case %d: validEnvelopeUTF8 = %v, proto.Marshal: %v", i, valid, err)
		}
	}
}

// FuzzEnvelopeCodec checks the hand-written codec against proto-go: on any
// input both decoders fail, or both decode the same message; and what they
// decode, appendEnvelope encodes to bytes proto-go decodes to it again, of
// sizeEnvelope's length.
func FuzzEnvelopeCodec(f *testing.F) {
	for _, c := range envelopeCases(f) {
		b := appendEnvelope(nil, c.m)
		if len(b) > 4096 { // big inputs slow the fuzzer down
			continue
		}
		f.Add(b)
		for _, cut := range []int{1, len(b) / 2, len(b) - 1} {
			if cut > 0 && cut < len(b) {
				f.Add(b[:cut])
			}
		}
	}
	b, _ := encodeEnvelope(fullEnvelope(), envelopeOverrides{kind: platformpb.Kind_KIND_REPLY, requestID: 3, deadline: 5, setLoad: true, load: 1, sender: "s"})
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0x1a, 0x02, 0xff, 0xfe})                                                                               // invalid UTF-8 method
	f.Add([]byte{0x22, 0x03, 0x0a, 0x01, 'a', 0x22, 0x03, 0x12, 0x01, 'u'})                                             // Session twice
	f.Add([]byte{0x22, 0x05, 0x1a, 0x03, 0x0a, 0x01, 0x80})                                                             // invalid UTF-8 map key
	f.Add([]byte{0x4a, 0x02, 0x18, 0x02, 0x52, 0x00, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) // bool 2, empty sub, kind -1
	f.Add([]byte{0x32, 0x00, 0x32, 0x01, 0x07, 0x32, 0x00})                                                             // payloads
	f.Add([]byte{0x5a, 0x01, 0x00})                                                                                     // load of the wrong wire type
	f.Add([]byte{0x98, 0x06, 0x01})                                                                                     // unknown field 99
	f.Add([]byte{0x88, 0x00, 0x02})                                                                                     // overlong tag

	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		want := new(platformpb.Envelope)
		werr := proto.Unmarshal(b, want)
		got, gerr := unmarshalEnvelope(b)
		if !bytes.Equal(b, in) {
			t.Fatal("unmarshalEnvelope changed its input")
		}
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("proto.Unmarshal: %v, unmarshalEnvelope: %v", werr, gerr)
		}
		if werr != nil {
			if got != nil {
				t.Fatalf("unmarshalEnvelope failed (%v) with a non-nil envelope", gerr)
			}
			return
		}
		if !proto.Equal(got, want) {
			t.Fatalf("decoders disagree:\n got %v\nwant %v", got, want)
		}
		if (got.Payload == nil) != (want.Payload == nil) {
			t.Fatalf("Payload nil: got %v, proto-go %v", got.Payload == nil, want.Payload == nil)
		}
		enc := appendEnvelope(nil, got)
		if n := sizeEnvelope(got); n != len(enc) {
			t.Fatalf("sizeEnvelope = %d, encoding is %d bytes", n, len(enc))
		}
		if n := proto.Size(got); n != len(enc) {
			t.Fatalf("proto.Size = %d, encoding is %d bytes", n, len(enc))
		}
		again := new(platformpb.Envelope)
		if err := proto.Unmarshal(enc, again); err != nil {
			t.Fatalf("proto.Unmarshal of appendEnvelope: %v", err)
		}
		if !proto.Equal(again, got) {
			t.Fatalf("re-encoding changed the message:\n got %v\nwant %v", again, got)
		}
		if back, err := unmarshalEnvelope(enc); err != nil || !proto.Equal(back, got) {
			t.Fatalf("unmarshalEnvelope of appendEnvelope: %v", err)
		}
	})
}

func BenchmarkEnvelopeCodec(b *testing.B) {
	for _, c := range []struct {
		name string
		m    *platformpb.Envelope
	}{{"request", requestEnvelope()}, {"reply", replyEnvelope()}} {
		enc, err := proto.Marshal(c.m)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/marshal/proto", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 1024)
			for b.Loop() {
				_ = proto.Size(c.m) // as wire.go sizes its buffer
				if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf[:0], c.m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/marshal/hand", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 1024)
			for b.Loop() {
				buf = buf[:0]
				_ = sizeEnvelope(c.m) // as wire.go sizes its buffer
				buf = appendEnvelope(buf, c.m)
			}
		})
		b.Run(c.name+"/marshal/hand+utf8", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 1024)
			for b.Loop() {
				if !validEnvelopeUTF8(c.m) {
					b.Fatal("invalid UTF-8")
				}
				_ = sizeEnvelope(c.m)
				buf = appendEnvelope(buf[:0], c.m)
			}
		})
		b.Run(c.name+"/unmarshal/proto", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := new(platformpb.Envelope)
				if err := proto.Unmarshal(enc, m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/unmarshal/hand", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := unmarshalEnvelope(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
