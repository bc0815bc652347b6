package frame

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type shape int

const (
	request shape = iota
	response
	push
)

func (s shape) String() string {
	return [...]string{"request", "response", "push"}[s]
}

// encodingTests are frames with their exact wire bytes.
var encodingTests = []struct {
	name    string
	shape   shape
	first   string // method, error string, or event type without "@"
	payload []byte
	wire    string
}{
	{
		name: "ping request", shape: request, first: "Ping", payload: hexb("0a 02 68 69"),
		wire: "00 00 00 10  00 00 00 04  50 69 6e 67  00 00 00 04  0a 02 68 69",
	},
	{
		name: "empty request", shape: request, first: "", payload: nil,
		wire: "00 00 00 08  00 00 00 00  00 00 00 00",
	},
	{
		name: "ok response", shape: response, first: "", payload: hexb("01"),
		wire: "00 00 00 09  00 00 00 00  00 00 00 01  01",
	},
	{
		name: "error response", shape: response, first: "timeout: slow", payload: nil,
		wire: "00 00 00 15  00 00 00 0d  74 69 6d 65 6f 75 74 3a 20 73 6c 6f 77  00 00 00 00",
	},
	{
		name: "push", shape: push, first: "room.Event", payload: hexb("01 02"),
		wire: "00 00 00 15  00 00 00 0b  40 72 6f 6f 6d 2e 45 76 65 6e 74  00 00 00 02  01 02",
	},
	{
		name: "128-byte method", shape: request, first: strings.Repeat("m", 128), payload: hexb("00"),
		wire: "00 00 00 89  00 00 00 80  " + strings.Repeat("6d", 128) + "  00 00 00 01  00",
	},
}

