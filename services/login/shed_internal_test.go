package login

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// TestKnownNotShed: with the hash slot taken and the queue at shed_queue,
// a login from a known prefix still queues (and succeeds once the slot
// frees) while one from an unknown prefix is shed.
func TestKnownNotShed(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	o := NewOptions()
	o.HTTPAddr = ""
	o.Argon2.Time, o.Argon2.MemoryKiB, o.Argon2.Concurrency = 1, 1024, 1
	o.Throttle.ShedQueue = 2
	s, err := New(o, NewMemoryStore(), rdb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Register(ctx, "owner", "password1", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "owner", "password1", "192.0.2.1:1"); err != nil {
		t.Fatal(err)
	}
	// Take the slot and fill the queue with two low-priority waiters.
	if err := s.hash.acquire(ctx, prioLow); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 3)
	for range 2 {
		go func() { done <- s.hash.acquire(wctx, prioLow) }()
	}
	testenvCheck(t, func() bool { return s.hash.queueLen() == 2 })
	if _, err := s.Login(ctx, "owner", "password1", "198.51.100.1:1"); err == nil || err.Error() != "overloaded: too many logins in progress; retry in a few seconds" {
		t.Fatalf("login from an unknown prefix with the queue full: %v, want overloaded", err)
	}
	go func() { _, err := s.Login(ctx, "owner", "password1", "192.0.2.99:1"); done <- err }()
	testenvCheck(t, func() bool { return s.hash.queueLen() == 3 })
	cancel() // the low waiters give up
	s.hash.release()
	for range 3 {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("known login: %v", err)
		}
	}
}
