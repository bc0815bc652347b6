package services

import (
	"context"
	"testing"

	"github.com/noonhq/noon/idl/gen/platformpb"
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
