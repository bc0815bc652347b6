package services

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/noonhq/noon/wire"
)

// TestReplyErrorOutage: a handler's unmapped store outage is answered
// unavailable, never internal; a bug stays internal with its text hidden.
func TestReplyErrorOutage(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if code, msg := replyError(fmt.Errorf("redis: %w", io.EOF), log); code != wire.CodeUnavailable || msg != "store unavailable" {
		t.Errorf("outage: %s: %s", code, msg)
	}
	if code, msg := replyError(errors.New("nil map"), log); code != wire.CodeInternal || msg != "internal error" {
		t.Errorf("bug: %s: %s", code, msg)
	}
}
