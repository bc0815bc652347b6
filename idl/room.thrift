// The room service (stateful): rooms players create, join, get ready in and
// play a game in. Every room lives on one instance at a time; the broker
// routes a session's room.* requests to it by the session's binding
// room = <id>, which room.Create and room.Join set and room.Leave clears.
//
// The methods are the service Room block below (room.Create, room.Join, ...).
// Every change of a room is pushed to its members as an "@room.Event" push
// carrying an Event (topic room/<id>).
//
// pandaparty's bare names (CreateRoom, JoinRoom) are aliases the broker maps
// onto room.Create and room.Join.
namespace go room

// Room statuses (RoomState.status, RoomSummary.status).
const string STATUS_OPEN = "open"
const string STATUS_PLAYING = "playing"
const string STATUS_FINISHED = "finished"
const string STATUS_CLOSED = "closed"

// Player is a member of a room, in join order (which is seat order).
struct Player {
  1: string id
  2: bool ready
}

// CreateRequest creates a room whose first member is the caller.
struct CreateRequest {
  // name is shown in room lists: 1..64 bytes of printable UTF-8.
  1: string name
  // game names the game played in the room; "" is the service's default
  // game ("race31").
  2: string game
  // max_players bounds the members, within the game's limits; 0 is the
  // game's maximum.
  3: i32 max_players
}

// JoinRequest joins a room by id.
struct JoinRequest {
  1: string room_id
}

// LeaveRequest leaves the room the session is bound to, or room_id.
struct LeaveRequest {
  1: optional string room_id
}

struct LeaveReply {
  // seq is the room's last event seq after leaving.
  1: i64 seq
}

// ReadyRequest marks the caller ready (or not) in the room the session is
// bound to, or room_id.
struct ReadyRequest {
  1: bool ready = true
  2: optional string room_id
}

// StartRequest starts the game of the room the session is bound to, or
// room_id: any member may start it once every member is ready and there are
// at least the game's minimum players.
struct StartRequest {
  1: optional string room_id
}

// ListRequest lists open rooms with a free seat, newest first.
struct ListRequest {
  // game filters by game; "" lists every game.
  1: string game
  // limit bounds the rooms returned: 0 means 50, at most 200.
  2: i32 limit
}

// RoomSummary is a room as room lists show it.
struct RoomSummary {
  1: string id
  2: string name
  3: string game
  4: string status
  5: i32 players
  6: i32 max_players
  7: i64 created_unix_ms
}

struct ListReply {
  1: list<RoomSummary> rooms
}

// GetRequest asks for the state of the room the session is bound to, or
// room_id. A member gets the whole state (a game with hidden information
// shows each member only their own view); anyone else gets the room's
// public summary (RoomState.public_view, no game_state, no events).
struct GetRequest {
  1: optional string room_id
  // since_seq asks a member for the events after it as well
  // (RoomState.events): a client that missed pushes (a reconnect) catches
  // up by seq. The room keeps its recent events (replay.max_events, 256,
  // and replay.max_bytes, 256 KiB, by default); when the events after
  // since_seq are no longer all kept, the reply sets resync and carries
  // none: use the state. Unset (or below 0): no events.
  2: optional i64 since_seq
}

// CreateMatchedRequest creates a room whose members a matchmaker chose
// (platform processes only: a client's call is refused unauthenticated;
// over TLS the caller must hold a service certificate of one of the room
// service's `matchmakers`, default match, or an admin one). It is
// idempotent by room_id: a second call with the same id and members (in
// any order) answers the room as it is, with created false; with other
// members, or for a room room.Create made, conflict.
//
// Route it by room_id (the stateful key "room") like any room request:
// the room's owner (the lease holder, else the rendezvous owner among the
// ready room instances) creates it under the room's lease, logged before
// the reply; another instance answers moved. The members are seated in
// order, none ready, the first the host; the room publishes room.created
// (the first member) and room.joined (each other) as for Create and Join.
// Nothing is bound on any session: the caller binds room = <id> on the
// members' connections. An instance with max_rooms rooms active answers
// overloaded (it publishes rooms_free in yellow: pick another).
struct CreateMatchedRequest {
  // room_id is the room's id, chosen by the caller (the matchmaker
  // derives it from its session id): 1..64 bytes of [A-Za-z0-9_-].
  1: string room_id
  // members are the players' user ids, in seat order: 1..max_players
  // distinct ids, each 1..128 bytes of UTF-8 without control characters.
  2: list<string> members
  // game is the game played; "" is the default game.
  3: string game
  // name is the room's name (1..64 bytes); "" is "match".
  4: string name
  // max_players bounds the members; 0 is the game's maximum.
  5: i32 max_players
}

struct CreateMatchedReply {
  // state is the room as of the call (after the create, or as it is now).
  1: RoomState state
  // created is false when the room already existed.
  2: bool created
}

// RoomState is a room's whole state as of event seq.
struct RoomState {
  1: string id
  2: string name
  3: string game
  4: string status
  5: list<Player> players
  6: i32 max_players
  // seq is the seq of the room's last event: pushes with a higher seq come
  // after this state.
  7: i64 seq
  // game_state is the game's own encoding of its state (Race31State for
  // race31); empty before the game starts.
  8: binary game_state
  // host is the member who created the room, or the longest-seated member
  // after the creator left.
  9: string host
  // winner is the winner of a finished game ("" for a draw or before).
  10: string winner
  11: i64 created_unix_ms
  // public_view is set when the caller is not a member: the state is the
  // room's public summary (players, status, host, winner), without
  // game_state and events.
  12: bool public_view
  // events, in the reply of a room.Get with since_seq, are the room's
  // events after since_seq up to seq, in order, as the caller's pushes
  // carried them.
  13: list<Event> events
  // resync, in the reply of a room.Get with since_seq, says the events
  // after since_seq are no longer kept (or since_seq is past seq): events
  // is empty; rebuild from this state.
  14: bool resync
}

