package friends

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	friendspb "github.com/noonhq/noon/idl/gen/friends"
	"github.com/noonhq/noon/idl/gen/friends/friendsrpc"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// List limits.
const (
	// defaultListLimit is a page when the request names no limit.
	defaultListLimit = 100
	// maxListLimit bounds a page: a full list (200 friends, 50 pending,
	// 100 blocked by default) fits in one.
	maxListLimit = 500
	// maxCursorLen bounds a cursor: base64 of a timestamp and a user id.
	maxCursorLen = 128
	// maxUsernameLen bounds a username asked about (login's are at most
	// 64 bytes).
	maxUsernameLen = 64
)

// Handlers returns the friends service's handlers, keyed by method: the
// methods of service Friends in idl/friends.thrift.
func (s *Service) Handlers() map[string]services.HandlerFunc {
	return friendsrpc.Handlers[*services.Session](api{s})
}

// api serves service Friends (friendsrpc.Server) with the Service it
// embeds.
type api struct{ *Service }

// user returns the caller's user id: every method needs a logged-in
// session.
func user(sess *services.Session) (string, error) {
	u := sess.UserID()
	if u == "" {
		return "", wire.Errorf(wire.CodeUnauthenticated, "log in first")
	}
	return u, nil
}

// count records the result of a call of method.
func (s *Service) count(method string, err error) {
	result := "ok"
	if err != nil {
		result = wire.CodeOf(err)
	}
	s.m.requests.With(method, result).Inc()
}

// wireError turns a store or Redis failure into unavailable; a wire error
// stays as it is.
func (s *Service) wireError(what string, err error) error {
	var we *wire.Error
	if err == nil || errors.As(err, &we) {
		return err
	}
	s.log.Warn("friends: "+what, "err", err)
	if stores.IsOutage(err) {
		return services.StoreError(context.TODO(), Name, err)
	}
	return wire.Errorf(wire.CodeUnavailable, "friends: %s failed: try again", what)
}

// other checks the user id a request names, and that it is not the
// caller's.
func other(caller, id string) (string, error) {
	if !validUserID(id) {
		return "", wire.Errorf(wire.CodeBadRequest, "user_id must be 1 to %d bytes of [A-Za-z0-9_.:-], got %q", maxUserIDLen, wire.Snippet(id))
	}
	if id == caller {
		return "", wire.Errorf(wire.CodeBadRequest, "%s is your own user id", id)
	}
	return id, nil
}

// lookup finds the user a request names by id or username; not_found when
// there is none.
func (s *Service) lookup(ctx context.Context, caller, id, username string) (string, error) {
	switch {
	case (id == "") == (username == ""):
		return "", wire.Errorf(wire.CodeBadRequest, "name the user by user_id or by username, not both or neither")
	case username != "":
		if len(username) > maxUsernameLen {
			return "", wire.Errorf(wire.CodeNotFound, "no user named %q", wire.Snippet(username))
		}
	default:
		if _, err := other(caller, id); err != nil {
			return "", err
		}
	}
	found, ok, err := s.users.Lookup(services.ContextWithSession(ctx, nil), username, id)
	if err != nil {
		switch wire.CodeOf(err) {
		case wire.CodeUnavailable, wire.CodeTimeout, wire.CodeOverloaded:
			return "", wire.AsError(err) // the directory's own words: try again
		}
		s.log.Warn("friends: user lookup", "err", err) // refused, a bug: the player cannot fix it
		return "", wire.Errorf(wire.CodeUnavailable, "friends: the user directory failed: try again")
	}
	if !ok {
		if username != "" {
			return "", wire.Errorf(wire.CodeNotFound, "no user named %q", wire.Snippet(username))
		}
		return "", wire.Errorf(wire.CodeNotFound, "no user %q", wire.Snippet(id))
	}
	return other(caller, found)
}

