package link

import (
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/wire"
)

// Field numbers of the Envelope and Event fields that this package sets,
// read from the generated descriptors so that they follow the proto file.
var (
	fieldKind      = envelopeField("kind")
	fieldRequestID = envelopeField("request_id")
	fieldDeadline  = envelopeField("deadline_unix_nano")
	fieldLoad      = envelopeField("load")
	fieldSender    = envelopeField("sender")
	fieldTopic     = (&platformpb.Event{}).ProtoReflect().Descriptor().Fields().ByName("topic").Number()
)

func envelopeField(name protoreflect.Name) protowire.Number {
	return (&platformpb.Envelope{}).ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

// overrideRoom is what the appended override fields take at most: kind (2),
// request id (11), deadline (11), load (9), plus the sender's tag and length.
const overrideRoom = 48

// envelopeOverrides are the fields this package sets on an Envelope it sends.
// They are appended after the caller's encoded message rather than written
// into it: protobuf decoders keep the last value of a singular field, so the
// receiver sees the overrides, and the caller's message is neither mutated
// nor copied (it may be shared, e.g. a broker forwarding one envelope).
type envelopeOverrides struct {
	kind      platformpb.Kind
	requestID uint64
	deadline  int64 // 0: not set
	setLoad   bool
	load      float64
	sender    string // "": not set
}

// bufPool recycles the encode buffers of envelopes. A buffer goes back only
// from a socket's writer, once it is surely written: after a batch write
// straight to the guarded connection returned (writeBatch is synchronous),
// or after zmq4's Send returned nil (it then wrote synchronously through the
// guard, which copies what it keeps). A buffer whose write failed is left
// to the garbage collector: a zmq4 Send that gives up at its timeout may
// still be writing it from its own goroutine (its errgroup returns on the
// context, not on the write), and recycling it raced a later encode (a
// ping's) with that write. (Not for the Publisher: zmq4's PUB queues.)
//
// The pool holds *[]byte; the holders themselves are recycled through
// holderPool, so that neither getting nor putting a buffer allocates (a
// fresh &b per putBuf was an allocation per message).
var bufPool, holderPool sync.Pool // of *[]byte

// getBuf returns an empty buffer of capacity at least n.
func getBuf(n int) []byte {
	if v, ok := bufPool.Get().(*[]byte); ok {
		b := *v
		*v = nil
		holderPool.Put(v)
		if cap(b) >= n {
			return b[:0]
		}
	}
	return make([]byte, 0, n)
}

// putBuf recycles b, unless it is big enough that keeping it would waste
// memory.
func putBuf(b []byte) {
	if cap(b) > maxPooledBuffer {
		return
	}
	h, ok := holderPool.Get().(*[]byte)
	if !ok {
		h = new([]byte)
	}
	*h = b[:0]
	bufPool.Put(h)
}

// encodeEnvelope encodes m (which may be nil) followed by the overrides,
// into a buffer from bufPool, with the hand-written codec (envcodec.go,
// equal to proto-go's by a differential fuzz test, 3-6x faster). A string
// that is not valid UTF-8 fails as proto-go's Marshal fails.
func encodeEnvelope(m *platformpb.Envelope, o envelopeOverrides) ([]byte, error) {
	var b []byte
	if m != nil {
		if !validEnvelopeUTF8(m) {
			if _, err := proto.Marshal(m); err != nil {
				return nil, err
			}
		}
		b = getBuf(sizeEnvelope(m) + overrideRoom + len(o.sender))
		b = appendEnvelope(b, m)
	} else {
		b = getBuf(overrideRoom + len(o.sender))
	}
	b = protowire.AppendTag(b, fieldKind, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(o.kind))
	b = protowire.AppendTag(b, fieldRequestID, protowire.VarintType)
	b = protowire.AppendVarint(b, o.requestID)
	if o.deadline != 0 {
		b = protowire.AppendTag(b, fieldDeadline, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(o.deadline))
	}
	if o.setLoad {
		b = protowire.AppendTag(b, fieldLoad, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(o.load))
	}
	if o.sender != "" {
		b = protowire.AppendTag(b, fieldSender, protowire.BytesType)
		b = protowire.AppendString(b, o.sender)
	}
	return b, nil
}

// decodeEnvelope decodes one frame into an Envelope. It refuses frames over
// max bytes before parsing them, and anything protobuf cannot parse
// (including invalid UTF-8 in string fields): the hand-written decoder
// (envcodec.go) takes what it knows and hands anything else to proto-go.
func decodeEnvelope(b []byte, max int) (*platformpb.Envelope, error) {
	if len(b) > max {
		return nil, fmt.Errorf("%w: %d-byte envelope, limit %d", ErrTooLarge, len(b), max)
	}
	return unmarshalEnvelope(b)
}

// encodeEvent encodes ev with its topic field set to topic (appended, as for
// envelopes, so ev is not mutated).
func encodeEvent(ev *platformpb.Event, topic string) ([]byte, error) {
	b := make([]byte, 0, proto.Size(ev)+len(topic)+8)
	b, err := (proto.MarshalOptions{}).MarshalAppend(b, ev)
	if err != nil {
		return nil, err
	}
	if ev.GetTopic() != topic {
		b = protowire.AppendTag(b, fieldTopic, protowire.BytesType)
		b = protowire.AppendString(b, topic)
	}
	return b, nil
}

// decodeEvent decodes one Event frame, refusing frames over max bytes.
func decodeEvent(b []byte, max int) (*platformpb.Event, error) {
	if len(b) > max {
		return nil, fmt.Errorf("%w: %d-byte event, limit %d", ErrTooLarge, len(b), max)
	}
	ev := new(platformpb.Event)
	if err := proto.Unmarshal(b, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// CheckTopic reports whether topic can be published and subscribed: 1 to
// 1024 bytes with no NUL (what topic framing relies on); ErrBadTopic if not.
func CheckTopic(topic string) error {
	if topic == "" || len(topic) > maxTopicLen || strings.IndexByte(topic, 0) >= 0 {
		return fmt.Errorf("%w: %q", ErrBadTopic, wire.Snippet([]byte(topic)))
	}
	return nil
}

// topicFrame is the first frame of a published event: the topic and a NUL.
// zmq4's PUB matches subscriptions as prefixes of this frame; because topics
// contain no NUL, the subscription "room/1\x00" matches "room/1\x00" but not
// "room/10\x00", which makes matching exact.
func topicFrame(topic string) []byte {
	b := make([]byte, len(topic)+1)
	copy(b, topic)
	return b
}

// heartbeatFrame is the one-frame message a Publisher sends every
// HeartbeatInterval. It starts with NUL, so no topic frame or subscription
// of a valid topic is a prefix of it or has it as a prefix.
const heartbeatFrame = "\x00hb"

// newIdentity returns prefix followed by 16 random hex digits: unique per
// socket, so that a ROUTER never holds two connections under one identity
// (zmq4 would send every reply to both) and a redialled socket is a new peer.
func newIdentity(prefix string) string {
	var r [8]byte
	_, _ = crand.Read(r[:]) // never fails (crypto/rand, Go 1.24+)
	return prefix + hex.EncodeToString(r[:])
}

// zmqLogger routes zmq4's own log lines to slog at debug level: it logs
// failed handshakes, which the guard already counts.
func zmqLogger(l *slog.Logger) *log.Logger {
	if l == nil {
		return log.New(io.Discard, "", 0)
	}
	return slog.NewLogLogger(l.With("lib", "zmq4").Handler(), slog.LevelDebug)
}

// backoff is exponential redial backoff with jitter: each delay is uniform
// in [cur/2, cur], and cur doubles from min up to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }

// orDefault returns v, or def when v is zero or negative.
func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
