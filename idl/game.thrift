// The game service (stateless): persistent player data. A player's
// profile (display name, avatar, public and owner-only metadata), stats
// (named counters), inventory (items of the configured catalogue) and
// wallet (configured currencies, every change a ledger entry), and
// leaderboards. Every change to a player's inventory, wallet and stats is
// serialised per player, recorded in the player's log, and idempotent by
// its key; see services/game.
//
// Grants come only from server paths: other platform services (Grant,
// Spend, SubmitScoreFor: the services of services.game.trusted, and
// admins) and operators (noonctl game: the admin methods, each written to
// an audit log with who and why). Clients call the other methods for
// themselves.
namespace go game

// Leaderboard orders (Board.order).
const string ORDER_ASC = "asc"
const string ORDER_DESC = "desc"

// Leaderboard operators (Board.operator): how a submitted score combines
// with the player's current one.
const string OPERATOR_BEST = "best"
const string OPERATOR_SET = "set"
const string OPERATOR_INCR = "incr"

// Leaderboard reset schedules (Board.reset): a board's season changes at
// each reset (UTC), and each season is a board of its own.
const string RESET_NEVER = "never"
const string RESET_DAILY = "daily"
const string RESET_WEEKLY = "weekly"
const string RESET_MONTHLY = "monthly"

// Profile is a player's profile. Others see display_name, avatar and
// metadata; the owner (and operators) see private_metadata and stats too.
struct Profile {
  1: string user_id
  2: string display_name
  // avatar is a URL or an asset id, as the game likes.
  3: string avatar
  // metadata is a JSON object anyone may read ("{}" when unset).
  4: string metadata
  // private_metadata is a JSON object only the owner reads (empty for
  // others).
  5: string private_metadata
  // stats are the player's counters (owner and operators only).
  6: map<string, i64> stats
  7: i64 created_unix_ms
  8: i64 updated_unix_ms
}

// GetProfileRequest asks for a player's profile; user_id "" is the
// caller's own.
struct GetProfileRequest {
  1: string user_id
}

struct GetProfileReply {
  1: Profile profile
}

// UpdateProfileRequest changes the owner-writable fields of the caller's
// profile; a field left unset keeps its value.
struct UpdateProfileRequest {
  1: optional string display_name
  2: optional string avatar
  // metadata and private_metadata must be JSON objects within the
  // service's limits (bytes and nesting depth).
  3: optional string metadata
  4: optional string private_metadata
}

struct UpdateProfileReply {
  1: Profile profile
}

// Item is one item of an inventory, with its catalogue properties.
struct Item {
  1: string item
  2: i64 count
  3: bool stackable
  4: bool consumable
  5: map<string, string> properties
}

struct GetInventoryRequest {}

struct GetInventoryReply {
  1: list<Item> items
}

// ConsumeItemRequest uses up count of a consumable item the caller owns.
struct ConsumeItemRequest {
  1: string item
  2: i64 count
  // idempotency_key makes a retry safe: the same key with the same request
  // answers the first result; with another request, conflict.
  3: string idempotency_key
}

// ChangeReply is the result of a change to a player: its entry in the
// player's log and the values it left for what it touched.
struct ChangeReply {
  // seq is the change's entry in the player's log.
  1: i64 seq
  // balances are the currencies the change touched, after it.
  2: map<string, i64> balances
  // items are the items the change touched, their counts after it.
  3: map<string, i64> items
  // stats are the stats the change touched, after it.
  4: map<string, i64> stats
  // replayed is true when the idempotency key had been used already: this
  // is the first call's result, and nothing changed now.
  5: bool replayed
}

struct GetWalletRequest {}

struct GetWalletReply {
  // balances has every configured currency (0 when never granted).
  1: map<string, i64> balances
}

