// Package match is the matchmaker: a stateless service (any number of
// instances, sharing nothing but Redis) built on the Redis model of the
// serverless multiplayer matchmaker (Servers, ServersAvailable, Player,
// PlayersTimeStartedMatchmaking, Session, SessionsPerMatchmaking,
// SessionPlayers, SessionsReady, SessionsCreationTime), where a match ends
// as a route: the matched players' sessions are bound to the new room
// (room = <id>) on the connections they already have.
//
// # Flow
//
// match.Start(queue, strings, numbers) makes a ticket ("<queue>.<id>")
// and, in one Lua script, puts it in the oldest open session of its
// bucket (the queue and the ticket's equality properties) whose range
// window holds the ticket's range value (a skill: the window is the
// founding ticket's value ± min(max, initial + widen_per_second × the
// session's age)), or in a new session. A full session is ready at once;
// one with min_players is ready once it is accept_min_after old. The
// player is pushed @match.Searching.
//
// A ready session is placed as soon as it is ready (the instance whose
// Start filled it hands it to its placement workers) and by every
// instance's tick: claimed in Lua (refused while another instance's claim
// is fresh; a claim older than claim_ttl is taken over), given a room id
// whose owner among the ready room instances (rendezvous hashing) has
// free capacity (the first claim stores the id, later claims reuse it),
// created with room.CreateMatched (members oldest ticket first;
// idempotent by room id, so a retry or a second instance never creates it
// twice), then recorded placed in Lua: each ticket is matched, and each
// player's connection, on whichever broker holds it, gets room = <id>
// bound and @match.Matched pushed (one directive each, published to the
// broker). A queue with placement "server" takes a server from
// ServersAvailable in the claim instead, and players get its "IP:port".
//
// The tick (every tick_interval, on every instance, per queue, one
// bounded script) times tickets out (@match.TimedOut), readies sessions
// with min_players that waited long enough, merges sessions whose widened
// window covers a younger session's players (so two lone far-apart
// players meet once the windows have widened), cancels tickets whose
// connection left and did not come back within the broker's grace
// (@match.Cancelled, reason "disconnected"; a broker that left yellow
// counts as all its connections leaving, after broker_grace), and frees
// stale claims. Brokers' presence events move a ticket to the
// connection its player resumed on.
//
// match.Cancel and a match racing it end in exactly one of the two: a
// ticket whose session is claimed for placement cannot be cancelled
// (conflict), and a cancelled ticket's session is no longer full, so it
// cannot be claimed. match.Status is the poll fallback of the pushes; for
// a matched ticket asked about from the connection that started it, it
// binds the room too.
//
// # Capacity and the scale-out signal
//
// With no room instance publishing rooms_free > 0 (or no available
// server) ready sessions wait in SessionsReady; once the oldest has waited
// scale_out_after, the signal rises: yellow meta scale_out=1 (with
// ready_sessions and oldest_ready_ms), QueuesReply.scale_out, the
// match_scale_out gauge. Placement resumes at once when the yellow view
// changes, not only at the next tick.
//
// # Redis
//
// Every change is one Lua script (atomic; EVALSHA). Each queue's keys
// are <redis_prefix>{<queue>}:<Name>: the queue's name is their hash tag,
// so in Redis Cluster all of a queue's keys are in one slot and every
// script runs on one node; queues spread over the cluster. The keys are
// listed in keys.go.
//
// # Seams
//
// The service is written against Pusher, RoomCreator and Cluster and a
// few functions (kit.go), which adapt it to the runtime: tests fake the
// three interfaces and drive the tick by hand with a fake clock.
package match