func TestEncode(t *testing.T) {
	for _, tt := range encodingTests {
		t.Run(tt.name, func(t *testing.T) {
			want := hexb(tt.wire)
			prefix := []byte("keep")
			var got []byte
			switch tt.shape {
			case request:
				got = AppendRequest(prefix, tt.first, tt.payload)
			case response:
				got = AppendResponse(prefix, tt.first, tt.payload)
			case push:
				got = AppendPush(prefix, tt.first, tt.payload)
			}
			if !bytes.Equal(got, append([]byte("keep"), want...)) {
				t.Errorf("Append = % x\nwant       % x", got[4:], want)
			}

			var out bytes.Buffer
			w := NewWriter(&out, DefaultLimits())
			var err error
			switch tt.shape {
			case request:
				err = w.WriteRequest(tt.first, tt.payload)
			case response:
				err = w.WriteResponse(tt.first, tt.payload)
			case push:
				err = w.WritePush(tt.first, tt.payload)
			}
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if out.Len() != 0 {
				t.Errorf("Writer wrote %d bytes before Flush", out.Len())
			}
			if err := w.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("Writer = % x\nwant     % x", out.Bytes(), want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	for _, tt := range encodingTests {
		t.Run(tt.name, func(t *testing.T) {
			wire := hexb(tt.wire)
			wantFirst := tt.first
			if tt.shape == push {
				wantFirst = "@" + tt.first
			}
			check := func(how string, first, payload []byte, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				if string(first) != wantFirst || !bytes.Equal(payload, tt.payload) {
					t.Errorf("%s = %q, % x; want %q, % x", how, first, payload, wantFirst, tt.payload)
				}
				if IsPush(first) != (tt.shape == push) {
					t.Errorf("%s: IsPush(%q) = %v", how, first, !(tt.shape == push))
				}
			}
			for _, size := range []int{16, DefaultBufferSize} {
				r := NewReaderSize(bytes.NewReader(wire), DefaultLimits(), size)
				read := r.ReadResponse
				if tt.shape == request {
					read = r.ReadRequest
				}
				first, payload, err := read()
				check("Read", first, payload, err)
				if _, _, err := read(); err != io.EOF {
					t.Errorf("second Read: err = %v, want io.EOF", err)
				}
			}
			parse, decode := ParseResponse, DecodeResponseFrame
			if tt.shape == request {
				parse, decode = ParseRequest, DecodeRequestFrame
			}
			first, payload, err := parse(wire[4:], Limits{})
			check("Parse", first, payload, err)
			first, payload, err = decode(wire, Limits{})
			check("DecodeFrame", first, payload, err)
		})
	}
}

// TestResultsCapped checks that appending to a returned slice cannot
// overwrite the payload or the next frame in the Reader's buffer.
func TestResultsCapped(t *testing.T) {
	wire := hexb("00 00 00 10  00 00 00 04  50 69 6e 67  00 00 00 04  0a 02 68 69")
	stream := cat(wire, wire)
	r := NewReader(bytes.NewReader(stream), Limits{})
	method, payload, err := r.ReadRequest()
	if err != nil {
		t.Fatal(err)
	}
	if cap(method) != len(method) || cap(payload) != len(payload) {
		t.Fatalf("cap(method)=%d cap(payload)=%d, want %d, %d", cap(method), cap(payload), len(method), len(payload))
	}
	_ = append(method, "XXXX"...)
	_ = append(payload, "XXXX"...)
	method, payload, err = r.ReadRequest()
	if err != nil || string(method) != "Ping" || !bytes.Equal(payload, hexb("0a 02 68 69")) {
		t.Fatalf("second frame = %q, % x, %v", method, payload, err)
	}
}

var (
	ping       = hexb("00 00 00 10  00 00 00 04  50 69 6e 67  00 00 00 04  0a 02 68 69")
	longMethod = cat(hexb("00 00 00 89  00 00 00 81"), bytes.Repeat([]byte("a"), 129), hexb("00 00 00 00"))
	longErr    = cat(hexb("00 00 04 09  00 00 04 01"), bytes.Repeat([]byte("e"), 1025), hexb("00 00 00 00"))
)

// rejectTests are streams that must fail, with the exact error.
var rejectTests = []struct {
	name  string
	shape shape // request or response
	wire  []byte
	kind  error // a bad-frame kind, or io.EOF / io.ErrUnexpectedEOF
	text  string
}{
	{"oversized total", request, hexb("7f ff ff ff"), ErrTooLarge,
		"frame length 2147483647 exceeds maximum 1048576"},
	{"total one over maximum", request, hexb("00 10 00 01"), ErrTooLarge,
		"frame length 1048577 exceeds maximum 1048576"},
	{"negative total", request, hexb("ff ff ff ff"), ErrNegativeLength,
		"negative frame length -1"},
	{"most negative total", response, hexb("80 00 00 00"), ErrNegativeLength,
		"negative frame length -2147483648"},
	{"total 7", request, hexb("00 00 00 07  00 00 00 00  00 00 00"), ErrTooShort,
		"frame length 7 is below minimum 8"},
	{"total 0", request, hexb("00 00 00 00"), ErrTooShort,
		"frame length 0 is below minimum 8"},
	{"negative method length", request, hexb("00 00 00 08  ff ff ff ff  00 00 00 00"), ErrNegativeLength,
		"negative method length -1"},
	{"negative error length", response, hexb("00 00 00 08  80 00 00 00  00 00 00 00"), ErrNegativeLength,
		"negative error length -2147483648"},
	{"negative payload length", request, hexb("00 00 00 0c  00 00 00 04  50 69 6e 67  ff ff ff ff"), ErrNegativeLength,
		"negative payload length -1"},
	{"method longer than body", request, hexb("00 00 00 0c  00 00 00 10  50 69 6e 67  00 00 00 00"), ErrInconsistent,
		"method length 16 exceeds the 4 bytes left in the frame"},
	{"method eats payload length", request, hexb("00 00 00 0c  00 00 00 06  50 69 6e 67  00 00 00 00"), ErrInconsistent,
		"method length 6 exceeds the 4 bytes left in the frame"},
	{"payload longer than rest", request, hexb("00 00 00 10  00 00 00 04  50 69 6e 67  00 00 00 05  0a 02 68 69"), ErrInconsistent,
		"payload length 5 exceeds the 4 bytes left in the frame"},
	{"trailing bytes", request, hexb("00 00 00 10  00 00 00 04  50 69 6e 67  00 00 00 02  0a 02 68 69"), ErrInconsistent,
		"payload length 2 leaves 2 trailing bytes in the frame"},
	{"trailing bytes in response", response, hexb("00 00 00 0a  00 00 00 00  00 00 00 00  00 00"), ErrInconsistent,
		"payload length 0 leaves 2 trailing bytes in the frame"},
	{"method over 128 bytes", request, longMethod, ErrNameTooLong,
		"method length 129 exceeds maximum 128"},
	{"huge method length", request, hexb("00 00 00 08  41 41 41 41  00 00 00 00"), ErrNameTooLong,
		"method length 1094795585 exceeds maximum 128"},
	{"error over 1024 bytes", response, longErr, ErrNameTooLong,
		"error length 1025 exceeds maximum 1024"},
	{"cut in body", request, ping[:10], io.ErrUnexpectedEOF, "unexpected EOF"},
	{"cut in total", request, ping[:2], io.ErrUnexpectedEOF, "unexpected EOF"},
	{"cut after total", response, ping[:4], io.ErrUnexpectedEOF, "unexpected EOF"},
	{"clean end", request, nil, io.EOF, "EOF"},
}

func TestReject(t *testing.T) {
	for _, tt := range rejectTests {
		t.Run(tt.name, func(t *testing.T) {
			badFrame := errors.Is(tt.kind, ErrBadFrame)
			check := func(how string, first, payload []byte, err error) {
				t.Helper()
				if first != nil || payload != nil {
					t.Errorf("%s returned %q, % x with an error", how, first, payload)
				}
				if err == nil {
					t.Fatalf("%s: no error, want %q", how, tt.text)
				}
				if err.Error() != tt.text {
					t.Errorf("%s: err = %q, want %q", how, err, tt.text)
				}
				if !errors.Is(err, tt.kind) {
					t.Errorf("%s: err %v is not %v", how, err, tt.kind)
				}
				if errors.Is(err, ErrBadFrame) != badFrame {
					t.Errorf("%s: errors.Is(%v, ErrBadFrame) = %v", how, err, !badFrame)
				}
				var fe *Error
				if errors.As(err, &fe) != badFrame {
					t.Errorf("%s: errors.As(%v, *Error) = %v", how, err, !badFrame)
				}
				if !badFrame && err != tt.kind {
					t.Errorf("%s: stream error %#v is not returned as is", how, err)
				}
			}
			for _, size := range []int{16, DefaultBufferSize} {
				for _, src := range []struct {
					name string
					r    io.Reader
				}{
					{"whole", bytes.NewReader(tt.wire)},
					{"one byte", iotest.OneByteReader(bytes.NewReader(tt.wire))},
					{"data+EOF", iotest.DataErrReader(bytes.NewReader(tt.wire))},
				} {
					r := NewReaderSize(src.r, Limits{}, size)
					read := r.ReadResponse
					if tt.shape == request {
						read = r.ReadRequest
					}
					first, payload, err := read()
					check("Read/"+src.name, first, payload, err)
				}
			}
			if !badFrame {
				return
			}
			// A whole frame is rejected the same way from bytes and as a
			// WebSocket message.
			total := readLen(tt.wire)
			if total < 0 || total != int64(len(tt.wire)-4) {
				return
			}
			parse, decode := ParseResponse, DecodeResponseFrame
			if tt.shape == request {
				parse, decode = ParseRequest, DecodeRequestFrame
			}
			first, payload, err := parse(tt.wire[4:], Limits{})
			check("Parse", first, payload, err)
			first, payload, err = decode(tt.wire, Limits{})
			check("DecodeFrame", first, payload, err)
		})
	}
}

func TestDecodeFrameRejectsBadPrefix(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		kind error
		text string
	}{
		{"empty message", nil, ErrTooShort, "message of 0 bytes is shorter than the 4-byte frame length"},
		{"3-byte message", hexb("00 00 00"), ErrTooShort, "message of 3 bytes is shorter than the 4-byte frame length"},
		{"message one short", ping[:len(ping)-1], ErrInconsistent,
			"frame length 16 does not match the 15 bytes after it in the message"},
		{"message one long", cat(ping, []byte{0}), ErrInconsistent,
			"frame length 16 does not match the 17 bytes after it in the message"},
		{"two frames in one message", cat(ping, ping), ErrInconsistent,
			"frame length 16 does not match the 36 bytes after it in the message"},
		{"oversized prefix", cat(hexb("7f ff ff ff"), ping[4:]), ErrTooLarge,
			"frame length 2147483647 exceeds maximum 1048576"},
		{"negative prefix", cat(hexb("ff ff ff f0"), ping[4:]), ErrNegativeLength,
			"negative frame length -16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, decode := range []func([]byte, Limits) ([]byte, []byte, error){DecodeRequestFrame, DecodeResponseFrame} {
				_, _, err := decode(tt.msg, Limits{})
				if err == nil || err.Error() != tt.text || !errors.Is(err, tt.kind) || !errors.Is(err, ErrBadFrame) {
					t.Errorf("err = %v, want %q (%v)", err, tt.text, tt.kind)
				}
			}
		})
	}
}

func TestParseRejectsOversizedBody(t *testing.T) {
	body := make([]byte, 100)
	_, _, err := ParseRequest(body, Limits{MaxFrame: 64})
	if err == nil || err.Error() != "frame length 100 exceeds maximum 64" || !errors.Is(err, ErrTooLarge) {
		t.Errorf("err = %v", err)
	}
	_, _, err = ParseResponse(body[:7], Limits{})
	if err == nil || err.Error() != "frame length 7 is below minimum 8" || !errors.Is(err, ErrTooShort) {
		t.Errorf("err = %v", err)
	}
}

func TestIsPush(t *testing.T) {
	for _, tt := range []struct {
		first string
		want  bool
	}{
		{"", false},
		{"@", true},
		{"@room.Event", true},
		{"not_found: no such room", false},
		{"x@y", false},
	} {
		if got := IsPush(tt.first); got != tt.want {
			t.Errorf("IsPush(%q) = %v, want %v", tt.first, got, tt.want)
		}
		if got := IsPush([]byte(tt.first)); got != tt.want {
			t.Errorf("IsPush([]byte(%q)) = %v, want %v", tt.first, got, tt.want)
		}
	}
}
