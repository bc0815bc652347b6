package echo

import (
	"context"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	echopb "github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/idl/gen/echo/echorpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// FuzzEchoRequests feeds arbitrary payloads to echo.Sleep and echo.Fail
// through their real handlers (the Typed decoder included): they must answer
// with a reply or a known wire error, never panic.
func FuzzEchoRequests(f *testing.F) {
	for _, s := range []thrift.TStruct{
		&echopb.SleepRequest{Ms: 1},
		&echopb.SleepRequest{Ms: -5},
		&echopb.SleepRequest{Ms: MaxSleepMs + 1},
		&echopb.FailRequest{Code: "not_found", Message: "no room"},
		&echopb.FailRequest{Code: "bogus"},
	} {
		b, err := thriftx.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x29, 0xf5, 0xa0, 0x8d, 0x06, 0x00})
	handlers := Handlers()
	// A context that is already done: a valid sleep returns timeout at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []string{echorpc.MethodSleep, echorpc.MethodFail} {
			for _, in := range [][]byte{b, b[:len(b)/2]} {
				out, err := handlers[m](ctx, services.NewSession(nil), in)
				if err == nil {
					if m == echorpc.MethodFail {
						t.Fatalf("Fail(%x) succeeded", in)
					}
					var rep echopb.SleepReply
					if err := thriftx.Unmarshal(out, &rep); err != nil {
						t.Fatalf("Sleep(%x) reply does not decode: %v", in, err)
					}
					continue
				}
				if !wire.KnownCode(wire.CodeOf(err)) {
					t.Fatalf("%s(%x) = %v: unknown code", m, in, err)
				}
			}
		}
	})
}
