package room

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services/room/game"
	"github.com/noonhq/noon/wire"
)

// Room statuses.
const (
	// StatusOpen: players join, get ready, and any member starts the game.
	StatusOpen = roompb.STATUS_OPEN
	// StatusPlaying: the game runs; nobody joins.
	StatusPlaying = roompb.STATUS_PLAYING
	// StatusFinished: the game is over; members may only leave.
	StatusFinished = roompb.STATUS_FINISHED
	// StatusClosed: everyone left.
	StatusClosed = roompb.STATUS_CLOSED
)

// Event types of the room itself (the game's are "game.<type>").
const (
	// EventCreated: Player created the room.
	EventCreated = "room.created"
	// EventJoined: Player joined.
	EventJoined = "room.joined"
	// EventLeft: Player left.
	EventLeft = "room.left"
	// EventReady: Player is ready.
	EventReady = "room.ready"
	// EventUnready: Player is no longer ready.
	EventUnready = "room.unready"
	// EventHost: Player is the new host (the previous one left).
	EventHost = "room.host"
	// EventStarted: Player started the game; Body is the game's state.
	EventStarted = "room.started"
	// EventFinished: the game is over; Player is the winner ("" for none).
	EventFinished = "room.finished"
	// EventClosed: everyone left.
	EventClosed = "room.closed"
	// gameEventPrefix starts the type of every game event.
	gameEventPrefix = "game."
)

// snapshotVersion is the version of the snapshot encoding; loading a
// snapshot of another version fails (a new version must read the old).
const snapshotVersion = 1

// roomState is one room's state: a deterministic function of its log. It is
// owned by the room's controller goroutine; the live path applies each
// entry to a clone and keeps the clone only once the entry is stored.
type roomState struct {
	id         string
	name       string
	gameName   string
	maxPlayers int
	status     string
	host       string
	players    []player // join order, which is seat order
	createdMs  int64
	seq        int64 // last entry applied
	eventSeq   int64 // last event emitted
	winner     string
	matched    []string // the members a matchmaker created it with, nil for room.Create's

	g  game.Game
	st game.State // nil until the game starts
}

type player struct {
	ID    string `json:"id"`
	Ready bool   `json:"ready,omitempty"`
}

// ruleError is an input the room refuses: its wire code and text. Refused
// inputs change nothing and are not logged.
func ruleError(code, format string, args ...any) error {
	return wire.Errorf(code, format, args...)
}

func newRoomState(id string) *roomState { return &roomState{id: id} }

// clone returns a deep copy (the game state included).
func (r *roomState) clone() *roomState {
	c := *r
	c.players = slices.Clone(r.players)
	c.matched = slices.Clone(r.matched)
	if r.st != nil {
		c.st = r.st.Clone()
	}
	return &c
}

func (r *roomState) member(id string) int {
	return slices.IndexFunc(r.players, func(p player) bool { return p.ID == id })
}

// summary is what the store keeps for room lists.
func (r *roomState) summary() Summary {
	return Summary{
		ID: r.id, Name: r.name, Game: r.gameName, Status: r.status, Host: r.host,
		Players: len(r.players), MaxPlayers: r.maxPlayers, Created: time.UnixMilli(r.createdMs).UTC(),
	}
}

// viewer returns the room's game as a Viewer, if it is one.
func (r *roomState) viewer() (game.Viewer, bool) {
	v, ok := r.g.(game.Viewer)
	return v, ok
}

// publicProto returns the room's public summary, what a non-member gets:
// no game state.
func (r *roomState) publicProto() *roompb.RoomState {
	out := &roompb.RoomState{
		ID: r.id, Name: r.name, Game: r.gameName, Status: r.status,
		Players:    make([]*roompb.Player, len(r.players)),
		MaxPlayers: int32(r.maxPlayers), Seq: r.eventSeq, Host: r.host, Winner: r.winner,
		CreatedUnixMs: r.createdMs, PublicView: true,
	}
	for i, p := range r.players {
		out.Players[i] = &roompb.Player{ID: p.ID, Ready: p.Ready}
	}
	return out
}

