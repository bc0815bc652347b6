package friends

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/noonhq/noon/wire"
)

// TestWireError: a store outage answers unavailable, never internal
// (wireError used to let every store error through: it tested
// wire.AsError, which is never nil, so the raw error became internal).
func TestWireError(t *testing.T) {
	s := newEnv(t, NewMemoryStore()).service()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("redis: %w", io.EOF), "unavailable: friends store unavailable"},
		{errors.New("a bug"), "unavailable: friends: list failed: try again"},
		{wire.Errorf(wire.CodeNotFound, "no such user"), "not_found: no such user"},
	} {
		if got := s.wireError("list", tc.err); got == nil || got.Error() != tc.want {
			t.Errorf("wireError(%v) = %v, want %q", tc.err, got, tc.want)
		}
	}
	if s.wireError("list", nil) != nil {
		t.Error("wireError(nil) != nil")
	}
}
