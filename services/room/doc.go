// Package room is the room service (stateful): rooms that players create,
// join, get ready in and play a game in, each living on exactly one
// instance at a time, with every acknowledged event durable.
//
// # The switch
//
// Every event for a room (a request, or a game timer) goes to the room's
// controller, one goroutine per active room, created on first use
// (switch.go, controller.go). Before handling anything the controller takes
// the room's lease in Redis (internal/placement; the lease's epoch grows on
// every acquisition) and loads the room from the Store: the latest snapshot
// and the entries after it, replayed through the rules. Events arriving
// meanwhile wait in its bounded queue (QueueSize; "overloaded" past it) in
// arrival order; then it handles them strictly one at a time, I/O
// included. Many rooms run side by side; a room idle for IdleEvict leaves
// memory (snapshot written, lease released) and is reloaded on its next
// event.
//
// # Durability
//
// A room's log holds its accepted inputs (Entry: join, ready, start with
// its seed, act, tick, ...), and its state is a deterministic function of
// them. An event is applied to a copy of the room; the entry is appended to
// the log (with a snapshot every SnapshotEvery entries) and only then is
// the copy kept, the events published on room/<id> and the caller
// answered. Every write is fenced by the lease epoch: loading a room raises
// the room's epoch in the store to the loader's, and a write with a lower
// epoch fails (ErrFenced), so an instance that lost its lease (paused,
// partitioned) can never write for the room again; it drops the room and
// answers "moved" to the new owner. NewPostgresStore is the Postgres store
// (Migrate creates its tables in schema "room", or the PostgresSchema
// option's); NewMemoryStore the in-memory one of `noon dev`, with the same
// semantics (the same contract tests).
//
// # Placement and failover
//
// room.Create picks a new room id that rendezvous-hashes to this instance
// among the ready room instances, so brokers route the room's later
// requests here. An instance asked about a room it does not own answers
// "moved: <owner id>": the lease holder while yellow lists it, else the
// rendezvous owner, which takes the lease (waiting for a dead holder's to
// expire) and rebuilds the room from the store. Leases are renewed every
// LeaseTTL/3. Drain hands rooms over for a rolling deploy: queued events
// handled, final snapshot, lease released.
//
// # Matched rooms
//
// room.CreateMatched is a matchmaker's (an internal method: the services
// of the Matchmakers option and admins only, services.Session's
// RequireService). The caller chooses the room id and routes by it, so the
// room's owner creates it like any room event, under its lease: a matched
// entry (KindMatched) seats the members, and a retry with the same members
// is a no-op answered created false. A controller opened for it treats a
// room not found as one to create. Each instance publishes its free
// capacity in its yellow record (Meta, MetaRoomsFree; RoomsFree reads it)
// so that a matchmaker places rooms where they fit.
//
// # Rewards
//
// With Options.Rewards.OnWin set, a game that ends with a winner makes
// the room grant the winner a currency amount and a stat through the game
// service (game.Grant, idempotency key "room:<id>:win", so a failover or a
// retry never grants twice), on a goroutine of its own with a few retries:
// the room never waits for it (rewards.go).
//
// # Limits, views and replay
//
// A user may have MaxRoomsPerUser rooms of their own that are not closed
// (counted by the store as it creates, under the creator's lock) and
// create MaxCreatesPerUser per CreateWindow (a Redis counter,
// quota.go); each member's events are bounded by MemberRate (a token
// bucket per member in the controller); a closed room leaves memory at
// once, and Retention deletes or archives closed rooms (the sweep and
// room.Prune, prune.go). A non-member's room.Get gets the public
// summary; a game.Viewer's state is shown to each member as View sees
// it, and its events are pushed per member (topic user/<id>). A room
// keeps its latest events (Options.Replay) for room.Get since_seq. A
// load fenced while holding the lease moves the lease's epoch past the
// store's (a Redis that lost its epochs).
//
// # Games
//
// Rules plug in behind package game (Game, State); games/race31 is the
// sample ("race to 31", 2 to 4 players). An illegal action is answered
// bad_request and changes nothing.
//
// # Running it
//
// Module runs it for `noon service room` and `noon dev`; by hand:
//
//	store, _ := room.NewPostgresStore(pool, room.DefaultSchema) // or room.NewMemoryStore()
//	svc, _ := room.New(room.NewOptions(), room.Deps{Store: store, Redis: rdb, Yellows: yellows, Logger: log})
//	srv, _ := svc.NewServer(serviceOpts, log) // or services.NewServer(opts, svc.Handlers(), log) + srv.SetMeta(svc.Meta) + svc.Attach(srv)
//	go srv.Main()
//	...
//	svc.Drain(ctx) // drains the server too
//	srv.Exit()
//	svc.Close()
package room
