package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/idl/conformance"
	edgeapi "github.com/noonhq/noon/idl/gen/edge"
	roomapi "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// frames is frames.json.
func frames() conformance.Frames {
	f := conformance.Frames{
		MaxFrame:  frame.DefaultMaxFrame,
		MaxMethod: frame.DefaultMaxMethod,
		MaxErr:    frame.DefaultMaxErr,
		MinFrame:  frame.MinFrame,
		Notes: []string{
			"Every integer is a big-endian int32; a length never counts its own 4 bytes. request: TotalLen | MethodLen | Method | PayloadLen | Payload; reply and push: TotalLen | ErrLen | Err | PayloadLen | Payload.",
			"hex is the whole frame, TotalLen included (over WebSocket, one binary message carries exactly these bytes).",
			"request: method and payload_hex. reply: err (\"\" on success, else \"<code>: <text>\") and payload_hex. push: event is the event type WITHOUT the leading \"@\"; first is the raw first string as on the wire, WITH the \"@\"; a first string starting with \"@\" is always a push.",
			"Every vector has first: the first string as on the wire (method, error string, or \"@\" + event).",
			"bad: the decoder must reject the bytes with a bad_frame error. shape says which side decodes it: request (the edge: method at most max_method bytes) or response (a client: error string or \"@\" + event at most max_err bytes). scope \"frame\": bad whether it arrives on a TCP stream or as one WebSocket message (a stream reader can tell from the bytes given, never waiting for more); scope \"message\": bad as one whole WebSocket message, whose TotalLen must equal the message size minus 4 (on a TCP stream the same bytes are a frame cut short by the end of the stream, which the edge answers \"bad_frame: connection closed inside a frame\", or a frame followed by the start of another).",
			"error is the Go decoder's exact text; the edge replies \"bad_frame: \" + error as a reply frame and closes the connection. Other clients need only reject with code bad_frame.",
			"Lengths are checked before anything is allocated: TotalLen against max_frame first, then against min_frame, then the first string's length for sign, against its maximum and against the bytes left, then the payload length for sign and for accounting for exactly the rest.",
			"A WebSocket text message is also bad_frame (\"text message, want one binary message per frame\"); it has no bytes to list here.",
		},
	}
	ptr := func(s string) *string { return &s }
	hello, err := thriftx.Marshal(&edgeapi.HelloRequest{ProtocolVersion: wire.ProtocolVersion, Push: true})
	if err != nil {
		panic(err)
	}
	helloRep, err := thriftx.Marshal(&edgeapi.HelloReply{ProtocolVersion: wire.ProtocolVersion, SessionID: "s1", BrokerID: "b1", MaxFrame: frame.DefaultMaxFrame, MaxInFlight: 64})
	if err != nil {
		panic(err)
	}
	draining, _ := thriftx.Marshal(&edgeapi.Draining{GraceMs: 5000})
	loggedOut, _ := thriftx.Marshal(&edgeapi.LoggedOut{Reason: edgeapi.LOGGED_OUT_EXPIRED})
	roomEvent, _ := thriftx.Marshal(&roomapi.Event{RoomID: "r1", Seq: 3, Type: "room.joined", Player: "u2", TimeUnixMs: 1700000000000})
	req := func(name, method string, payload []byte, note string) {
		f.Vectors = append(f.Vectors, conformance.Frame{
			Name: name, Kind: conformance.KindRequest, Hex: conformance.Hex(frame.AppendRequest(nil, method, payload)),
			Method: ptr(method), First: ptr(method), PayloadHex: ptr(conformance.Hex(payload)), Note: note,
		})
	}
	rep := func(name, errStr string, payload []byte, note string) {
		f.Vectors = append(f.Vectors, conformance.Frame{
			Name: name, Kind: conformance.KindReply, Hex: conformance.Hex(frame.AppendResponse(nil, errStr, payload)),
			Err: ptr(errStr), First: ptr(errStr), PayloadHex: ptr(conformance.Hex(payload)), Note: note,
		})
	}
	push := func(name, event string, payload []byte, note string) {
		f.Vectors = append(f.Vectors, conformance.Frame{
			Name: name, Kind: conformance.KindPush, Hex: conformance.Hex(frame.AppendPush(nil, event, payload)),
			Event: ptr(event), First: ptr("@" + event), PayloadHex: ptr(conformance.Hex(payload)), Note: note,
		})
	}
	req("readme ping", "Ping", hexb("0a026869"), "the README's example: 00000010 00000004 50696e67 00000004 0a026869")
	req("echo", "echo.Echo", []byte("hello"), "echo.Echo's payload is raw bytes")
	req("hello with push", wire.MethodHello, hello, "edge.Hello{protocol_version: 1, push: true}")
	req("empty payload", "room.Start", nil, "")
	req("empty method", "", nil, "a well-formed frame (not bad_frame): the broker answers it \"bad_request: invalid method name: ...\" and keeps the connection (sessions/error.json)")
	req("method of max_method bytes", strings.Repeat("m", frame.DefaultMaxMethod), []byte{0}, "the longest method accepted")
	req("binary payload", "echo.Echo", []byte{0, 1, 0x7f, 0x80, 0xff}, "")
	rep("ok", "", helloRep, "edge.HelloReply")
	rep("ok empty payload", "", nil, "a success with an empty payload")
	rep("error", "unauthenticated: room.Create requires login", nil, "an error reply: err is \"<code>: <text>\"")
	rep("error without text", "timeout", nil, "a code alone")
	rep("bad_frame reply", "bad_frame: frame length 2147483647 exceeds maximum 1048576", nil, "what the edge sends before it closes the connection after a bad frame")
	rep("error of max_err bytes", "internal: "+strings.Repeat("e", frame.DefaultMaxErr-len("internal: ")), nil, "the longest error string accepted")
	push("room event", "room.Event", roomEvent, "a push: the first string is \"@room.Event\", the payload a room.Event")
	push("draining", wire.EventDraining, draining, "edge.Draining{grace_ms: 5000}: reconnect to another broker")
	push("logged out", wire.EventLoggedOut, loggedOut, "edge.LoggedOut{reason: \"expired\"}")
	push("empty push", "x", nil, "")

	ping := frame.AppendRequest(nil, "Ping", hexb("0a026869"))
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	be := func(n int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }
	longMethod := cat(be(8+129), be(129), []byte(strings.Repeat("a", 129)), be(0))
	longErr := cat(be(8+1025), be(1025), []byte(strings.Repeat("e", 1025)), be(0))
	type bad struct {
		name, shape, scope string
		b                  []byte
		reason             string
	}
	const rq, rs = "request", "response"
	fr, msg := conformance.ScopeFrame, conformance.ScopeMessage
	for _, tt := range []bad{
		{"oversized total", rq, fr, hexb("7fffffff"), "TotalLen over max_frame (checked before any buffer is sized)"},
		{"total one over maximum", rq, fr, hexb("00100001"), "TotalLen max_frame+1"},
		{"negative total", rq, fr, hexb("ffffffff"), "negative TotalLen"},
		{"most negative total", rs, fr, hexb("80000000"), "negative TotalLen"},
		{"total 7", rq, fr, hexb("00000007" + "00000000" + "000000"), "TotalLen under min_frame (8)"},
		{"total 0", rq, fr, hexb("00000000"), "TotalLen 0"},
		{"negative method length", rq, fr, hexb("00000008" + "ffffffff" + "00000000"), "negative MethodLen"},
		{"negative error length", rs, fr, hexb("00000008" + "80000000" + "00000000"), "negative ErrLen"},
		{"negative payload length", rq, fr, hexb("0000000c" + "00000004" + "50696e67" + "ffffffff"), "negative PayloadLen"},
		{"method longer than body", rq, fr, hexb("0000000c" + "00000010" + "50696e67" + "00000000"), "MethodLen past the end of the frame"},
		{"method eats payload length", rq, fr, hexb("0000000c" + "00000006" + "50696e67" + "00000000"), "MethodLen leaves no room for PayloadLen"},
		{"payload longer than rest", rq, fr, hexb("00000010" + "00000004" + "50696e67" + "00000005" + "0a026869"), "PayloadLen past the end of the frame (TotalLen inconsistent with the parts)"},
		{"trailing bytes", rq, fr, hexb("00000010" + "00000004" + "50696e67" + "00000002" + "0a026869"), "the parts end before TotalLen"},
		{"trailing bytes in response", rs, fr, hexb("0000000a" + "00000000" + "00000000" + "0000"), "the parts end before TotalLen"},
		{"method over max_method", rq, fr, longMethod, "a method of 129 bytes"},
		{"huge method length", rq, fr, hexb("00000008" + "41414141" + "00000000"), "MethodLen over max_method (checked before the bytes left)"},
		{"error over max_err", rs, fr, longErr, "an error string of 1025 bytes"},
		{"message shorter than TotalLen", rq, msg, nil, "an empty message"},
		{"3-byte message", rs, msg, hexb("000000"), "a message too short to hold TotalLen"},
		{"truncated", rq, msg, ping[:len(ping)-1], "TotalLen 16 with 15 bytes after it: a frame cut short"},
		{"truncated after total", rs, msg, ping[:4], "TotalLen with nothing after it"},
		{"message one long", rq, msg, cat(ping, []byte{0}), "a byte after the frame"},
		{"two frames in one message", rs, msg, cat(ping, ping), "one message carries exactly one frame"},
	} {
		var err error
		if tt.scope == msg || tt.shape == rq {
			_, _, err = frame.DecodeRequestFrame(tt.b, frame.Limits{})
		}
		if tt.shape == rs {
			_, _, err = frame.DecodeResponseFrame(tt.b, frame.Limits{})
		}
		if !errors.Is(err, frame.ErrBadFrame) {
			panic("frames: " + tt.name + " is not a bad frame")
		}
		f.Vectors = append(f.Vectors, conformance.Frame{
			Name: tt.name, Kind: conformance.KindBad, Hex: conformance.Hex(tt.b),
			Shape: tt.shape, Scope: tt.scope, Reason: tt.reason, Code: wire.CodeBadFrame, Error: err.Error(),
		})
	}
	return f
}

// hexb decodes lowercase hex.
func hexb(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
