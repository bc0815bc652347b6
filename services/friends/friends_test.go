package friends

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	friendspb "github.com/noonhq/noon/idl/gen/friends"
	"github.com/noonhq/noon/idl/gen/friends/friendsrpc"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// step is one call of a scenario: who calls op on whom, the error it must
// get ("" for none, else exactly), then the relations a->b and b->a, and
// the pushes published by the step.
type step struct {
	who, op, whom string
	err           string
	ab, ba        string
	pushes        []string
}

// The actors' names in steps; a scenario's users are fresh ids.
const (
	a = "a"
	b = "b"
)

// states as relation reports them.
const (
	none     = "none"
	friend   = "friend"
	sent     = "invite sent"
	received = "invite received"
	blocked  = "blocked"
)

// run runs op for who on whom over the API.
func (sc *scenario) run(st step) error {
	s, who, whom := sc.s, sc.ids[st.who], sc.ids[st.whom]
	sess := sessionOf(who)
	t := sc.t
	switch st.op {
	case "request":
		return call(t, s, sess, friendsrpc.MethodRequest, &friendspb.RequestRequest{UserID: thrift.StringPtr(whom)}, nil)
	case "request_name": // by username, in another case
		var rep friendspb.RequestReply
		name := strings.ToUpper(sc.names[st.whom])
		err := call(t, s, sess, friendsrpc.MethodRequest, &friendspb.RequestRequest{Username: &name}, &rep)
		if err == nil && rep.Friend.UserID != whom {
			return fmt.Errorf("request by name answered about %s, want %s", rep.Friend.UserID, whom)
		}
		return err
	case "accept":
		return call(t, s, sess, friendsrpc.MethodAccept, &friendspb.AcceptRequest{UserID: whom}, nil)
	case "decline":
		return call(t, s, sess, friendsrpc.MethodDecline, &friendspb.DeclineRequest{UserID: whom}, nil)
	case "remove":
		return call(t, s, sess, friendsrpc.MethodRemove, &friendspb.RemoveRequest{UserID: whom}, nil)
	case "block":
		return call(t, s, sess, friendsrpc.MethodBlock, &friendspb.BlockRequest{UserID: whom}, nil)
	case "unblock":
		return call(t, s, sess, friendsrpc.MethodUnblock, &friendspb.UnblockRequest{UserID: whom}, nil)
	case "wait": // whom is a duration
		d, err := time.ParseDuration(st.whom)
		if err != nil {
			t.Fatal(err)
		}
		sc.env.clock.Advance(d)
		return nil
	}
	t.Fatalf("unknown op %q", st.op)
	return nil
}

// scenario is a table test's case on fresh users a and b.
type scenario struct {
	t     *testing.T
	env   *env
	s     *Service
	ids   map[string]string
	names map[string]string
}

