// Package game is the game service (stateless): persistent player data.
// Each player has a profile (display name, avatar, a public and an
// owner-only JSON metadata object, bounded in bytes and depth), stats
// (named int64 counters), an inventory of items from the configured
// catalogue (stackable or held once, consumable or not, a max count,
// static properties) and a wallet of configured currencies, never
// negative, where every change is an entry of an append-only ledger
// (delta, balance after, reason, reference, idempotency key, time).
// Leaderboards rank players' scores per configured board (asc or desc;
// operators best, set, incr; seasons reset daily, weekly, monthly or
// never).
//
// # One writer per player
//
// Every change to a player's inventory, wallet and stats (Change) is
// applied by Store.Apply as one entry of the player's log, serialised with
// every other change of that player, and idempotent by its key: the same
// key with the same request (Change.Hash) answers the first result, with
// another request a conflict. On Postgres a change is one transaction that
// first locks the player's row (SELECT ... FOR UPDATE on players), then
// reads the key's log entry and the values it touches, checks them (no
// balance or count below zero, no max passed), writes them, appends the
// log entry and the ledger entries and bumps the player's seq. Why this
// and not a queue or an actor per player: the row lock is the one writer.
// It holds across any number of stateless instances with no lease or
// routing, a second change of the same player simply waits for the first
// to commit and then reads what it wrote (so no update is lost and no
// balance goes negative under READ COMMITTED), changes of different
// players never wait for each other, and the idempotency check runs under
// the same lock, so two retries of one key racing each other cannot both
// apply. A crash before the commit changes nothing; after it, a retry
// with the key answers the stored result. The cost is one hot player's
// changes running one at a time, a few round trips each (see the
// benchmarks). The memory store of `noon dev` serialises by a mutex per
// player, with the same rules (both pass services/game/storetest).
//
// The room service's log is per room, fenced by leases, because a room
// lives on one instance; a player is touched from anywhere (a room's
// rewards, a purchase, an operator), so the game service serialises in the
// database instead and keeps the same idea: a numbered log of accepted
// inputs per player (Store.Log), from which the state can be audited.
//
// # Who may do what
//
// Clients (a logged-in session through a broker) read their own profile,
// inventory, wallet and ledger, read others' public profiles and the
// leaderboards, update their own profile, consume their consumable items,
// and submit scores to boards with client_submit. Grants come only from
// server paths: game.Grant, game.Spend, game.SubmitScoreFor and
// game.BanStatus are internal methods (services.Session.RequireService)
// for the services of the trusted option (default room, match, pay; login
// too for BanStatus) and admins. Operators (noonctl game, admin
// certificate) have GetPlayer, AdminGrant, AdminTake, SetStat, Ban, Unban
// and Audit; every operator change is written to the audit table with the
// admin's certificate identity and a required reason, in the same
// transaction as the change.
//
// # Leaderboards
//
// Postgres (Store.SubmitScore) is the record of truth; Redis holds each
// board's current season as a sorted set for ranks, rebuilt from the store
// when its marker key is missing (see leaderboard.go). Ranks are best
// first, ties broken by user id.
//
// # Bad input
//
// Unknown users, items, currencies and boards are not_found; malformed or
// oversized input (metadata over its bytes or depth, too many entries, an
// amount out of range) bad_request; a spend beyond a balance, a consume or
// take of what is not owned, a max passed, a key reused for another
// request conflict. Nothing changes on any of them.
package game
