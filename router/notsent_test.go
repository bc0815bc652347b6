package router

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/wire"
)

// TestNotSent pins what the Client takes as "never sent" (safe to retry on
// another instance) to what the link layer really returns.
func TestNotSent(t *testing.T) {
	p := link.Dial("tcp://127.0.0.1:1", link.PeerOptions{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := p.Call(ctx, &platformpb.Envelope{Method: "echo.Echo"})
	if !NotSent(err) {
		t.Errorf("a call on a link that never connected: NotSent(%v) = false", err)
	}
	_ = p.Close()
	_, err = p.Call(ctx, &platformpb.Envelope{Method: "echo.Echo"})
	if !NotSent(err) {
		t.Errorf("a call on a closed link: NotSent(%v) = false", err)
	}
	for _, err := range []error{
		link.ErrOverloaded,
		fmt.Errorf("x: %w", link.ErrOverloaded),
	} {
		if !NotSent(err) {
			t.Errorf("NotSent(%v) = false", err)
		}
	}
	for _, err := range []error{
		fmt.Errorf("%w: tcp://x:1: no message for 3s", link.ErrUnavailable),
		link.ErrTimeout,
		context.Canceled,
	} {
		if NotSent(err) {
			t.Errorf("NotSent(%v) = true: it may have run", err)
		}
	}
}

func TestNotRun(t *testing.T) {
	tests := []struct {
		code, msg string
		want      bool
	}{
		{wire.CodeOverloaded, "x is running 2 requests", true},
		{wire.CodeUnavailable, wire.DrainingMessage, true},
		{wire.CodeUnavailable, wire.ClosingMessage, true},
		{wire.CodeUnavailable, "no live instance of y", false},
		{wire.CodeTimeout, "", false},
		{wire.CodeInternal, "handler panicked", false},
	}
	for _, tt := range tests {
		if got := wire.NotRun(&platformpb.Envelope{ErrorCode: tt.code, ErrorMessage: tt.msg}); got != tt.want {
			t.Errorf("wire.NotRun(%s: %s) = %v", tt.code, tt.msg, got)
		}
	}
}
