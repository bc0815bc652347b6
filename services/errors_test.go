package services

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
)

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{Errorf(CodeNotFound, "no room %s", "r42"), "not_found: no room r42"},
		{NewError(CodeBadRequest, "100%"), "bad_request: 100%"},
		{&Error{Code: CodeOverloaded}, "overloaded"},
		{&Error{Message: "what"}, "internal: what"},
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
		{Errorf(CodeMoved, "r42"), CodeMoved},
		{fmt.Errorf("wrapped: %w", Errorf(CodeConflict, "x")), CodeConflict},
		{&Error{}, CodeInternal},
		{link.ErrUnavailable, CodeUnavailable},
		{link.ErrOverloaded, CodeUnavailable},
		{fmt.Errorf("call: %w", link.ErrTimeout), CodeTimeout},
		{context.DeadlineExceeded, CodeTimeout},
		{context.Canceled, CodeUnavailable},
		{errors.New("disk on fire"), CodeInternal},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.err); got != tt.want {
			t.Errorf("CodeOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestKnownCode(t *testing.T) {
	for _, c := range []string{"bad_frame", "unknown_method", "unauthenticated", "bad_request", "not_found",
		"unavailable", "timeout", "rate_limited", "overloaded", "internal", "moved", "conflict"} {
		if !KnownCode(c) {
			t.Errorf("KnownCode(%q) = false", c)
		}
	}
	for _, c := range []string{"", "nope", "@push", "Internal"} {
		if KnownCode(c) {
			t.Errorf("KnownCode(%q) = true", c)
		}
	}
}

func TestErrorIs(t *testing.T) {
	err := fmt.Errorf("call: %w", Errorf(CodeNotFound, "no room"))
	if !errors.Is(err, &Error{Code: CodeNotFound}) {
		t.Error("errors.Is by code failed")
	}
	if !errors.Is(err, NewError(CodeNotFound, "no room")) {
		t.Error("errors.Is by code and message failed")
	}
	if errors.Is(err, &Error{Code: CodeInternal}) || errors.Is(err, NewError(CodeNotFound, "other")) {
		t.Error("errors.Is matched a different error")
	}
}

func TestEnvelopeErrors(t *testing.T) {
	env := &platformpb.Envelope{}
	if FromEnvelope(env) != nil {
		t.Fatal("empty envelope has an error")
	}
	ToEnvelope(env, Errorf(CodeRateLimited, "slow down"))
	if env.ErrorCode != "rate_limited" || env.ErrorMessage != "slow down" {
		t.Fatalf("ToEnvelope: %q %q", env.ErrorCode, env.ErrorMessage)
	}
	err := FromEnvelope(env)
	if err == nil || err.Error() != "rate_limited: slow down" {
		t.Fatalf("FromEnvelope = %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeRateLimited {
		t.Fatalf("FromEnvelope is not an *Error: %T", err)
	}
	ToEnvelope(env, fmt.Errorf("x: %w", link.ErrTimeout))
	if env.ErrorCode != CodeTimeout {
		t.Fatalf("ToEnvelope(timeout) code = %q", env.ErrorCode)
	}
	ToEnvelope(env, nil)
	if env.ErrorCode != "" || env.ErrorMessage != "" {
		t.Fatal("ToEnvelope(nil) did not clear")
	}
}
