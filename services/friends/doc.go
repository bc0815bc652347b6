// Package friends is the friends service: friend lists as Nakama has them
// (friend, invite sent, invite received, blocked), with pandaparty's
// limits, live presence across every broker, and invitations into the
// inviter's room on the connection the friend already has. It is
// stateless: any number of instances share Postgres (the relations) and
// Redis (presence).
//
// # Relations
//
// friends.Request (by user id or username: login.LookupUser finds the
// user), Accept, Decline, Remove, Block, Unblock and List change and read
// the edges of the Store, one Store.Update per change (relations.go has
// the state machine). Limits: MaxFriends counts friends and pending
// requests together, MaxPending the pending requests (sent and received),
// MaxBlocked the blocked users; a request expires RequestTTL after it was
// made. A request to a user who blocked the caller answers as if sent and
// changes nothing. Pushes: @friends.Request to the asked user,
// @friends.Accepted to the one whose request was accepted.
//
// # Presence
//
// Brokers publish a Presence event when a connection's user logs in or
// resumes (online) and when it leaves (offline, with the broker's resume
// grace). Every friends instance follows every broker and applies each
// event to Redis in one script (presence.go); the script that sets a
// user's online flag (its first live connection) or, in a tick after the
// grace ran out with no live connection, clears it, runs on exactly one
// instance, and that instance pushes @friends.Online or @friends.Offline
// to the user's online friends. A connection that resumes on another
// broker within the grace changes nothing for the friends. A broker absent
// from yellow for BrokerGrace counts as all its connections leaving (one
// back within it loses nothing).
// List reads the flags of the friends it returns.
//
// # Invites
//
// friends.Invite pushes @friends.Invited (the room id) to a friend when the
// caller's session is bound to a room; the friend joins with room.Join of
// that id, as any join, on its own connection.
//
// # Seams
//
// The service is written against Store, Directory, Publisher and Brokers
// (kit.go); the module adapts them to the runtime, tests fake them and
// drive the tick with a fake clock.
package friends
