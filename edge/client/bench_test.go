package client_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/noonhq/noon/edge/client"
)

// BenchmarkCall measures echo round trips through the edge over a real
// socket, one connection shared by parallel callers (pipelined), for a few
// payload sizes.
func BenchmarkCall(b *testing.B) {
	for _, size := range []int{16, 1 << 10, 64 << 10} {
		for _, tr := range []string{"tcp", "ws"} {
			b.Run(fmt.Sprintf("%s/%d", tr, size), func(b *testing.B) {
				addr := startBench(b, tr)
				c, err := client.Dial(context.Background(), addr, client.DefaultOptions())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				payload := make([]byte, size)
				b.SetBytes(int64(2 * size))
				b.ReportAllocs()
				b.SetParallelism(8) // 16 callers pipelining on 2 CPUs
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := c.Call(context.Background(), "echo", payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
