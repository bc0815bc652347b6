package broker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	noonclient "github.com/noonhq/noon/edge/client"
)

// BenchmarkStatelessEcho measures the broker's stateless path (client ->
// broker -> echo instance -> client) in one process over real sockets, at
// 1 and 16 connections (one call in flight on each): ns/op is a round trip
// of the whole machine, allocs/op counts the client, the broker and the
// echo instance together (make bench; the like-for-like figures are
// noonbench -only lfl).
func BenchmarkStatelessEcho(b *testing.B) {
	y := mustStartYellow(b)
	mustStartEcho(b, y)
	tb := mustStartBroker(b, y, nil)
	payload := make([]byte, 64)
	waitRoutable(b, tb, "echo.Echo", payload)
	for _, conns := range []int{1, 16} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			cs := make([]*noonclient.Client, conns)
			for i := range cs {
				c, err := noonclient.Dial(context.Background(), tb.TCPAddr().String(), noonclient.DefaultOptions())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				cs[i] = c
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism((conns + 1) / 2) // GOMAXPROCS 2: conns callers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := cs[int(next.Add(1)-1)%conns]
				for pb.Next() {
					if _, err := c.Call(context.Background(), "echo.Echo", payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
