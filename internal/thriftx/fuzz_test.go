package thriftx

import (
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/gen/echo"
)

// FuzzUnmarshal feeds arbitrary bytes to every echo struct: decoding must
// fail cleanly or succeed, never panic, and what decodes re-encodes to
// something that decodes to the same value.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []thrift.TStruct{
		&echo.SleepRequest{Ms: 250},
		&echo.SleepRequest{Ms: -1},
		&echo.SleepReply{SleptMs: 60000},
		&echo.FailRequest{Code: "not_found", Message: "no such room"},
		&echo.FailRequest{},
	} {
		b, err := Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x29, 0xf5, 0xa0, 0x8d, 0x06, 0x00})
	f.Add(deepStructs(70))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The whole input, then each half (a payload cut short).
		for _, in := range [][]byte{b, b[:len(b)/2], b[len(b)/2:]} {
			sleep := &echo.SleepRequest{}
			if Unmarshal(in, sleep) == nil {
				again := &echo.SleepRequest{}
				reenc, err := Marshal(sleep)
				if err != nil || Unmarshal(reenc, again) != nil || !again.Equals(sleep) {
					t.Fatalf("SleepRequest %v does not round-trip: %v", sleep, err)
				}
			}
			reply := &echo.SleepReply{}
			_ = Unmarshal(in, reply)
			fail := &echo.FailRequest{}
			if Unmarshal(in, fail) == nil {
				again := &echo.FailRequest{}
				reenc, err := Marshal(fail)
				if err != nil || Unmarshal(reenc, again) != nil || !again.Equals(fail) {
					t.Fatalf("FailRequest %v does not round-trip: %v", fail, err)
				}
			}
		}
	})
}
