package services

import (
	"context"
	"strings"
	"testing"

	echopb "github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

func TestTyped(t *testing.T) {
	h := wire.Typed(echopb.NewSleepRequest, func(ctx context.Context, s *Session, req *echopb.SleepRequest) (*echopb.SleepReply, error) {
		if req.Ms < 0 {
			return nil, wire.Errorf(wire.CodeBadRequest, "negative")
		}
		if req.Ms == 0 {
			return nil, nil
		}
		return &echopb.SleepReply{SleptMs: req.Ms * 2}, nil
	})
	ctx := context.Background()
	in, _ := thriftx.Marshal(&echopb.SleepRequest{Ms: 21})
	out, err := h(ctx, NewSession(nil), in)
	if err != nil {
		t.Fatal(err)
	}
	var rep echopb.SleepReply
	if err := thriftx.Unmarshal(out, &rep); err != nil || rep.SleptMs != 42 {
		t.Fatalf("reply %v, %v", rep, err)
	}

	_, err = h(ctx, NewSession(nil), []byte{0xff, 0xff})
	if wire.CodeOf(err) != wire.CodeBadRequest || !strings.HasPrefix(err.Error(), "bad_request: thriftx: decode") {
		t.Fatalf("garbage: %v", err)
	}
	neg, _ := thriftx.Marshal(&echopb.SleepRequest{Ms: -1})
	if _, err := h(ctx, NewSession(nil), neg); err == nil || err.Error() != "bad_request: negative" {
		t.Fatalf("handler error: %v", err)
	}
	zero, _ := thriftx.Marshal(&echopb.SleepRequest{})
	out, err = h(ctx, NewSession(nil), zero)
	if err != nil {
		t.Fatal(err)
	}
	// A nil *SleepReply encodes as an empty struct.
	if err := thriftx.Unmarshal(out, &echopb.SleepReply{}); err != nil {
		t.Fatalf("nil reply encoding %x: %v", out, err)
	}
}