// LedgerEntry is one change of one currency of a wallet. The ledger is
// append-only: a currency's entries sum to its balance.
struct LedgerEntry {
  // seq is the change's entry in the player's log (a change touching two
  // currencies has two ledger entries with the same seq).
  1: i64 seq
  2: string currency
  3: i64 delta
  // balance is the currency's balance after the change.
  4: i64 balance
  // reason says why ("room_win", "purchase", "consume", "gm_grant", ...).
  5: string reason
  // reference names what it is about (a room, an order), or "".
  6: string reference
  7: string idempotency_key
  8: i64 at_unix_ms
}

// ListLedgerRequest pages through the caller's ledger, newest first.
struct ListLedgerRequest {
  // cursor is the next_cursor of the previous page; "" starts at the
  // newest entry.
  1: string cursor
  // limit bounds the entries returned: 0 means 50, at most 500.
  2: i32 limit
  // currency, when set, lists that currency's entries only.
  3: optional string currency
}

struct ListLedgerReply {
  1: list<LedgerEntry> entries
  // next_cursor continues the listing; "" when there is no more.
  2: string next_cursor
}

// Score is one row of a leaderboard.
struct Score {
  // rank is 1 for the first.
  1: i64 rank
  2: string user_id
  3: i64 score
  4: string display_name
}

// SubmitScoreRequest submits the caller's score to a board that allows
// clients to (client_submit).
struct SubmitScoreRequest {
  1: string board
  2: i64 score
}

struct SubmitScoreReply {
  // score is the player's score on the board after the submit (the best,
  // the sum or the value set, by the board's operator).
  1: i64 score
  2: i64 rank
  // season is the board's current season ("all" for a board that never
  // resets).
  3: string season
}

// TopRequest asks for a board's first n (0 means 10, at most 100).
struct TopRequest {
  1: string board
  2: i32 n
}

struct TopReply {
  1: list<Score> scores
  2: string season
}

// AroundMeRequest asks for the caller's row and n rows on each side (0
// means 5, at most 50).
struct AroundMeRequest {
  1: string board
  2: i32 n
}

struct AroundMeReply {
  // scores is empty when the caller has no score on the board.
  1: list<Score> scores
  2: string season
}

// Server paths: other platform services and admins only.

// GrantRequest gives a player currencies, items and stat increments, in
// one change. The player is created if the game service has never seen
// them.
struct GrantRequest {
  1: string user_id
  // currencies: amounts (> 0) by currency.
  2: map<string, i64> currencies
  // items: counts (> 0) by item.
  3: map<string, i64> items
  // stats: increments (any sign) by stat name.
  4: map<string, i64> stats
  5: string reason
  6: string reference
  // idempotency_key is required: the same key with the same request
  // answers the first result; with another request, conflict.
  7: string idempotency_key
}

// SpendRequest takes currencies and items from a player, in one change:
// all of it, or nothing (conflict) when a balance or count is short.
struct SpendRequest {
  1: string user_id
  // currencies: amounts (> 0) by currency.
  2: map<string, i64> currencies
  // items: counts (> 0) by item.
  3: map<string, i64> items
  4: string reason
  5: string reference
  6: string idempotency_key
}

// SubmitScoreForRequest submits a player's score to any board.
struct SubmitScoreForRequest {
  1: string user_id
  2: string board
  3: i64 score
}

struct BanStatusRequest {
  1: string user_id
}

// BanStatusReply says whether a player is banned now.
struct BanStatusReply {
  1: bool banned
  // until_unix_ms is when the ban ends (0 when not banned).
  2: i64 until_unix_ms
  3: string reason
}

// Operators (noonctl game; admin identity). Every change is written to
// the audit log with the admin's identity and the reason, which is
// required.

struct GetPlayerRequest {
  1: string user_id
}

// Player is all the service holds of a player.
struct Player {
  1: Profile profile
  2: list<Item> items
  3: map<string, i64> balances
  4: BanStatusReply ban
  // seq is the last entry of the player's log.
  5: i64 seq
}

