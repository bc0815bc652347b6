package wire_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/wire"
)

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *wire.Error
		want string
	}{
		{wire.Errorf(wire.CodeNotFound, "no room %s", "r42"), "not_found: no room r42"},
		{wire.NewError(wire.CodeBadRequest, "100%"), "bad_request: 100%"},
		{&wire.Error{Code: wire.CodeOverloaded}, "overloaded"},
		{&wire.Error{Message: "what"}, "what"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{wire.Errorf(wire.CodeMoved, "r42"), wire.CodeMoved},
		{fmt.Errorf("wrapped: %w", wire.Errorf(wire.CodeConflict, "x")), wire.CodeConflict},
		{&wire.Error{}, wire.CodeInternal},
		{link.ErrUnavailable, wire.CodeUnavailable},
		{link.ErrOverloaded, wire.CodeUnavailable},
		{fmt.Errorf("call: %w", link.ErrTimeout), wire.CodeTimeout},
		{context.DeadlineExceeded, wire.CodeTimeout},
		{context.Canceled, wire.CodeUnavailable},
		{errors.New("disk on fire"), wire.CodeInternal},
	}
	for _, tt := range tests {
		if got := wire.CodeOf(tt.err); got != tt.want {
			t.Errorf("CodeOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestKnownCode(t *testing.T) {
	for _, c := range []string{"bad_frame", "unknown_method", "unauthenticated", "bad_request", "not_found",
		"unavailable", "timeout", "rate_limited", "overloaded", "internal", "moved", "conflict"} {
		if !wire.KnownCode(c) {
			t.Errorf("KnownCode(%q) = false", c)
		}
	}
	for _, c := range []string{"", "nope", "@push", "Internal"} {
		if wire.KnownCode(c) {
			t.Errorf("KnownCode(%q) = true", c)
		}
	}
}

func TestErrorIs(t *testing.T) {
	err := fmt.Errorf("call: %w", wire.Errorf(wire.CodeNotFound, "no room"))
	if !errors.Is(err, &wire.Error{Code: wire.CodeNotFound}) {
		t.Error("errors.Is by code failed")
	}
	if !errors.Is(err, wire.NewError(wire.CodeNotFound, "no room")) {
		t.Error("errors.Is by code and message failed")
	}
	if errors.Is(err, &wire.Error{Code: wire.CodeInternal}) || errors.Is(err, wire.NewError(wire.CodeNotFound, "other")) {
		t.Error("errors.Is matched a different error")
	}
}

func TestEnvelopeErrors(t *testing.T) {
	env := &platformpb.Envelope{}
	if wire.FromEnvelope(env) != nil {
		t.Fatal("empty envelope has an error")
	}
	wire.ToEnvelope(env, wire.Errorf(wire.CodeRateLimited, "slow down"))
	if env.ErrorCode != "rate_limited" || env.ErrorMessage != "slow down" {
		t.Fatalf("ToEnvelope: %q %q", env.ErrorCode, env.ErrorMessage)
	}
	err := wire.FromEnvelope(env)
	if err == nil || err.Error() != "rate_limited: slow down" {
		t.Fatalf("FromEnvelope = %v", err)
	}
	var e *wire.Error
	if !errors.As(err, &e) || e.Code != wire.CodeRateLimited {
		t.Fatalf("FromEnvelope is not an *Error: %T", err)
	}
	wire.ToEnvelope(env, fmt.Errorf("x: %w", link.ErrTimeout))
	if env.ErrorCode != wire.CodeTimeout {
		t.Fatalf("ToEnvelope(timeout) code = %q", env.ErrorCode)
	}
	wire.ToEnvelope(env, nil)
	if env.ErrorCode != "" || env.ErrorMessage != "" {
		t.Fatal("ToEnvelope(nil) did not clear")
	}
}
