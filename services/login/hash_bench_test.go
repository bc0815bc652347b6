package login

import (
	"context"
	"testing"
)

// BenchmarkArgon2 is the cost of one password check alone, with the
// default (OWASP) parameters, from 1 goroutine and from GOMAXPROCS: the
// ceiling of logins per second on this machine.
func BenchmarkArgon2(b *testing.B) {
	h := newHasher(NewOptions().Argon2, 0, 1<<20)
	enc, err := h.Hash(context.Background(), "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ok, err := h.Verify(context.Background(), prioLow, "correct horse battery staple", enc); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if ok, err := h.Verify(context.Background(), prioLow, "correct horse battery staple", enc); !ok || err != nil {
					b.Error(ok, err)
					return
				}
			}
		})
	})
}