// TestStateMachine runs the relations' state machine as a table of
// scenarios over the API, on the memory and the Postgres store (real
// Redis), with a fake clock: after each step, both sides' relations and
// the pushes published.
func TestStateMachine(t *testing.T) {
	const ttl = "168h" // DefaultRequestTTL
	scenarios := []struct {
		name  string
		steps []step
	}{
		{"request and accept", []step{
			{who: a, op: "request", whom: b, ab: sent, ba: received, pushes: []string{"friends.Request to b"}},
			{who: b, op: "accept", whom: a, ab: friend, ba: friend, pushes: []string{"friends.Accepted to a"}},
			{who: b, op: "accept", whom: a, ab: friend, ba: friend},  // again: nothing new
			{who: a, op: "request", whom: b, ab: friend, ba: friend}, // already friends
		}},
		{"request by username", []step{
			{who: a, op: "request_name", whom: b, ab: sent, ba: received, pushes: []string{"friends.Request to b"}},
			{who: a, op: "request", whom: b, ab: sent, ba: received}, // asked already: no second push
		}},
		{"decline, then ask again", []step{
			{who: a, op: "request", whom: b, ab: sent, ba: received, pushes: []string{"friends.Request to b"}},
			{who: a, op: "accept", whom: b, err: "not_found: no friend request from b", ab: sent, ba: received},
			{who: b, op: "decline", whom: a, ab: none, ba: none},
			{who: b, op: "decline", whom: a, err: "not_found: no friend request from a", ab: none, ba: none},
			{who: a, op: "request", whom: b, ab: sent, ba: received, pushes: []string{"friends.Request to b"}},
		}},
		{"asking each other makes friends", []step{
			{who: a, op: "request", whom: b, ab: sent, ba: received, pushes: []string{"friends.Request to b"}},
			{who: b, op: "request", whom: a, ab: friend, ba: friend, pushes: []string{"friends.Accepted to a"}},
		}},
		{"remove a friend, withdraw a request", []step{
			{who: a, op: "request", whom: b, ab: sent, ba: received, pushes: []string{"friends.Request to b"}},
			{who: a, op: "remove", whom: b, ab: none, ba: none},
			{who: b, op: "request", whom: a, ab: received, ba: sent, pushes: []string{"friends.Request to a"}},
			{who: a, op: "accept", whom: b, ab: friend, ba: friend, pushes: []string{"friends.Accepted to b"}},
			{who: b, op: "remove", whom: a, ab: none, ba: none},
			{who: b, op: "remove", whom: a, err: "not_found: no friendship or request with a", ab: none, ba: none},
		}},
		{"block ends a friendship and drops requests silently", []step{
			{who: a, op: "request", whom: b, ab: sent, ba: received, pushes: []string{"friends.Request to b"}},
			{who: b, op: "accept", whom: a, ab: friend, ba: friend, pushes: []string{"friends.Accepted to a"}},
			{who: a, op: "block", whom: b, ab: blocked, ba: none},
			{who: a, op: "block", whom: b, ab: blocked, ba: none},   // again: the same
			{who: b, op: "request", whom: a, ab: blocked, ba: none}, // answered as sent; nothing stored or pushed
			{who: b, op: "accept", whom: a, err: "not_found: no friend request from a", ab: blocked, ba: none},
			{who: a, op: "request", whom: b, err: "conflict: you blocked b: unblock them first", ab: blocked, ba: none},
			{who: a, op: "remove", whom: b, err: "conflict: you blocked b: unblock them instead", ab: blocked, ba: none},
			{who: a, op: "unblock", whom: b, ab: none, ba: none},
			{who: a, op: "unblock", whom: b, err: "not_found: b is not blocked", ab: none, ba: none},
			{who: b, op: "request", whom: a, ab: received, ba: sent, pushes: []string{"friends.Request to a"}},
		}},
		{"a request blocks nothing, blocking a requester ends the request", []step{
			{who: b, op: "request", whom: a, ab: received, ba: sent, pushes: []string{"friends.Request to a"}},
			{who: a, op: "block", whom: b, ab: blocked, ba: none},
		}},
		{"both block", []step{
			{who: a, op: "block", whom: b, ab: blocked, ba: none},
			{who: b, op: "block", whom: a, ab: blocked, ba: blocked},
			{who: a, op: "request", whom: b, err: "conflict: you blocked b: unblock them first", ab: blocked, ba: blocked},
			{who: a, op: "unblock", whom: b, ab: none, ba: blocked},
			{who: a, op: "request", whom: b, ab: none, ba: blocked}, // silently dropped
		}},
		{"a request expires", []step{
			{who: a, op: "request", whom: b, ab: sent, ba: received, pushes: []string{"friends.Request to b"}},
			{op: "wait", whom: ttl, ab: sent, ba: received},
			{op: "wait", whom: "1s", ab: sent, ba: received}, // stored until purged, but dead:
			{who: b, op: "accept", whom: a, err: "not_found: no friend request from a", ab: sent, ba: received},
			{who: b, op: "decline", whom: a, err: "not_found: no friend request from a", ab: sent, ba: received},
			{who: a, op: "remove", whom: b, err: "not_found: no friendship or request with b", ab: sent, ba: received},
			{who: a, op: "request", whom: b, ab: sent, ba: received, pushes: []string{"friends.Request to b"}}, // a new one
			{op: "wait", whom: "167h", ab: sent, ba: received},
			{who: b, op: "accept", whom: a, ab: friend, ba: friend, pushes: []string{"friends.Accepted to a"}},
			{op: "wait", whom: "8760h", ab: friend, ba: friend}, // friendships do not expire
		}},
		{"an expired request is answered by a new one", []step{
			{who: a, op: "request", whom: b, ab: sent, ba: received, pushes: []string{"friends.Request to b"}},
			{op: "wait", whom: "169h", ab: sent, ba: received},
			{who: b, op: "request", whom: a, ab: received, ba: sent, pushes: []string{"friends.Request to a"}}, // not an accept
		}},
		{"bad input changes nothing", []step{
			{who: a, op: "request", whom: a, err: "bad_request: a is your own user id", ab: none, ba: none},
			{who: a, op: "block", whom: a, err: "bad_request: a is your own user id", ab: none, ba: none},
			{who: a, op: "accept", whom: b, err: "not_found: no friend request from b", ab: none, ba: none},
			{who: a, op: "decline", whom: b, err: "not_found: no friend request from b", ab: none, ba: none},
			{who: a, op: "unblock", whom: b, err: "not_found: b is not blocked", ab: none, ba: none},
			{who: a, op: "request", whom: "ghost", err: `not_found: no user "ghost"`, ab: none, ba: none},
			{who: a, op: "block", whom: "ghost", err: `not_found: no user "ghost"`, ab: none, ba: none},
			{who: a, op: "request", whom: "bad id", err: `bad_request: user_id must be 1 to 64 bytes of [A-Za-z0-9_.:-], got "bad id"`, ab: none, ba: none},
			{who: a, op: "accept", whom: "", err: `bad_request: user_id must be 1 to 64 bytes of [A-Za-z0-9_.:-], got ""`, ab: none, ba: none},
		}},
	}
	for _, store := range []struct {
		name string
		new  func(t *testing.T) Store
	}{
		{"memory", func(*testing.T) Store { return NewMemoryStore() }},
		{"postgres", func(t *testing.T) Store { return pgStoreIn(t) }},
	} {
		t.Run(store.name, func(t *testing.T) {
			e := newEnv(t, store.new(t))
			s := e.service()
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					ids := e.users(2)
					x := &scenario{t: t, env: e, s: s,
						ids:   map[string]string{a: ids[0], b: ids[1], "ghost": "ghost-" + ids[0], "bad id": "bad id", "": ""},
						names: map[string]string{a: "Name0-" + strings.TrimSuffix(ids[0], "-0"), b: "Name1-" + strings.TrimSuffix(ids[0], "-0")},
					}
					e.pub.take()
					names := strings.NewReplacer(ids[0], a, ids[1], b, "ghost-"+ids[0], "ghost")
					for i, st := range sc.steps {
						err := x.run(st)
						got := ""
						if err != nil {
							got = names.Replace(err.Error())
						}
						if got != st.err {
							t.Fatalf("step %d (%s %s %s): error %q, want %q", i, st.who, st.op, st.whom, got, st.err)
						}
						if ab, ba := relation(t, e.store, ids[0], ids[1]), relation(t, e.store, ids[1], ids[0]); ab != st.ab || ba != st.ba {
							t.Fatalf("step %d (%s %s %s): a->b %s, b->a %s; want %s, %s", i, st.who, st.op, st.whom, ab, ba, st.ab, st.ba)
						}
						var pushes []string
						for _, p := range e.pub.strings() {
							pushes = append(pushes, names.Replace(p))
						}
						if !slices.Equal(pushes, st.pushes) {
							t.Fatalf("step %d (%s %s %s): pushes %q, want %q", i, st.who, st.op, st.whom, pushes, st.pushes)
						}
					}
				})
			}
		})
	}
}

