package broker_test

import (
	"testing"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/idl/methods"
)

// TestPandapartyNamesRoute checks that every bare method name pandaparty's
// clients send resolves, through the default aliases, to a declared method
// of the service that serves it.
func TestPandapartyNamesRoute(t *testing.T) {
	table, err := broker.NewRouteTable(broker.DefaultRoutes(), broker.DefaultAliases())
	if err != nil {
		t.Fatal(err)
	}
	for bare, want := range map[string]struct{ method, service string }{
		"Register":         {"login.Register", "login"},
		"Login":            {"login.Login", "login"},
		"ValidateSession":  {"login.Validate", "login"},
		"CreateRoom":       {"room.Create", "room"},
		"JoinRoom":         {"room.Join", "room"},
		"GetFriendsList":   {"friends.List", "friends"},
		"GetPaymentStatus": {"pay.Status", "pay"},
	} {
		full, r, ok := table.Resolve(bare)
		if !ok || full != want.method || r.Service != want.service {
			t.Errorf("%s resolves to %s on %q (%v), want %s on %q", bare, full, r.Service, ok, want.method, want.service)
			continue
		}
		if _, ok := methods.Lookup(full); !ok {
			t.Errorf("%s -> %s: no thrift service declares it", bare, full)
		}
	}
}