// protoFor returns the room as caller sees it: a member the whole state
// (their own view of a Viewer game's), anyone else the public summary;
// caller "" (a platform process, a matchmaker) the whole state.
func (r *roomState) protoFor(caller string) (*roompb.RoomState, error) {
	if caller != "" && r.member(caller) < 0 {
		return r.publicProto(), nil
	}
	if v, ok := r.viewer(); ok && r.st != nil {
		out := r.publicProto()
		out.PublicView = false
		if caller == "" {
			return r.proto()
		}
		b, err := v.View(r.st, caller)
		if err != nil {
			return nil, fmt.Errorf("viewing %s state: %w", r.gameName, err)
		}
		out.GameState = b
		return out, nil
	}
	return r.proto()
}

// proto returns the room's whole state.
func (r *roomState) proto() (*roompb.RoomState, error) {
	out := &roompb.RoomState{
		ID: r.id, Name: r.name, Game: r.gameName, Status: r.status,
		Players:    make([]*roompb.Player, len(r.players)),
		MaxPlayers: int32(r.maxPlayers), Seq: r.eventSeq, Host: r.host, Winner: r.winner,
		CreatedUnixMs: r.createdMs,
	}
	for i, p := range r.players {
		out.Players[i] = &roompb.Player{ID: p.ID, Ready: p.Ready}
	}
	if r.st != nil {
		b, err := r.st.Encode()
		if err != nil {
			return nil, fmt.Errorf("encoding %s state: %w", r.gameName, err)
		}
		out.GameState = b
	}
	return out, nil
}

// roomEvent is an event a room emitted, with the private bodies of a game
// with hidden information: priv[member] is the body that member gets
// (others get ev.Body); nil when every member gets the same event.
type roomEvent struct {
	ev   *roompb.Event
	priv map[string][]byte
}

// eventOverhead approximates an event's fixed cost in the replay buffer
// (its struct, seq, time, and encoding) beside its strings and bodies.
const eventOverhead = 64

// size is what the event costs in the replay buffer.
func (e roomEvent) size() int {
	n := eventOverhead + len(e.ev.RoomID) + len(e.ev.Type) + len(e.ev.Player) + len(e.ev.Body)
	for k, b := range e.priv {
		n += len(k) + len(b)
	}
	return n
}

// private reports whether members get different bodies.
func (e roomEvent) private() bool { return e.priv != nil }

// forMember returns the event as member m sees it.
func (e roomEvent) forMember(m string) *roompb.Event {
	if e.priv == nil {
		return e.ev
	}
	out := *e.ev
	out.Body = e.priv[m]
	return &out
}

// emitter collects the events an entry causes, numbering them.
type emitter struct {
	r   *roomState
	at  int64
	out []roomEvent
}

func (em *emitter) emit(typ, player string, body []byte) {
	em.emitPriv(typ, player, body, nil)
}

func (em *emitter) emitPriv(typ, player string, body []byte, priv map[string][]byte) {
	em.r.eventSeq++
	em.out = append(em.out, roomEvent{ev: &roompb.Event{
		RoomID: em.r.id, Seq: em.r.eventSeq, Type: typ, Player: player, Body: body, TimeUnixMs: em.at,
	}, priv: priv})
}

func (em *emitter) game(outs []game.Output) {
	for _, o := range outs {
		if o.To != "" {
			em.emitPriv(gameEventPrefix+o.Type, o.Player, nil, map[string][]byte{o.To: o.Body})
			continue
		}
		em.emit(gameEventPrefix+o.Type, o.Player, o.Body)
	}
}