// friendOfEdge makes the wire form of e.
func (s *Service) friendOfEdge(e Edge, online bool) *friendspb.Friend {
	f := &friendspb.Friend{
		UserID: e.Other, State: int32(e.State), UpdatedUnixMs: ms(e.Updated),
		Online: online && e.State == StateFriend,
	}
	if e.State.pending() {
		f.ExpiresUnixMs = ms(e.Updated.Add(s.opts.RequestTTL))
	}
	return f
}

// Request asks a user to be friends.
func (s api) Request(ctx context.Context, sess *services.Session, req *friendspb.RequestRequest) (rep *friendspb.RequestReply, err error) {
	defer func() { s.count("request", err) }()
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	to, err := s.lookup(ctx, u, req.GetUserID(), req.GetUsername())
	if err != nil {
		return nil, err
	}
	r, err := s.request(ctx, u, to)
	if err != nil {
		return nil, s.wireError("request", err)
	}
	switch r.pushed {
	case PushRequest:
		s.push(to, PushRequest, &friendspb.Request{UserID: u, ExpiresUnixMs: ms(r.edge.Updated.Add(s.opts.RequestTTL))})
	case PushAccepted:
		s.push(to, PushAccepted, &friendspb.Accepted{UserID: u})
	}
	return &friendspb.RequestReply{Friend: s.friendOfEdge(r.edge, false)}, nil
}

// Accept accepts a received request.
func (s api) Accept(ctx context.Context, sess *services.Session, req *friendspb.AcceptRequest) (rep *friendspb.AcceptReply, err error) {
	defer func() { s.count("accept", err) }()
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	o, err := other(u, req.UserID)
	if err != nil {
		return nil, err
	}
	e, accepted, err := s.accept(ctx, u, o)
	if err != nil {
		return nil, s.wireError("accept", err)
	}
	if accepted {
		s.push(o, PushAccepted, &friendspb.Accepted{UserID: u})
	}
	online, _ := s.pres.online(ctx, []string{o})
	return &friendspb.AcceptReply{Friend: s.friendOfEdge(e, len(online) == 1 && online[0])}, nil
}

// Decline declines a received request.
func (s api) Decline(ctx context.Context, sess *services.Session, req *friendspb.DeclineRequest) (rep *friendspb.DeclineReply, err error) {
	defer func() { s.count("decline", err) }()
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	o, err := other(u, req.UserID)
	if err != nil {
		return nil, err
	}
	if err := s.decline(ctx, u, o); err != nil {
		return nil, s.wireError("decline", err)
	}
	return &friendspb.DeclineReply{}, nil
}

// Remove ends a friendship or withdraws a request.
func (s api) Remove(ctx context.Context, sess *services.Session, req *friendspb.RemoveRequest) (rep *friendspb.RemoveReply, err error) {
	defer func() { s.count("remove", err) }()
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	o, err := other(u, req.UserID)
	if err != nil {
		return nil, err
	}
	if err := s.remove(ctx, u, o); err != nil {
		return nil, s.wireError("remove", err)
	}
	return &friendspb.RemoveReply{}, nil
}

// Block blocks a user.
func (s api) Block(ctx context.Context, sess *services.Session, req *friendspb.BlockRequest) (rep *friendspb.BlockReply, err error) {
	defer func() { s.count("block", err) }()
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	o, err := s.lookup(ctx, u, req.UserID, "")
	if err != nil {
		return nil, err
	}
	e, err := s.block(ctx, u, o)
	if err != nil {
		return nil, s.wireError("block", err)
	}
	return &friendspb.BlockReply{Friend: s.friendOfEdge(e, false)}, nil
}

// Unblock unblocks a user.
func (s api) Unblock(ctx context.Context, sess *services.Session, req *friendspb.UnblockRequest) (rep *friendspb.UnblockReply, err error) {
	defer func() { s.count("unblock", err) }()
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	o, err := other(u, req.UserID)
	if err != nil {
		return nil, err
	}
	if err := s.unblock(ctx, u, o); err != nil {
		return nil, s.wireError("unblock", err)
	}
	return &friendspb.UnblockReply{}, nil
}

