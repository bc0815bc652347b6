// The pay service (stateless): store purchases validated once, recorded
// once (unique by provider and transaction id), and granted exactly once
// through the game service (a durable outbox: see services/pay). Clients
// validate and read their own purchases; operators (noonctl pay) list a
// player's purchases and replay a stuck grant.
namespace go pay

// Purchase states (Purchase.state).
const string STATE_GRANTING = "granting"
const string STATE_GRANTED = "granted"
const string STATE_REFUNDED = "refunded"

// Purchase is one recorded purchase.
struct Purchase {
  // id is pay's id of the record.
  1: string id
  2: string provider
  3: string transaction_id
  4: string product
  5: i32 quantity
  // state is one of the STATE_ constants.
  6: string state
  // currencies and items are the goods the purchase grants.
  7: map<string, i64> currencies
  8: map<string, i64> items
  9: string user_id
  10: i64 created_unix_ms
}

// ValidateRequest asks pay to verify a store's signed purchase, record it
// and grant its goods to the caller.
struct ValidateRequest {
  // provider names the store ("test", "apple").
  1: string provider
  // signed is the store's signed purchase (for Apple, a StoreKit 2 JWS).
  2: binary signed
  // idempotency_key makes a retry safe: the same key with the same request
  // answers the first reply; with another request, conflict. Required.
  3: string idempotency_key
}

struct ValidateReply {
  1: Purchase purchase
  // seen_before is true when the purchase had been recorded already: it
  // grants nothing again.
  2: bool seen_before
}

// StatusRequest asks for one of the caller's purchases by id.
struct StatusRequest {
  1: string id
}

struct StatusReply {
  1: Purchase purchase
}

// ListRequest pages through the caller's purchases, newest first.
struct ListRequest {
  // cursor is the previous page's next_cursor; "" starts at the newest.
  1: string cursor
  // limit: 0 means 50, at most 200.
  2: i32 limit
}

struct ListReply {
  1: list<Purchase> purchases
  2: string next_cursor
}

// AdminListRequest lists a player's purchases (admin).
struct AdminListRequest {
  1: string user_id
  2: string cursor
  3: i32 limit
}

// ReplayRequest delivers again the grant of a purchase (by its id or its
// transaction id) now (admin); game's idempotency key makes it safe.
struct ReplayRequest {
  1: string ref
}

struct ReplayReply {
  1: Purchase purchase
  // delivered is true when the grant is done now.
  2: bool delivered
}

// Pay is the purchases API (stateless).
service Pay {
  // Validate verifies, records and grants a purchase for the caller.
  ValidateReply Validate(1: ValidateRequest req)
  // Status returns one of the caller's purchases (pandaparty's
  // GetPaymentStatus).
  StatusReply Status(1: StatusRequest req)
  // List pages through the caller's purchases.
  ListReply List(1: ListRequest req)
  // AdminList pages through a player's purchases (admin).
  ListReply AdminList(1: AdminListRequest req)
  // Replay delivers a purchase's grant again (admin).
  ReplayReply Replay(1: ReplayRequest req)
}
