package room

import (
	"context"
	"errors"

	"github.com/noonhq/noon/wire"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/room/game"
)

// maxActionLen bounds a game action: actions are moves (a few bytes), and
// each is stored in the room's log; 16 KiB leaves room for rich games.
const maxActionLen = 16 << 10

// Handlers returns the room service's handlers, keyed by method: the
// methods of service Room in idl/room.thrift (roomrpc.MethodCreate, ...).
func (s *Service) Handlers() map[string]services.HandlerFunc {
	return roomrpc.Handlers[*services.Session](api{s})
}

// api serves service Room (roomrpc.Server) with the Service it embeds.
type api struct{ *Service }

// user returns the caller's user id: room methods need a logged-in session.
func user(sess *services.Session) (string, error) {
	u := sess.UserID()
	if u == "" {
		return "", wire.Errorf(wire.CodeUnauthenticated, "log in first")
	}
	return u, nil
}

// roomOf returns the room a request is about: explicit, else the session's
// binding.
func roomOf(sess *services.Session, explicit *string) (string, error) {
	id := sess.Binding(BindingKey)
	if explicit != nil && *explicit != "" {
		id = *explicit
	}
	if id == "" {
		return "", wire.Errorf(wire.CodeBadRequest, "not in a room: join one or name room_id")
	}
	if !validRoomID(id) {
		return "", wire.Errorf(wire.CodeBadRequest, "room_id must be 1 to %d bytes of [A-Za-z0-9_-], got %q", maxRoomIDLen, wire.Snippet(id))
	}
	if id != sess.Addressed() {
		// Routed by another room (the session's binding, or none): the
		// reply must not teach the router an owner for that one.
		sess.Serves(id)
	}
	return id, nil
}

// notElsewhere refuses to put a session bound to one room into another:
// a player is in one room at a time, and leaves it first.
func notElsewhere(sess *services.Session, id string) error {
	if cur := sess.Binding(BindingKey); cur != "" && cur != id {
		return wire.Errorf(wire.CodeConflict, "already in room %s: leave it first", cur)
	}
	return nil
}

// Create creates a room with the caller in it and binds the session to it.
func (s api) Create(ctx context.Context, sess *services.Session, req *roompb.CreateRequest) (*roompb.RoomState, error) {
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	if err := notElsewhere(sess, ""); err != nil {
		return nil, err
	}
	if _, _, err := checkCreate(req, s.games); err != nil {
		return nil, err
	}
	body, err := thriftx.Marshal(req)
	if err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	a := s.att.Load()
	if a == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "room service not attached to a server yet")
	}
	if s.draining.Load() {
		return nil, wire.NewError(wire.CodeUnavailable, wire.DrainingMessage)
	}
	if err := s.countCreate(ctx, u); err != nil {
		return nil, err
	}
	// A taken id (80 random bits: never, in practice) just picks another.
	for try := 0; ; try++ {
		id := s.newRoomID(a)
		r, err := s.submit(ctx, id, &op{kind: KindCreate, player: u, body: body, wantState: true}, true)
		if err != nil {
			if errors.Is(err, &wire.Error{Code: wire.CodeConflict}) && try < 2 {
				continue
			}
			return nil, err
		}
		sess.Bind(BindingKey, id)
		return r.state, nil
	}
}

// Join joins a room and binds the session to it.
func (s api) Join(ctx context.Context, sess *services.Session, req *roompb.JoinRequest) (*roompb.RoomState, error) {
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	id, err := roomOf(sess, &req.RoomID)
	if err != nil {
		return nil, err
	}
	if err := notElsewhere(sess, id); err != nil {
		return nil, err
	}
	r, err := s.submit(ctx, id, &op{kind: KindJoin, player: u, wantState: true}, false)
	if err != nil {
		return nil, err
	}
	sess.Bind(BindingKey, id)
	return r.state, nil
}

// Leave leaves the room and unbinds the session.
func (s api) Leave(ctx context.Context, sess *services.Session, req *roompb.LeaveRequest) (*roompb.LeaveReply, error) {
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	id, err := roomOf(sess, req.RoomID)
	if err != nil {
		return nil, err
	}
	r, err := s.submit(ctx, id, &op{kind: KindLeave, player: u}, false)
	if err != nil && !errors.Is(err, &wire.Error{Code: wire.CodeNotFound}) {
		return nil, err
	}
	if sess.Binding(BindingKey) == id {
		sess.Unbind(BindingKey) // a room that is gone is left too
	}
	if err != nil {
		return nil, err
	}
	return &roompb.LeaveReply{Seq: r.seq}, nil
}

// Ready marks the caller ready or not.
func (s api) Ready(ctx context.Context, sess *services.Session, req *roompb.ReadyRequest) (*roompb.RoomState, error) {
	kind := KindReady
	if !req.Ready {
		kind = KindUnready
	}
	return s.stateOp(ctx, sess, req.RoomID, func(u string) *op { return &op{kind: kind, player: u, wantState: true} })
}