struct GetPlayerReply {
  1: Player player
}

// AdminGrantRequest is a Grant by an operator.
struct AdminGrantRequest {
  1: GrantRequest grant
}

// AdminTakeRequest is a Spend by an operator.
struct AdminTakeRequest {
  1: SpendRequest take
}

// SetStatRequest sets a stat to a value.
struct SetStatRequest {
  1: string user_id
  2: string stat
  3: i64 value
  4: string reason
  5: string idempotency_key
}

// BanRequest bans a player for duration_seconds (> 0) from now.
struct BanRequest {
  1: string user_id
  2: i64 duration_seconds
  3: string reason
}

struct BanReply {
  1: BanStatusReply ban
}

struct UnbanRequest {
  1: string user_id
  2: string reason
}

// AuditEntry is one operator action.
struct AuditEntry {
  1: i64 id
  2: i64 at_unix_ms
  // admin is the operator's certificate identity ("admin", or "unknown"
  // on a plain link).
  3: string admin
  4: string action
  5: string user_id
  6: string reason
  // detail is the action's request as JSON.
  7: string detail
}

// AuditRequest lists a player's audit entries, newest first (user_id ""
// lists everyone's).
struct AuditRequest {
  1: string user_id
  // limit: 0 means 50, at most 500.
  2: i32 limit
}

struct AuditReply {
  1: list<AuditEntry> entries
}

// Game is the player data API (stateless).
service Game {
  // GetProfile returns a player's profile (user_id "" for the caller's);
  // others see only the public fields.
  GetProfileReply GetProfile(1: GetProfileRequest req)
  // UpdateProfile changes the caller's owner-writable profile fields.
  UpdateProfileReply UpdateProfile(1: UpdateProfileRequest req)
  // GetInventory lists the caller's items.
  GetInventoryReply GetInventory(1: GetInventoryRequest req)
  // ConsumeItem uses up a consumable item of the caller's.
  ChangeReply ConsumeItem(1: ConsumeItemRequest req)
  // GetWallet returns the caller's balances.
  GetWalletReply GetWallet(1: GetWalletRequest req)
  // ListLedger pages through the caller's wallet ledger, newest first.
  ListLedgerReply ListLedger(1: ListLedgerRequest req)
  // SubmitScore submits the caller's score (boards with client_submit).
  SubmitScoreReply SubmitScore(1: SubmitScoreRequest req)
  // Top returns a board's first rows.
  TopReply Top(1: TopRequest req)
  // AroundMe returns the rows around the caller's.
  AroundMeReply AroundMe(1: AroundMeRequest req)
  // Grant gives a player currencies, items and stats (services, admins).
  ChangeReply Grant(1: GrantRequest req)
  // Spend takes currencies and items from a player (services, admins).
  ChangeReply Spend(1: SpendRequest req)
  // SubmitScoreFor submits a player's score to any board (services, admins).
  SubmitScoreReply SubmitScoreFor(1: SubmitScoreForRequest req)
  // BanStatus says whether a player is banned (services, admins).
  BanStatusReply BanStatus(1: BanStatusRequest req)
  // GetPlayer returns everything about a player (admin).
  GetPlayerReply GetPlayer(1: GetPlayerRequest req)
  // AdminGrant is a Grant by an operator, audited (admin).
  ChangeReply AdminGrant(1: AdminGrantRequest req)
  // AdminTake is a Spend by an operator, audited (admin).
  ChangeReply AdminTake(1: AdminTakeRequest req)
  // SetStat sets a player's stat, audited (admin).
  ChangeReply SetStat(1: SetStatRequest req)
  // Ban bans a player for a duration, audited (admin).
  BanReply Ban(1: BanRequest req)
  // Unban lifts a player's ban, audited (admin).
  BanReply Unban(1: UnbanRequest req)
  // Audit lists operator actions, newest first (admin).
  AuditReply Audit(1: AuditRequest req)
}
