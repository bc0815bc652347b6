package services_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

func TestStoreError(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	bug := errors.New("syntax error at or near")
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want string
	}{
		{live, fmt.Errorf("read: %w", io.EOF), "unavailable: room store unavailable"},
		{live, fmt.Errorf("store: %w", context.DeadlineExceeded), "unavailable: room store unavailable"},
		{ended, fmt.Errorf("store: %w", context.DeadlineExceeded), "timeout: deadline passed waiting for the room store"},
		{canceled, io.EOF, "unavailable: canceled waiting for the room store"},
		{live, wire.Errorf(wire.CodeConflict, "taken"), "conflict: taken"},
		{live, bug, bug.Error()},
	} {
		if got := services.StoreError(tc.ctx, "room", tc.err); got == nil || got.Error() != tc.want {
			t.Errorf("StoreError(%v) = %v, want %q", tc.err, got, tc.want)
		}
	}
	if services.StoreError(live, "room", nil) != nil {
		t.Error("StoreError(nil) != nil")
	}
}