// apply validates entry e against the room and applies it, returning the
// events it causes. noop reports an entry that is valid but changes
// nothing (joining twice), which is not logged. An error leaves r in an
// undefined state: callers apply to a clone. Game code may panic; apply
// turns that into an error.
func (r *roomState) apply(e Entry, games *game.Registry) (events []roomEvent, noop bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			events, noop, err = nil, false, wire.Errorf(wire.CodeInternal, "game %s panicked on %s: %v", r.gameName, e.Kind, p)
		}
	}()
	if e.Seq != r.seq+1 {
		return nil, false, fmt.Errorf("entry %d applied to room %s at seq %d", e.Seq, r.id, r.seq)
	}
	em := &emitter{r: r, at: e.At}
	now := time.UnixMilli(e.At)
	if r.status == "" && !createsRoom(e.Kind) {
		return nil, false, ruleError(wire.CodeNotFound, "no room %s", r.id)
	}
	switch e.Kind {
	case KindCreate:
		err = r.applyCreate(e, games, em)
	case KindMatched:
		noop, err = r.applyMatched(e, games, em)
	case KindJoin:
		noop, err = r.applyJoin(e, em)
	case KindLeave:
		noop, err = r.applyLeave(e, now, em)
	case KindReady, KindUnready:
		noop, err = r.applyReady(e, em)
	case KindStart:
		err = r.applyStart(e, now, em)
	case KindAct:
		err = r.applyAct(e, now, em)
	case KindTick:
		noop = r.applyTick(now, em)
	default:
		err = fmt.Errorf("unknown entry kind %q", e.Kind)
	}
	if err != nil || noop {
		return nil, noop, err
	}
	r.seq = e.Seq
	return em.out, false, nil
}

func (r *roomState) applyCreate(e Entry, games *game.Registry, em *emitter) error {
	if r.status != "" {
		return ruleError(wire.CodeConflict, "room %s exists", r.id)
	}
	var req roompb.CreateRequest
	if err := thriftx.Unmarshal(e.Body, &req); err != nil {
		return ruleError(wire.CodeBadRequest, "create: %v", err)
	}
	g, max, err := checkCreate(&req, games)
	if err != nil {
		return err
	}
	r.name, r.gameName, r.g, r.maxPlayers = req.Name, g.Name(), g, max
	r.status, r.host, r.createdMs = StatusOpen, e.Player, e.At
	r.players = []player{{ID: e.Player}}
	em.emit(EventCreated, e.Player, nil)
	return nil
}

// checkCreate validates a CreateRequest and returns its game and maximum
// players.
func checkCreate(req *roompb.CreateRequest, games *game.Registry) (game.Game, int, error) {
	if err := checkName(req.Name); err != nil {
		return nil, 0, err
	}
	g, ok := games.Get(req.Game)
	if !ok {
		return nil, 0, ruleError(wire.CodeBadRequest, "no game %q (games: %v)", wire.Snippet(req.Game), games.Names())
	}
	max := int(req.MaxPlayers)
	if max == 0 {
		max = g.MaxPlayers()
	}
	if max < g.MinPlayers() || max > g.MaxPlayers() {
		return nil, 0, ruleError(wire.CodeBadRequest, "max_players: %s takes %d to %d players, got %d", g.Name(), g.MinPlayers(), g.MaxPlayers(), req.MaxPlayers)
	}
	return g, max, nil
}

// createsRoom reports whether an entry of kind creates its room (and so
// is a room's first).
func createsRoom(kind string) bool { return kind == KindCreate || kind == KindMatched }

// applyMatched creates the room with the matched members seated, in order
// (the first is the host), none ready; the events are those of a create
// and of each member's join. On a room that exists it is a no-op when the
// room was matched with the same members (a retry: idempotent), else a
// conflict.
func (r *roomState) applyMatched(e Entry, games *game.Registry, em *emitter) (bool, error) {
	var req roompb.CreateMatchedRequest
	if err := thriftx.Unmarshal(e.Body, &req); err != nil {
		return false, ruleError(wire.CodeBadRequest, "create matched: %v", err)
	}
	if r.status != "" {
		if r.matched != nil && sameMembers(r.matched, req.Members) {
			return true, nil
		}
		return false, ruleError(wire.CodeConflict, "room %s exists with other members", r.id)
	}
	g, max, err := checkMatched(&req, games)
	if err != nil {
		return false, err
	}
	r.name, r.gameName, r.g, r.maxPlayers = req.Name, g.Name(), g, max
	r.status, r.host, r.createdMs = StatusOpen, req.Members[0], e.At
	r.players = make([]player, len(req.Members))
	for i, m := range req.Members {
		r.players[i] = player{ID: m}
	}
	r.matched = slices.Clone(req.Members)
	em.emit(EventCreated, req.Members[0], nil)
	for _, m := range req.Members[1:] {
		em.emit(EventJoined, m, nil)
	}
	return false, nil
}

