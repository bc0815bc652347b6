// The matchmaker (stateless): players queue with match.Start, are grouped
// into sessions by bucket (the queue and the ticket's equality
// properties), and a full session is placed: on a room, whose id the
// player's session is bound to (room = <id>) on the connection it already
// has, or, for a queue with placement "server", on a dedicated server whose
// address the players are given. The Redis model is the serverless
// matchmaker's (Servers, ServersAvailable, Player:<id>, Session:<id>, ...);
// see services/match.
//
// Pushes on the player's connection (the event types, each carrying the
// struct of the same name): "@match.Searching", "@match.Matched",
// "@match.TimedOut", "@match.Cancelled".
namespace go match

// Ticket states (Ticket.state).
const string STATE_SEARCHING = "searching"
const string STATE_MATCHED = "matched"
const string STATE_CANCELLED = "cancelled"
const string STATE_TIMED_OUT = "timed_out"

// Placement modes of a queue (Match.placement).
const string PLACEMENT_ROOM = "room"
const string PLACEMENT_SERVER = "server"

// StartRequest queues the caller in a queue.
struct StartRequest {
  // queue names a configured queue.
  1: string queue
  // strings are the ticket's string properties; those the queue names as
  // equality properties make its bucket (only tickets with equal values
  // are matched together).
  2: map<string, string> strings
  // numbers are the ticket's numeric properties; the queue's range
  // property (skill) is matched within a range that widens with waiting.
  3: map<string, double> numbers
}

// Match is where a ticket's session was placed.
struct Match {
  // session is the match session's id.
  1: string session
  // placement is "room" or "server".
  2: string placement
  // room_id is the room the players are in (placement "room"); the
  // connection that started the ticket is bound to it.
  3: string room_id
  // server_addr is the dedicated server's "IP:port" (placement "server").
  4: string server_addr
  // players are the matched players' user ids, oldest ticket first.
  5: list<string> players
}

// Ticket is a player's place in a queue.
struct Ticket {
  1: string id
  2: string queue
  // state is one of the STATE_ constants.
  3: string state
  // started_unix_ms is when the ticket was made.
  4: i64 started_unix_ms
  // match is set once the state is "matched".
  5: optional Match match
  // reason says why a cancelled ticket was cancelled ("cancelled",
  // "disconnected", "operator").
  6: string reason
}

struct StartReply {
  1: Ticket ticket
}

// CancelRequest cancels one of the caller's tickets.
struct CancelRequest {
  1: string ticket
}

struct CancelReply {
  1: Ticket ticket
}

// StatusRequest asks for a ticket's state (the polling fallback of the
// pushes).
struct StatusRequest {
  1: string ticket
}

struct StatusReply {
  1: Ticket ticket
}

// Searching is pushed when a ticket is queued.
struct Searching {
  1: Ticket ticket
}

// Matched is pushed when a ticket's session is placed.
struct Matched {
  1: Ticket ticket
}

// TimedOut is pushed when a ticket reaches its queue's time limit.
struct TimedOut {
  1: Ticket ticket
}

// Cancelled is pushed when a ticket is cancelled (by the player, because
// the player's connection was gone past the resume grace, or by an
// operator).
struct Cancelled {
  1: Ticket ticket
}

// Dedicated servers (queues with placement "server") are platform
// processes with a service certificate; these methods refuse clients.

// RegisterServerRequest adds (or updates) a dedicated server of a queue.
struct RegisterServerRequest {
  1: string queue
  // server_id is the server's stable id.
  2: string server_id
  // addr is the "IP:port" players connect to.
  3: string addr
  // available marks it available at once.
  4: bool available
}

struct RegisterServerReply {}

// ServerAvailableRequest marks a server available (its game ended).
struct ServerAvailableRequest {
  1: string queue
  2: string server_id
}

struct ServerAvailableReply {}

// LeaveServerRequest removes a server from its queue.
struct LeaveServerRequest {
  1: string queue
  2: string server_id
}

struct LeaveServerReply {}

// Operators (noonctl match; admin identity).

// QueueStats are a queue's figures.
struct QueueStats {
  1: string name
  2: string placement
  3: i32 min_players
  4: i32 max_players
  // tickets are the searching tickets.
  5: i64 tickets
  // open_sessions are sessions still taking players.
  6: i64 open_sessions
  // ready_sessions are full sessions waiting for placement.
  7: i64 ready_sessions
  // oldest_ticket_ms is the age of the oldest searching ticket.
  8: i64 oldest_ticket_ms
  // oldest_ready_ms is how long the oldest ready session has waited for
  // capacity: the scale-out signal is ready_sessions > 0 with it rising.
  9: i64 oldest_ready_ms
  10: i64 servers
  11: i64 servers_available
}

struct QueuesRequest {}

struct QueuesReply {
  1: list<QueueStats> queues
  // scale_out is true when ready sessions wait for capacity.
  2: bool scale_out
}

struct TicketsRequest {
  1: string queue
  // limit bounds the tickets returned: 0 means 100, at most 1000.
  2: i32 limit
}

// TicketInfo is a searching ticket as operators see it.
struct TicketInfo {
  1: Ticket ticket
  2: string user_id
  3: string session
  4: string bucket
}

struct TicketsReply {
  1: list<TicketInfo> tickets
}

struct AdminCancelRequest {
  1: string ticket
}

struct AdminCancelReply {
  1: Ticket ticket
}

// Match is the matchmaker's API (stateless).
service Match {
  // Start queues the caller; one searching ticket per player per queue.
  StartReply Start(1: StartRequest req)
  // Cancel cancels one of the caller's searching tickets.
  CancelReply Cancel(1: CancelRequest req)
  // Status returns one of the caller's tickets.
  StatusReply Status(1: StatusRequest req)
  // RegisterServer adds a dedicated server (platform processes only).
  RegisterServerReply RegisterServer(1: RegisterServerRequest req)
  // ServerAvailable marks a dedicated server available again.
  ServerAvailableReply ServerAvailable(1: ServerAvailableRequest req)
  // LeaveServer removes a dedicated server.
  LeaveServerReply LeaveServer(1: LeaveServerRequest req)
  // Queues lists the queues with their figures (admin).
  QueuesReply Queues(1: QueuesRequest req)
  // Tickets lists a queue's searching tickets, oldest first (admin).
  TicketsReply Tickets(1: TicketsRequest req)
  // AdminCancel cancels any ticket (admin).
  AdminCancelReply AdminCancel(1: AdminCancelRequest req)
}
