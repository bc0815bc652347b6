package wire_test

import (
	"context"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	echopb "github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/wire"
)

// TestCall checks what a generated client stub does: the method and request
// reach the CallFunc, the reply it fills comes back, and an error comes
// back with a nil reply.
func TestCall(t *testing.T) {
	ctx := context.Background()
	call := func(_ context.Context, method string, req, reply thrift.TStruct) error {
		if method != "echo.Sleep" || req.(*echopb.SleepRequest).Ms != 7 {
			t.Errorf("CallFunc got %s %v", method, req)
		}
		reply.(*echopb.SleepReply).SleptMs = 7
		return nil
	}
	rep, err := wire.Call(ctx, call, "echo.Sleep", &echopb.SleepRequest{Ms: 7}, echopb.NewSleepReply)
	if err != nil || rep.SleptMs != 7 {
		t.Fatalf("Call = %v, %v", rep, err)
	}
	fail := func(context.Context, string, thrift.TStruct, thrift.TStruct) error {
		return wire.NewError(wire.CodeNotFound, "no")
	}
	rep, err = wire.Call(ctx, fail, "echo.Sleep", &echopb.SleepRequest{}, echopb.NewSleepReply)
	if rep != nil || wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("Call = %v, %v; want nil, not_found", rep, err)
	}
}