// pgStoreIn is a Postgres store in a fresh schema (helpers of the
// external tests are not visible here).
func pgStoreIn(t *testing.T) Store {
	t.Helper()
	s, err := NewPostgresStore(migratedSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLimits: the friend cap counts pending requests, the pending cap
// both directions, the block cap; a refused call changes nothing and
// pushes nothing; expired requests count for nothing.
func TestLimits(t *testing.T) {
	e := newEnv(t, NewMemoryStore())
	e.opts.MaxFriends, e.opts.MaxPending, e.opts.MaxBlocked = 3, 2, 1
	s := e.service()
	u := e.users(8)
	req := func(from, to string) error {
		return call(t, s, sessionOf(from), friendsrpc.MethodRequest, &friendspb.RequestRequest{UserID: &to}, nil)
	}
	mustErr := func(what string, err error, want string) {
		t.Helper()
		if err == nil || err.Error() != want {
			t.Fatalf("%s: %v, want %q", what, err, want)
		}
		if p := e.pub.take(); len(p) != 0 {
			t.Fatalf("%s pushed %v", what, p)
		}
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		e.pub.take()
	}
	must("0->1", req(u[0], u[1]))
	must("0->2", req(u[0], u[2]))
	mustErr("0->3 past the pending cap", req(u[0], u[3]), "bad_request: you have 2 pending requests, the most allowed: wait for answers or withdraw some")
	if r := relation(t, e.store, u[0], u[3]); r != none {
		t.Fatalf("a refused request stored %s", r)
	}
	// Received requests count as pending too.
	must("4->5", req(u[4], u[5]))
	must("6->5", req(u[6], u[5]))
	mustErr("7->5 past 5's pending cap", req(u[7], u[5]), "bad_request: "+u[5]+" cannot take more friend requests now")
	mustErr("5->7 past 5's own pending cap", req(u[5], u[7]), "bad_request: you have 2 pending requests, the most allowed: wait for answers or withdraw some")
	// An accepted request frees pending room but still counts toward the
	// friend cap: 1 friend + 1 pending, then 1 friend + 2 pending = 3.
	must("1 accepts 0", call(t, s, sessionOf(u[1]), friendsrpc.MethodAccept, &friendspb.AcceptRequest{UserID: u[0]}, nil))
	must("0->3", req(u[0], u[3]))
	must("2 accepts 0", call(t, s, sessionOf(u[2]), friendsrpc.MethodAccept, &friendspb.AcceptRequest{UserID: u[0]}, nil))
	mustErr("0->4 past the friend cap", req(u[0], u[4]), "bad_request: you have 3 friends and pending requests, the most allowed: remove some first")
	// Expired requests count for nothing: 0's request to 3 expires.
	e.clock.Advance(DefaultRequestTTL + time.Second)
	must("0->4 once 0->3 expired", req(u[0], u[4]))
	// The block cap.
	must("block", call(t, s, sessionOf(u[6]), friendsrpc.MethodBlock, &friendspb.BlockRequest{UserID: u[7]}, nil))
	mustErr("block past the cap", call(t, s, sessionOf(u[6]), friendsrpc.MethodBlock, &friendspb.BlockRequest{UserID: u[0]}, nil),
		"bad_request: you block 1 users, the most allowed: unblock some first")
	if r := relation(t, e.store, u[6], u[0]); r != none {
		t.Fatalf("a refused block stored %s", r)
	}
}

// TestAPIErrors: the errors of bad requests that name no relation.
func TestAPIErrors(t *testing.T) {
	e := newEnv(t, NewMemoryStore())
	s := e.service()
	u := e.users(2)
	anon := services.NewSession(nil)
	for _, tc := range []struct {
		what string
		sess *services.Session
		m    string
		req  thrift.TStruct
		want string
	}{
		{"not logged in", anon, friendsrpc.MethodList, &friendspb.ListRequest{}, "unauthenticated: log in first"},
		{"neither", sessionOf(u[0]), friendsrpc.MethodRequest, &friendspb.RequestRequest{}, "bad_request: name the user by user_id or by username, not both or neither"},
		{"both", sessionOf(u[0]), friendsrpc.MethodRequest, &friendspb.RequestRequest{UserID: &u[1], Username: thrift.StringPtr("x")}, "bad_request: name the user by user_id or by username, not both or neither"},
		{"unknown name", sessionOf(u[0]), friendsrpc.MethodRequest, &friendspb.RequestRequest{Username: thrift.StringPtr("nobody")}, `not_found: no user named "nobody"`},
		{"long name", sessionOf(u[0]), friendsrpc.MethodRequest, &friendspb.RequestRequest{Username: thrift.StringPtr(strings.Repeat("n", 65))}, `not_found: no user named "` + strings.Repeat("n", 64) + `..."`},
		{"bad state", sessionOf(u[0]), friendsrpc.MethodList, &friendspb.ListRequest{State: thrift.Int32Ptr(4)}, "bad_request: state must be 0 (friend), 1 (invite sent), 2 (invite received) or 3 (blocked), got 4"},
		{"bad limit", sessionOf(u[0]), friendsrpc.MethodList, &friendspb.ListRequest{Limit: -1}, "bad_request: limit must be >= 0, got -1"},
		{"bad cursor", sessionOf(u[0]), friendsrpc.MethodList, &friendspb.ListRequest{Cursor: "zz"}, `bad_request: cursor "zz" is not one a List reply gave`},
		{"invite out of a room", sessionOf(u[0]), friendsrpc.MethodInvite, &friendspb.InviteRequest{UserID: u[1]}, "bad_request: you are in no room: create or join one first"},
	} {
		if err := call(t, s, tc.sess, tc.m, tc.req, nil); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.what, err, tc.want)
		}
	}
	// The directory failing: its own unavailable passes through; anything
	// else (a refusal: a misconfigured certificate) is unavailable too.
	for _, tc := range []struct {
		err  error
		want string
	}{
		{wire.Errorf(wire.CodeUnavailable, "no login instance"), "unavailable: no login instance"},
		{wire.Errorf(wire.CodeUnauthenticated, "an internal method: refused"), "unavailable: friends: the user directory failed: try again"},
	} {
		e.dir.mu.Lock()
		e.dir.err = tc.err
		e.dir.mu.Unlock()
		err := call(t, s, sessionOf(u[0]), friendsrpc.MethodRequest, &friendspb.RequestRequest{UserID: &u[1]}, nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("directory failing with %v: %v, want %q", tc.err, err, tc.want)
		}
	}
}

// TestListPages: List pages through a user's relations with its cursor,
// newest first, each relation once.
func TestListPages(t *testing.T) {
	e := newEnv(t, NewMemoryStore())
	s := e.service()
	u := e.users(12)
	for _, o := range u[1:] {
		if err := call(t, s, sessionOf(u[0]), friendsrpc.MethodRequest, &friendspb.RequestRequest{UserID: &o}, nil); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Millisecond)
	}
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		var rep friendspb.ListReply
		if err := call(t, s, sessionOf(u[0]), friendsrpc.MethodList, &friendspb.ListRequest{Cursor: cursor, Limit: 4}, &rep); err != nil {
			t.Fatal(err)
		}
		for _, f := range rep.Friends {
			got = append(got, f.UserID)
			if f.State != friendspb.STATE_INVITE_SENT || f.ExpiresUnixMs != f.UpdatedUnixMs+DefaultRequestTTL.Milliseconds() {
				t.Fatalf("listed %+v", f)
			}
		}
		if cursor = rep.Cursor; cursor == "" {
			break
		}
		if page > 5 {
			t.Fatal("the cursor never ends")
		}
	}
	want := slices.Clone(u[1:])
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("paged %v, want %v", got, want)
	}
}
