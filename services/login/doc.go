// Package login is noon's login service: accounts in Postgres (argon2id
// password hashes), sessions in Redis, login throttling, served over the
// platform's wire (login.Register, login.Login, login.Validate,
// login.Logout, login.LogoutAll; idl/login.thrift) and as pandaparty's
// HTTP/JSON API (POST /api/register, /api/login, /api/validate_session,
// /api/logout, /api/logout_all).
//
// Module wires it up for `noon service login` and `noon dev`; by hand:
//
//	if err := login.Migrate(ctx, pool); err != nil { ... }      // `noon migrate`, and on start
//	store, _ := login.NewPostgresStore(pool, opts.PostgresSchema) // or login.NewMemoryStore()
//	svc, err := login.New(opts, store, rdb, log)                  // rdb: redis.UniversalClient
//	srv, err := login.NewServer(serviceOpts, svc, log)            // the wire, and the PUB socket for revocations
//	go srv.Main()
//	api, err := login.NewHTTPServer(opts.HTTPAddr, svc, log)      // unless opts.HTTPAddr == ""
//	go api.Main()
//
// Accounts: a username is UsernameMin..UsernameMax characters of
// [a-zA-Z0-9_.-], unique ignoring case; the user id is a UUIDv7; the
// password is stored as an argon2id PHC string, so hashes made under older
// parameters keep verifying. The Store interface has two implementations,
// PostgresStore (schema "login", migrations embedded and run with
// golang-migrate) and MemoryStore, which pass one contract suite
// (services/login/storetest).
//
// Sessions: a token is 256 random bits, base64url (43 characters). Redis
// keeps, under <prefix>login:session:<id>, where <id> is wire.SessionID of
// the token (its SHA-256), a hash of the user id, nickname and expiry, with
// the session's TTL, and per user an index of its session ids (see
// sessions.go). A session lives SessionTTL from its login; Validate
// refreshes nothing; Logout deletes it, LogoutAll deletes every session of
// a user. Both publish a login.Revoked event on the instance's PUB socket
// (topic wire.TopicRevoked), on which every broker logs out the
// connections authenticated with those sessions; the brokers also log a
// connection out at its session's expiry.
//
// Throttling, with back-off and never a lockout (ThrottleOptions): failed
// logins per (username, source address), per source address (registrations
// included; IPv6 by /64), and per username from address prefixes the
// account never logged in from; the prefixes (IPv4 /24, IPv6 /64) of an
// account's successful logins are remembered in Redis, and logins from
// them are never slowed by others' failures. Over a limit the call fails
// with "rate_limited: ...; retry in 4s" (HTTP 429 with Retry-After), the
// wait doubling per further failure up to a cap. Password checks queue for
// the hash slots, known prefixes first; when the queue is long, others are
// answered "overloaded" (HTTP 503). A store or Redis outage is answered
// "unavailable: login store unavailable". A failed login never creates or
// changes an account.
//
// Bans: with the ban_check option set (the configs say "game"), a login
// with the right password asks that service's BanStatus (game.BanStatus,
// an internal method) whether the player is banned, and a banned player
// is refused with "unauthenticated: banned until <time>: <reason>". If
// the service does not answer within two seconds the login goes ahead
// and a warning is logged (fail open; login_ban_checks_total counts
// results).
//
// A successful login.Login binds "user" = <user id> on the caller's
// session, naming the session and its expiry (services.Session.BindUser),
// which authenticates the broker connection; the broker's edge.Hello resume
// calls login.Validate, which returns the expiry too.
package login
