package zmqbench

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestEcho(t *testing.T) {
	ep := StartEcho(t)
	d, err := NewDealer(ep)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				want := []byte(fmt.Sprintf("g%d-%d", g, i))
				got, err := d.Call(ctx, want)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("Call(%q) = %q, %v", want, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	d.Close()
	if _, err := d.Call(ctx, []byte("x")); err != ErrClosed {
		t.Fatalf("after Close: %v", err)
	}
}

func BenchmarkBaseline(b *testing.B) {
	ep := StartEcho(b)
	d, err := NewDealer(ep)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	payload := bytes.Repeat([]byte("x"), 64)
	for _, c := range []int{1, 16} {
		b.Run(fmt.Sprintf("conc=%d", c), func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			Measure(b, c, func(ctx context.Context) error {
				_, err := d.Call(ctx, payload)
				return err
			}).Report(b)
		})
	}
}
