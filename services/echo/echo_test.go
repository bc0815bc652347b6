package echo

import (
	"bytes"
	"context"
	"testing"
	"time"

	echopb "github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/idl/gen/echo/echorpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

func call(t *testing.T, ctx context.Context, method string, payload []byte) ([]byte, error) {
	t.Helper()
	h := Handlers()[method]
	if h == nil {
		t.Fatalf("no handler for %s", method)
	}
	return h(ctx, services.NewSession(nil), payload)
}

func TestHandlersComplete(t *testing.T) {
	h := Handlers()
	for _, m := range []string{echorpc.MethodEcho, echorpc.MethodSleep, echorpc.MethodFail} {
		if h[m] == nil {
			t.Errorf("missing %s", m)
		}
	}
	if len(h) != 3 {
		t.Errorf("%d handlers, want 3", len(h))
	}
}

func TestEcho(t *testing.T) {
	for _, in := range [][]byte{nil, {}, []byte("hello"), {0x00, 0xff, 0x15}, bytes.Repeat([]byte{7}, 100_000)} {
		out, err := call(t, context.Background(), echorpc.MethodEcho, in)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("Echo(%d bytes) = %d bytes, %v", len(in), len(out), err)
		}
	}
}

func TestSleep(t *testing.T) {
	enc := func(ms int32) []byte {
		b, err := thriftx.Marshal(&echopb.SleepRequest{Ms: ms})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	start := time.Now()
	out, err := call(t, context.Background(), echorpc.MethodSleep, enc(30))
	if err != nil {
		t.Fatal(err)
	}
	var rep echopb.SleepReply
	if err := thriftx.Unmarshal(out, &rep); err != nil || rep.SleptMs != 30 {
		t.Fatalf("reply %v %v", rep, err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("slept %v, want >= 30ms", d)
	}

	for _, ms := range []int32{-1, MaxSleepMs + 1, -2147483648} {
		_, err := call(t, context.Background(), echorpc.MethodSleep, enc(ms))
		if wire.CodeOf(err) != wire.CodeBadRequest {
			t.Errorf("Sleep(%d): %v, want bad_request", ms, err)
		}
	}
	if _, err := call(t, context.Background(), echorpc.MethodSleep, []byte{0x15}); wire.CodeOf(err) != wire.CodeBadRequest {
		t.Errorf("Sleep(garbage): %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = call(t, ctx, echorpc.MethodSleep, enc(5000))
	if wire.CodeOf(err) != wire.CodeTimeout {
		t.Fatalf("Sleep past the deadline: %v, want timeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Sleep did not return early: %v", d)
	}
}

func TestFail(t *testing.T) {
	enc := func(code, msg string) []byte {
		b, err := thriftx.Marshal(&echopb.FailRequest{Code: code, Message: msg})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct{ code, msg, want string }{
		{"not_found", "no room r42", "not_found: no room r42"},
		{"moved", "r42 is on room-2", "moved: r42 is on room-2"},
		{"internal", "100% broken", "internal: 100% broken"},
		{"nope", "x", `bad_request: unknown error code "nope"`},
		{"", "x", `bad_request: unknown error code ""`},
	}
	for _, tt := range tests {
		out, err := call(t, context.Background(), echorpc.MethodFail, enc(tt.code, tt.msg))
		if out != nil || err == nil || err.Error() != tt.want {
			t.Errorf("Fail(%q, %q) = %v, %v; want %s", tt.code, tt.msg, out, err, tt.want)
		}
	}
}