// ActionRequest plays a game action in the room the session is bound to,
// or room_id; action is the game's own encoding (Race31Action for race31).
struct ActionRequest {
  1: binary action
  2: optional string room_id
}

struct ActionReply {
  // seq is the seq of the last event the action caused.
  1: i64 seq
}

// Event is one change of a room, pushed as "@room.Event" to every member
// (topic room/<id>). Each room's events have consecutive seqs from 1: a
// client that sees a gap (a push lost on the way) calls room.Get.
//
// Types: room.created, room.joined, room.left, room.ready, room.unready,
// room.host (player is the new host), room.started, room.finished (player
// is the winner), room.closed; and the game's own, "game." followed by the
// game's event name (race31: game.added, game.timeout, game.turn).
struct Event {
  1: string room_id
  2: i64 seq
  3: string type
  // player is the member the event is about ("" for none).
  4: string player
  // body is the event's payload: the game's encoding for game.* events
  // (race31: Race31Added), the game's state (Race31State) for room.started,
  // empty otherwise.
  5: binary body
  6: i64 time_unix_ms
}

// PruneRequest removes (or archives, per the retention.mode option) rooms
// closed for longer than an age (admins only: noonctl rooms prune).
struct PruneRequest {
  // older_than_ms is the age, in milliseconds, past which a closed room is
  // pruned; 0 is the retention.closed_after option (168h).
  1: i64 older_than_ms
  // dry_run counts (and lists) what would be pruned, changing nothing.
  2: bool dry_run
  // limit bounds the rooms pruned by this call: 0 means 1,000, at most
  // 100,000.
  3: i32 limit
}

struct PruneReply {
  // rooms is how many rooms were pruned (or would be, with dry_run).
  1: i32 rooms
  // room_ids are the rooms pruned (the first 100).
  2: list<string> room_ids
  // mode is what pruning did: "delete" or "archive" (dry_run: what it
  // would do).
  3: string mode
}

// RoomsRequest lists the rooms active on the instance that answers (admins
// only: noonctl rooms calls it on every room instance).
struct RoomsRequest {
  // limit bounds the rooms listed: 0 means 100, at most 1,000.
  1: i32 limit
}

// RoomPlacement is one active room of an instance.
struct RoomPlacement {
  1: string id
  2: string status
  // seq is the seq of the room's last event.
  3: i64 seq
  // members are the players in the room, in seat order.
  4: list<string> members
  5: string game
}

struct RoomsReply {
  // instance is the room instance that answered.
  1: string instance
  // active is how many rooms the instance holds in memory; rooms lists the
  // first limit of them by id.
  2: i32 active
  3: list<RoomPlacement> rooms
}

// Room is the room service's API (stateful: routed by the session's
// binding room = <id>).
service Room {
  // Create creates a room with the caller in it and binds room = <id>.
  RoomState Create(1: CreateRequest req)
  // Join joins a room and binds room = <id>.
  RoomState Join(1: JoinRequest req)
  // Leave leaves the room and unbinds room.
  LeaveReply Leave(1: LeaveRequest req)
  // Ready marks the caller ready or not.
  RoomState Ready(1: ReadyRequest req)
  // Start starts the game once every member is ready.
  RoomState Start(1: StartRequest req)
  // List lists open rooms with a free seat, newest first.
  ListReply List(1: ListRequest req)
  // Get returns the state of a room.
  RoomState Get(1: GetRequest req)
  // Act plays a game action.
  ActionReply Act(1: ActionRequest req)
  // CreateMatched creates a room with its members (matchmaker only).
  CreateMatchedReply CreateMatched(1: CreateMatchedRequest req)
  // Prune removes or archives rooms closed long enough (admin only).
  PruneReply Prune(1: PruneRequest req)
  // Rooms lists the rooms active on this instance, with their seq and
  // members (admin only).
  RoomsReply Rooms(1: RoomsRequest req)
}

// --- race31, the sample game -------------------------------------------
// 2 to 4 players take turns adding 1, 2 or 3 to a shared total that starts
// at 0; nobody may pass the target (31); whoever reaches it exactly wins. A
// player who lets the turn time out has 1 added for them.

// Race31State is race31's game_state.
struct Race31State {
  1: i32 total
  2: i32 target
  3: i32 max_add
  // order is the seat order; turn indexes it.
  4: list<string> order
  5: i32 turn
  6: string winner
  // turn_deadline_unix_ms is when the player to move times out (0 once the
  // game is over).
  7: i64 turn_deadline_unix_ms
  8: i64 turn_timeout_ms
  9: i32 moves
}

// Race31Action adds to the total: 1 <= add <= min(max_add, target - total).
struct Race31Action {
  1: i32 add
}

// Race31Added is the body of game.added (a move), game.timeout (a move the
// server made for a player who ran out of time) and game.turn (the turn
// passed because the player to move left; add is 0).
struct Race31Added {
  1: i32 add
  2: i32 total
  // next_player is the player to move next ("" once the game is over).
  3: string next_player
}