// sameMembers reports whether a and b hold the same user ids, in any
// order (each list is free of duplicates).
func sameMembers(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, m := range b {
		if !slices.Contains(a, m) {
			return false
		}
	}
	return true
}

// checkMatched validates a CreateMatchedRequest whose game and name are
// filled in (normalizeMatched) and returns its game and maximum players:
// a valid room id and name, a known game, max_players as for a create,
// and 1..max_players distinct, valid member ids.
func checkMatched(req *roompb.CreateMatchedRequest, games *game.Registry) (game.Game, int, error) {
	if !validRoomID(req.RoomID) {
		return nil, 0, ruleError(wire.CodeBadRequest, "room_id must be 1 to %d bytes of [A-Za-z0-9_-], got %q", maxRoomIDLen, wire.Snippet(req.RoomID))
	}
	g, max, err := checkCreate(&roompb.CreateRequest{Name: req.Name, Game: req.Game, MaxPlayers: req.MaxPlayers}, games)
	if err != nil {
		return nil, 0, err
	}
	if n := len(req.Members); n < 1 || n > max {
		return nil, 0, ruleError(wire.CodeBadRequest, "members: 1 to %d (max_players), got %d", max, n)
	}
	for i, m := range req.Members {
		if !validUserID(m) {
			return nil, 0, ruleError(wire.CodeBadRequest, "members[%d]: a user id is 1 to %d bytes of UTF-8 with no control characters, got %q", i, maxUserIDLen, wire.Snippet(m))
		}
		if slices.Contains(req.Members[:i], m) {
			return nil, 0, ruleError(wire.CodeBadRequest, "members[%d]: %q is listed twice", i, wire.Snippet(m))
		}
	}
	return g, max, nil
}

// validUserID reports whether id may be a member's user id: what the
// broker accepts as a login's user (1..maxUserIDLen bytes), in valid UTF-8
// with no control characters, since it shows in room state and logs.
func validUserID(id string) bool {
	if id == "" || len(id) > maxUserIDLen || !utf8.ValidString(id) {
		return false
	}
	for _, c := range id {
		if c < 0x20 || c == 0x7f || c >= 0x80 && c < 0xa0 {
			return false
		}
	}
	return true
}

func (r *roomState) applyJoin(e Entry, em *emitter) (bool, error) {
	if r.member(e.Player) >= 0 {
		return true, nil
	}
	if r.status != StatusOpen {
		return false, ruleError(wire.CodeConflict, "room %s is %s", r.id, r.status)
	}
	if len(r.players) >= r.maxPlayers {
		return false, ruleError(wire.CodeConflict, "room %s is full (%d players)", r.id, r.maxPlayers)
	}
	r.players = append(r.players, player{ID: e.Player})
	em.emit(EventJoined, e.Player, nil)
	return false, nil
}

func (r *roomState) applyLeave(e Entry, now time.Time, em *emitter) (bool, error) {
	i := r.member(e.Player)
	if i < 0 {
		return true, nil
	}
	r.players = slices.Delete(r.players, i, i+1)
	em.emit(EventLeft, e.Player, nil)
	if r.host == e.Player {
		r.host = ""
		if len(r.players) > 0 {
			r.host = r.players[0].ID
			em.emit(EventHost, r.host, nil)
		}
	}
	if r.status == StatusPlaying {
		em.game(r.st.Leave(e.Player, now))
		r.checkOver(em)
	}
	if len(r.players) == 0 {
		r.status = StatusClosed
		em.emit(EventClosed, "", nil)
	}
	return false, nil
}