// List pages through the caller's relations, with friends' presence.
func (s api) List(ctx context.Context, sess *services.Session, req *friendspb.ListRequest) (rep *friendspb.ListReply, err error) {
	defer func() { s.count("list", err) }()
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	q := ListQuery{PendingSince: s.now().Add(-s.opts.RequestTTL)}
	if req.State != nil {
		st := State(*req.State)
		if *req.State < 0 || !st.Valid() {
			return nil, wire.Errorf(wire.CodeBadRequest, "state must be 0 (friend), 1 (invite sent), 2 (invite received) or 3 (blocked), got %d", *req.State)
		}
		q.States = []State{st}
	}
	if q.After, err = decodeCursor(req.Cursor); err != nil {
		return nil, err
	}
	switch {
	case req.Limit < 0:
		return nil, wire.Errorf(wire.CodeBadRequest, "limit must be >= 0, got %d", req.Limit)
	case req.Limit == 0:
		q.Limit = defaultListLimit
	default:
		q.Limit = min(int(req.Limit), maxListLimit)
	}
	want := q.Limit
	q.Limit++ // one more tells whether there is a next page
	edges, err := s.store.List(ctx, u, q)
	if err != nil {
		return nil, s.wireError("list", err)
	}
	rep = &friendspb.ListReply{Friends: make([]*friendspb.Friend, 0, min(len(edges), want))}
	if len(edges) > want {
		edges = edges[:want]
		last := edges[want-1]
		rep.Cursor = encodeCursor(Cursor{Updated: last.Updated, Other: last.Other})
	}
	var ids []string
	for _, e := range edges {
		if e.State == StateFriend {
			ids = append(ids, e.Other)
		}
	}
	online, err := s.pres.online(ctx, ids)
	if err != nil {
		return nil, s.wireError("presence", err)
	}
	i := 0
	for _, e := range edges {
		on := false
		if e.State == StateFriend {
			on, i = online[i], i+1
		}
		rep.Friends = append(rep.Friends, s.friendOfEdge(e, on))
	}
	return rep, nil
}

// Invite invites a friend into the caller's room.
func (s api) Invite(ctx context.Context, sess *services.Session, req *friendspb.InviteRequest) (rep *friendspb.InviteReply, err error) {
	defer func() { s.count("invite", err) }()
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	o, err := other(u, req.UserID)
	if err != nil {
		return nil, err
	}
	room := sess.Binding(BindingRoom)
	if room == "" {
		return nil, wire.Errorf(wire.CodeBadRequest, "you are in no room: create or join one first")
	}
	ok, err := s.friendOf(ctx, u, o)
	if err != nil {
		return nil, s.wireError("invite", err)
	}
	if !ok {
		return nil, wire.Errorf(wire.CodeNotFound, "%s is not your friend", o)
	}
	online, err := s.pres.online(ctx, []string{o})
	if err != nil {
		return nil, s.wireError("presence", err)
	}
	s.push(o, PushInvited, &friendspb.Invited{RoomID: room, FromUserID: u})
	return &friendspb.InviteReply{RoomID: room, Online: online[0]}, nil
}

// encodeCursor makes the opaque cursor of c: base64url of
// "<updated unix µs>.<other>".
func encodeCursor(c Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.Updated.UnixMicro(), 10) + "." + c.Other))
}

// decodeCursor parses a cursor; "" is the start of the list.
func decodeCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	bad := wire.Errorf(wire.CodeBadRequest, "cursor %q is not one a List reply gave", wire.Snippet(s))
	if len(s) > maxCursorLen {
		return Cursor{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, bad
	}
	ts, id, ok := strings.Cut(string(b), ".")
	us, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || us < 0 || !validUserID(id) {
		return Cursor{}, bad
	}
	return Cursor{Updated: time.UnixMicro(us).UTC(), Other: id}, nil
}
