package services

import (
	"context"
	"fmt"
	"testing"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

func TestSession(t *testing.T) {
	s := NewSession(&platformpb.Session{
		Id: "s1", UserId: "u1", RemoteAddr: "10.0.0.1:5000", Broker: "b1",
		Bindings: map[string]string{"room": "r1", "match": "m1"},
	})
	if s.ID() != "s1" || s.UserID() != "u1" || s.RemoteAddr() != "10.0.0.1:5000" || s.Broker() != "b1" {
		t.Fatalf("getters: %q %q %q %q", s.ID(), s.UserID(), s.RemoteAddr(), s.Broker())
	}
	if s.Binding("room") != "r1" || s.Binding("nope") != "" {
		t.Fatal("Binding as received")
	}
	s.Bind("room", "r2")
	s.Unbind("match")
	s.Subscribe("room/r2")
	s.Unsubscribe("room/r1")
	if s.Binding("room") != "r2" || s.Binding("match") != "" {
		t.Fatalf("Binding after changes: room=%q match=%q", s.Binding("room"), s.Binding("match"))
	}
	if s.Proto().GetBindings()["room"] != "r1" {
		t.Fatal("Bind modified the received session")
	}
	b, subs := s.Changes()
	if len(b) != 2 || b[0].Key != "room" || b[0].Value != "r2" || b[0].Unset || b[1].Key != "match" || !b[1].Unset {
		t.Fatalf("bindings = %v", b)
	}
	if len(subs) != 2 || subs[0].Topic != "room/r2" || subs[0].Unsubscribe || subs[1].Topic != "room/r1" || !subs[1].Unsubscribe {
		t.Fatalf("subscriptions = %v", subs)
	}
}

func TestSessionNone(t *testing.T) {
	s := NewSession(nil)
	if s.ID() != "" || s.UserID() != "" || s.Binding("room") != "" || s.Proto() != nil {
		t.Fatal("nil session is not empty")
	}
	s.Bind("k", "v")
	if s.Binding("k") != "v" {
		t.Fatal("Bind on an empty session")
	}
	ctx := ContextWithSession(context.Background(), s)
	if SessionFromContext(ctx) != s || SessionFromContext(context.Background()) != nil {
		t.Fatal("session context")
	}
}

// TestRequireServiceAndAdmin: the guards of internal methods, by caller.
// A client session is refused whoever carries it; over TLS the caller's
// verified identity decides; on a plain link a request with no client
// session is accepted.
func TestRequireServiceAndAdmin(t *testing.T) {
	session := &platformpb.Session{Id: "s1", UserId: "alice"}
	over := func(id pki.Identity, pb *platformpb.Session) *Session {
		s := NewSession(pb)
		s.caller, s.tls = id, true
		return s
	}
	svc := func(name string) pki.Identity { return pki.Identity{Role: pki.RoleService, Name: name} }
	const (
		clients  = "unauthenticated: an internal method: clients may not call it"
		notMatch = "unauthenticated: an internal method: %s may not call it (services match, lobby and admins may)"
		notAdmin = "unauthenticated: an admin method: %s may not call it"
	)
	for _, tc := range []struct {
		what           string
		s              *Session
		service, admin string // the errors wanted, "" for none
	}{
		{"plain link, no session", NewSession(nil), "", ""},
		{"plain link, a client session", NewSession(session), clients, clients},
		{"service:match", over(svc("match"), nil), "", fmt.Sprintf(notAdmin, "service:match")},
		{"service:lobby", over(svc("lobby"), nil), "", fmt.Sprintf(notAdmin, "service:lobby")},
		{"service:login", over(svc("login"), nil), fmt.Sprintf(notMatch, "service:login"), fmt.Sprintf(notAdmin, "service:login")},
		{"admin", over(pki.Identity{Role: pki.RoleAdmin}, nil), "", ""},
		{"a broker with a client session", over(pki.Identity{Role: pki.RoleBroker}, session), clients, clients},
		{"a broker without one", over(pki.Identity{Role: pki.RoleBroker, Name: "b1"}, nil), fmt.Sprintf(notMatch, "broker:b1"), fmt.Sprintf(notAdmin, "broker:b1")},
		{"yellow", over(pki.Identity{Role: pki.RoleYellow}, nil), fmt.Sprintf(notMatch, "yellow"), fmt.Sprintf(notAdmin, "yellow")},
	} {
		for _, g := range []struct {
			name string
			err  error
			want string
		}{
			{"RequireService", tc.s.RequireService("match", "lobby"), tc.service},
			{"RequireAdmin", tc.s.RequireAdmin(), tc.admin},
		} {
			got := ""
			if g.err != nil {
				got = g.err.Error()
				if wire.CodeOf(g.err) != wire.CodeUnauthenticated {
					t.Errorf("%s: %s: code %q", tc.what, g.name, wire.CodeOf(g.err))
				}
			}
			if got != g.want {
				t.Errorf("%s: %s = %q, want %q", tc.what, g.name, got, g.want)
			}
		}
	}
	if err := over(svc("match"), nil).RequireService(); err == nil {
		t.Error("RequireService() with no names accepted a service")
	}
}