// Start starts the game once every member is ready.
func (s api) Start(ctx context.Context, sess *services.Session, req *roompb.StartRequest) (*roompb.RoomState, error) {
	return s.stateOp(ctx, sess, req.RoomID, func(u string) *op { return &op{kind: KindStart, player: u, wantState: true} })
}

// Get returns a room's state.
func (s api) Get(ctx context.Context, sess *services.Session, req *roompb.GetRequest) (*roompb.RoomState, error) {
	since := req.SinceSeq
	if since != nil && *since < 0 {
		since = nil
	}
	return s.stateOp(ctx, sess, req.RoomID, func(u string) *op {
		return &op{kind: opGet, player: u, wantState: true, since: since}
	})
}

// stateOp submits the op mk makes for the logged-in caller to the caller's
// room (explicit, or the session's binding) and returns the room's state.
func (s *Service) stateOp(ctx context.Context, sess *services.Session, roomID *string, mk func(user string) *op) (*roompb.RoomState, error) {
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	id, err := roomOf(sess, roomID)
	if err != nil {
		return nil, err
	}
	r, err := s.submit(ctx, id, mk(u), false)
	if err != nil {
		return nil, err
	}
	return r.state, nil
}

// Act plays a game action.
func (s api) Act(ctx context.Context, sess *services.Session, req *roompb.ActionRequest) (*roompb.ActionReply, error) {
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	id, err := roomOf(sess, req.RoomID)
	if err != nil {
		return nil, err
	}
	if len(req.Action) > maxActionLen {
		return nil, wire.Errorf(wire.CodeBadRequest, "action is %d bytes, at most %d", len(req.Action), maxActionLen)
	}
	r, err := s.submit(ctx, id, &op{kind: KindAct, player: u, body: req.Action}, false)
	if err != nil {
		return nil, err
	}
	return &roompb.ActionReply{Seq: r.seq}, nil
}

// List lists open rooms.
func (s api) List(ctx context.Context, _ *services.Session, req *roompb.ListRequest) (*roompb.ListReply, error) {
	limit := int(req.Limit)
	switch {
	case limit < 0:
		return nil, wire.Errorf(wire.CodeBadRequest, "limit must be >= 0, got %d", limit)
	case limit == 0:
		limit = defaultListLimit
	case limit > maxListLimit:
		limit = maxListLimit
	}
	if len(req.Game) > 32 {
		return nil, wire.Errorf(wire.CodeBadRequest, "game: at most 32 bytes")
	}
	list, err := s.store.List(ctx, ListQuery{Game: req.Game, Limit: limit})
	if err != nil {
		s.log.Warn("room: list", "err", err)
		return nil, wire.Errorf(wire.CodeUnavailable, "listing rooms failed")
	}
	out := &roompb.ListReply{Rooms: make([]*roompb.RoomSummary, len(list))}
	for i, r := range list {
		out.Rooms[i] = &roompb.RoomSummary{
			ID: r.ID, Name: r.Name, Game: r.Game, Status: r.Status,
			Players: int32(r.Players), MaxPlayers: int32(r.MaxPlayers), CreatedUnixMs: r.Created.UnixMilli(),
		}
	}
	return out, nil
}

// CreateMatched creates a room with the members a matchmaker chose, seated
// and not ready, if room_id names none; the room's owner (where the caller
// routed it by room_id: rendezvous over the ready instances, or the
// lease) handles it like any room event, under the lease, logged before
// the reply; another instance answers moved. A second call with the same
// members answers the room as it is with created false (a retry); with
// other members, conflict. Only the Matchmakers services (and admins) may
// call it: a client's call is refused, and nothing is bound on any
// session (the caller binds its players).
func (s api) CreateMatched(ctx context.Context, sess *services.Session, req *roompb.CreateMatchedRequest) (*roompb.CreateMatchedReply, error) {
	if err := sess.RequireService(s.opts.Matchmakers...); err != nil {
		return nil, err
	}
	norm, err := normalizeMatched(req, s.games)
	if err != nil {
		return nil, err
	}
	body, err := thriftx.Marshal(norm)
	if err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	r, err := s.submit(ctx, norm.RoomID, &op{kind: KindMatched, body: body, wantState: true}, false)
	if err != nil {
		return nil, err
	}
	return &roompb.CreateMatchedReply{State: r.state, Created: r.changed}, nil
}

// normalizeMatched returns req with the defaults filled in (the default
// game, the name "match", the game's maximum for max_players 0), checked
// (checkMatched): what a matched entry's body holds.
func normalizeMatched(req *roompb.CreateMatchedRequest, games *game.Registry) (*roompb.CreateMatchedRequest, error) {
	out := &roompb.CreateMatchedRequest{RoomID: req.RoomID, Members: req.Members, Game: req.Game, Name: req.Name, MaxPlayers: req.MaxPlayers}
	if out.Game == "" {
		out.Game = games.Default()
	}
	if out.Name == "" {
		out.Name = defaultMatchName
	}
	_, max, err := checkMatched(out, games)
	if err != nil {
		return nil, err
	}
	out.MaxPlayers = int32(max)
	return out, nil
}