func (r *roomState) applyReady(e Entry, em *emitter) (bool, error) {
	i := r.member(e.Player)
	if i < 0 {
		return false, ruleError(wire.CodeBadRequest, "%s is not in room %s", e.Player, r.id)
	}
	if r.status != StatusOpen {
		return false, ruleError(wire.CodeConflict, "room %s is %s", r.id, r.status)
	}
	ready := e.Kind == KindReady
	if r.players[i].Ready == ready {
		return true, nil
	}
	r.players[i].Ready = ready
	if ready {
		em.emit(EventReady, e.Player, nil)
	} else {
		em.emit(EventUnready, e.Player, nil)
	}
	return false, nil
}

func (r *roomState) applyStart(e Entry, now time.Time, em *emitter) error {
	if r.member(e.Player) < 0 {
		return ruleError(wire.CodeBadRequest, "%s is not in room %s", e.Player, r.id)
	}
	if r.status != StatusOpen {
		return ruleError(wire.CodeConflict, "room %s is %s", r.id, r.status)
	}
	if len(r.players) < r.g.MinPlayers() {
		return ruleError(wire.CodeConflict, "%s needs at least %d players, room %s has %d", r.gameName, r.g.MinPlayers(), r.id, len(r.players))
	}
	ids := make([]string, len(r.players))
	for i, p := range r.players {
		if !p.Ready {
			return ruleError(wire.CodeConflict, "%s is not ready", p.ID)
		}
		ids[i] = p.ID
	}
	if len(e.Body) != 8 {
		return fmt.Errorf("start entry of room %s has a %d-byte seed", r.id, len(e.Body))
	}
	st, outs, err := r.g.Start(ids, binary.BigEndian.Uint64(e.Body), now)
	if err != nil {
		return ruleError(wire.CodeConflict, "%s: %v", r.gameName, err)
	}
	r.st, r.status = st, StatusPlaying
	if v, ok := r.g.(game.Viewer); ok {
		// Hidden information: each member is pushed their own view.
		priv := make(map[string][]byte, len(ids))
		for _, id := range ids {
			b, err := v.View(st, id)
			if err != nil {
				return fmt.Errorf("viewing %s state: %w", r.gameName, err)
			}
			priv[id] = b
		}
		em.emitPriv(EventStarted, e.Player, nil, priv)
	} else {
		body, err := st.Encode()
		if err != nil {
			return fmt.Errorf("encoding %s state: %w", r.gameName, err)
		}
		em.emit(EventStarted, e.Player, body)
	}
	em.game(outs)
	r.checkOver(em)
	return nil
}

func (r *roomState) applyAct(e Entry, now time.Time, em *emitter) error {
	if r.member(e.Player) < 0 {
		return ruleError(wire.CodeBadRequest, "%s is not in room %s", e.Player, r.id)
	}
	if r.status != StatusPlaying {
		return ruleError(wire.CodeBadRequest, "room %s is %s, not playing", r.id, r.status)
	}
	outs, err := r.st.Act(e.Player, e.Body, now)
	if err != nil {
		return ruleError(wire.CodeBadRequest, "%v", err)
	}
	em.game(outs)
	r.checkOver(em)
	return nil
}

func (r *roomState) applyTick(now time.Time, em *emitter) bool {
	if r.status != StatusPlaying {
		return true
	}
	outs := r.st.Tick(now)
	if len(outs) == 0 {
		return true
	}
	em.game(outs)
	r.checkOver(em)
	return false
}

// checkOver finishes the room once its game is over.
func (r *roomState) checkOver(em *emitter) {
	if r.status != StatusPlaying {
		return
	}
	if winner, over := r.st.Result(); over {
		r.status, r.winner = StatusFinished, winner
		em.emit(EventFinished, winner, nil)
	}
}

// deadline is when the game's timers next need a tick; zero for never.
func (r *roomState) deadline() time.Time {
	if r.status != StatusPlaying {
		return time.Time{}
	}
	return r.st.Deadline()
}

