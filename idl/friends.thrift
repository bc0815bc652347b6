// The friends service (stateless, services/friends): friend lists as Nakama
// has them, with live presence. Between two users each side has its own
// state (the Friend.state constants): friends both ways, an invite sent on
// one side and received on the other, or blocked (one-sided: a user who
// blocks another keeps that row; the blocked user keeps nothing).
//
// Limits (configurable): at most 200 friends, pending requests counting
// toward that cap; at most 50 pending requests (sent and received); at most
// 100 blocked users; a request expires after 7 days unanswered. A request
// to a user who blocked the caller is dropped silently: it answers as if
// sent, and nothing is stored or pushed.
//
// Pushes on the user's topic (user/<id>), each carrying the struct of the
// same name: "@friends.Request" (someone asked you), "@friends.Accepted"
// (someone accepted your request), "@friends.Online" / "@friends.Offline"
// (a friend's first connection logged in / last one left: a connection
// that resumes on another broker within the resume grace changes
// nothing), "@friends.Invited" (a friend invites you into their room:
// room.Join of its id).
//
// pandaparty's bare name GetFriendsList is an alias of friends.List.
namespace go friends

// Friend states (Friend.state, ListRequest.state), Nakama's numbering.
const i32 STATE_FRIEND = 0
const i32 STATE_INVITE_SENT = 1
const i32 STATE_INVITE_RECEIVED = 2
const i32 STATE_BLOCKED = 3

// Friend is one of the caller's relations.
struct Friend {
  1: string user_id
  // state is one of the STATE_ constants.
  2: i32 state
  // updated_unix_ms is when the state last changed.
  3: i64 updated_unix_ms
  // online is whether the user has a connection logged in on any broker
  // (friends only: false for other states).
  4: bool online
  // expires_unix_ms is when an unanswered request expires (invite states
  // only).
  5: i64 expires_unix_ms
}

// RequestRequest asks a user to be friends, named by user_id or by
// username (ignoring case); exactly one of the two. When that user had
// asked the caller already, both become friends at once.
struct RequestRequest {
  1: optional string user_id
  2: optional string username
}

struct RequestReply {
  // friend is the caller's relation with the user now: invite sent, or
  // friend.
  1: Friend friend
}

// AcceptRequest accepts the request the caller received from user_id.
struct AcceptRequest {
  1: string user_id
}

struct AcceptReply {
  1: Friend friend
}

// DeclineRequest declines the request the caller received from user_id.
struct DeclineRequest {
  1: string user_id
}

struct DeclineReply {}

// RemoveRequest ends a friendship with user_id, or a request between the
// two (one the caller sent, withdrawn, or received, declined): both sides
// lose the relation.
struct RemoveRequest {
  1: string user_id
}

struct RemoveReply {}

// BlockRequest blocks user_id: any friendship or request between the two
// ends, and that user's requests are dropped from now on.
struct BlockRequest {
  1: string user_id
}

struct BlockReply {
  1: Friend friend
}

// UnblockRequest unblocks user_id.
struct UnblockRequest {
  1: string user_id
}

struct UnblockReply {}

// ListRequest pages through the caller's relations, most recently changed
// first.
struct ListRequest {
  // state, when set, lists only relations in that state.
  1: optional i32 state
  // cursor is the previous reply's cursor; "" starts at the beginning.
  2: string cursor
  // limit bounds the page: 0 means 100, at most 500.
  3: i32 limit
}

struct ListReply {
  1: list<Friend> friends
  // cursor continues the list; "" when there is no more.
  2: string cursor
}

// InviteRequest invites a friend into the room the caller's session is
// bound to (room = <id>).
struct InviteRequest {
  1: string user_id
}

struct InviteReply {
  1: string room_id
  // online is whether the friend had a connection logged in: the push
  // reaches only those.
  2: bool online
}

// Request is pushed to a user someone asked to be friends.
struct Request {
  // user_id is who asked.
  1: string user_id
  // expires_unix_ms is when the request expires unanswered.
  2: i64 expires_unix_ms
}

// Accepted is pushed to a user whose request was accepted (also when two
// users asked each other).
struct Accepted {
  // user_id is who accepted.
  1: string user_id
}

// Online is pushed to a user's online friends when the user's first
// connection logs in.
struct Online {
  1: string user_id
}

// Offline is pushed to a user's online friends when the user's last
// connection left and the resume grace passed without a return.
struct Offline {
  1: string user_id
}

// Invited is pushed to a friend invited into a room.
struct Invited {
  // room_id is the room: room.Join it.
  1: string room_id
  // from_user_id is who invites.
  2: string from_user_id
}

// Friends is the friends service's API (every method needs a login).
service Friends {
  // Request asks a user, by id or username, to be friends.
  RequestReply Request(1: RequestRequest req)
  // Accept accepts a received request.
  AcceptReply Accept(1: AcceptRequest req)
  // Decline declines a received request.
  DeclineReply Decline(1: DeclineRequest req)
  // Remove ends a friendship or withdraws a sent request.
  RemoveReply Remove(1: RemoveRequest req)
  // Block blocks a user.
  BlockReply Block(1: BlockRequest req)
  // Unblock unblocks a user.
  UnblockReply Unblock(1: UnblockRequest req)
  // List pages through the caller's relations, with friends' presence.
  ListReply List(1: ListRequest req)
  // Invite invites a friend into the caller's room.
  InviteReply Invite(1: InviteRequest req)
}
