package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/wire"
)

// TestTransportErrorText: what a client reads never names an internal
// instance or its endpoint (issue 14: an unreachable instance came back as
// "unavailable: ... instance echo-1a2b unreachable: link: peer unavailable:
// tcp://10.0.0.7:5555 ..."); a full link queue is overloaded.
func TestTransportErrorText(t *testing.T) {
	r := &Router{log: slog.New(slog.DiscardHandler)}
	inst := &platformpb.Instance{Id: "echo-secret42", Router: "tcp://10.0.0.7:5555"}
	req := Request{Env: &platformpb.Envelope{Method: "echo.Echo"}}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: tcp://10.0.0.7:5555: no message for 3s", link.ErrUnavailable), "unavailable: echo.Echo: service unreachable, try again"},
		{fmt.Errorf("%w: tcp://10.0.0.7:5555 %w", link.ErrUnavailable, link.ErrNotConnected), "unavailable: echo.Echo: service unreachable, try again"},
		{link.ErrOverloaded, "overloaded: echo.Echo: service busy, try again"},
		{link.ErrClosed, "unavailable: echo.Echo: service unreachable, try again"},
		{errors.New("anything else from tcp://10.0.0.7:5555"), "unavailable: echo.Echo: service unreachable, try again"},
	} {
		got := r.transportError(context.Background(), req, inst, tc.err).Error()
		if got != tc.want {
			t.Errorf("transportError(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if strings.Contains(got, "secret42") || strings.Contains(got, "10.0.0.7") {
			t.Errorf("transportError(%v) = %q names the instance", tc.err, got)
		}
		if wire.CodeOf(r.transportError(context.Background(), req, inst, tc.err)) == "" {
			t.Errorf("no wire code for %v", tc.err)
		}
	}
}

// TestScrub: a reply's error text that names its sender (the service
// runtime's overloaded reply) is replaced; other texts are the service's
// own and pass as they are.
func TestScrub(t *testing.T) {
	for _, tc := range []struct {
		code, msg, want string
	}{
		{wire.CodeOverloaded, "echo-secret42 is running 256 requests", "echo.Echo: service busy, try again"},
		{wire.CodeInternal, "echo-secret42 broke", "echo.Echo: <instance> broke"},
		{wire.CodeOverloaded, "too many logins, try again", "too many logins, try again"},
		{"", "", ""},
	} {
		rep := &platformpb.Envelope{Sender: "echo-secret42", ErrorCode: tc.code, ErrorMessage: tc.msg}
		scrub(rep, "echo.Echo")
		if rep.GetErrorMessage() != tc.want {
			t.Errorf("scrub(%q %q) = %q, want %q", tc.code, tc.msg, rep.GetErrorMessage(), tc.want)
		}
	}
}