// roomSnap is the snapshot encoding: JSON, readable in psql; the game
// state in its own encoding.
type roomSnap struct {
	V          int      `json:"v"`
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Game       string   `json:"game"`
	MaxPlayers int      `json:"max_players"`
	Status     string   `json:"status"`
	Host       string   `json:"host"`
	Players    []player `json:"players"`
	CreatedMs  int64    `json:"created_ms"`
	Seq        int64    `json:"seq"`
	EventSeq   int64    `json:"event_seq"`
	Winner     string   `json:"winner,omitempty"`
	GameState  []byte   `json:"game_state,omitempty"`
	Matched    []string `json:"matched,omitempty"`
}

func (r *roomState) snapshot() (Snapshot, error) {
	s := roomSnap{
		V: snapshotVersion, ID: r.id, Name: r.name, Game: r.gameName, MaxPlayers: r.maxPlayers,
		Status: r.status, Host: r.host, Players: r.players, CreatedMs: r.createdMs,
		Seq: r.seq, EventSeq: r.eventSeq, Winner: r.winner, Matched: r.matched,
	}
	if r.st != nil {
		b, err := r.st.Encode()
		if err != nil {
			return Snapshot{}, fmt.Errorf("encoding %s state: %w", r.gameName, err)
		}
		s.GameState = b
	}
	b, err := json.Marshal(&s)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Seq: r.seq, State: b}, nil
}

// restore rebuilds a room from a snapshot.
func restore(id string, snap *Snapshot, games *game.Registry) (*roomState, error) {
	var s roomSnap
	if err := json.Unmarshal(snap.State, &s); err != nil {
		return nil, fmt.Errorf("snapshot of %s at %d: %w", id, snap.Seq, err)
	}
	if s.V != snapshotVersion || s.ID != id || s.Seq != snap.Seq {
		return nil, fmt.Errorf("snapshot of %s at %d: version %d of room %q at %d", id, snap.Seq, s.V, s.ID, s.Seq)
	}
	g, ok := games.Get(s.Game)
	if !ok || s.Game == "" {
		return nil, fmt.Errorf("snapshot of %s: no game %q", id, s.Game)
	}
	r := &roomState{
		id: id, name: s.Name, gameName: s.Game, maxPlayers: s.MaxPlayers, status: s.Status,
		host: s.Host, players: s.Players, createdMs: s.CreatedMs, seq: s.Seq, eventSeq: s.EventSeq,
		winner: s.Winner, g: g, matched: s.Matched,
	}
	if len(s.GameState) > 0 {
		st, err := g.Decode(s.GameState)
		if err != nil {
			return nil, fmt.Errorf("snapshot of %s: %w", id, err)
		}
		r.st = st
	}
	return r, nil
}

// rebuild returns the room that snap (may be nil) and entries describe.
func rebuild(id string, snap *Snapshot, entries []Entry, games *game.Registry) (*roomState, error) {
	r, _, err := rebuildEvents(id, snap, entries, games)
	return r, err
}

// rebuildEvents is rebuild that also returns the events the entries
// caused (for the replay buffer).
func rebuildEvents(id string, snap *Snapshot, entries []Entry, games *game.Registry) (*roomState, []roomEvent, error) {
	var events []roomEvent
	r := newRoomState(id)
	if snap != nil {
		var err error
		if r, err = restore(id, snap, games); err != nil {
			return nil, nil, err
		}
	}
	for _, e := range entries {
		evs, noop, err := r.apply(e, games)
		if err != nil || noop {
			if err == nil {
				err = fmt.Errorf("changes nothing")
			}
			return nil, nil, fmt.Errorf("replaying %s entry %d (%s): %w", id, e.Seq, e.Kind, err)
		}
		events = append(events, evs...)
	}
	return r, events, nil
}

// checkName validates a room name: 1..64 bytes of printable UTF-8.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return ruleError(wire.CodeBadRequest, "name must be 1 to %d bytes, got %d", maxNameLen, len(name))
	}
	for _, c := range name {
		if c == 0xFFFD || c < 0x20 || c == 0x7f {
			return ruleError(wire.CodeBadRequest, "name must be printable UTF-8")
		}
	}
	return nil
}
