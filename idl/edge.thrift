// The broker's own client-facing methods.
namespace go edge

// Hello is the first request of a connection (optional for plain pandaparty
// clients): protocol version, push opt-in, optional session resume.
struct HelloRequest {
  1: i32 protocol_version
  // push asks for "@<type>" push frames on this connection.
  2: bool push
  // resume_token authenticates the connection with an existing session token.
  3: optional string resume_token
  4: optional string client_name
}

struct HelloReply {
  1: i32 protocol_version
  2: string session_id
  3: string broker_id
  // user_id is set when resume_token was accepted.
  4: optional string user_id
  5: i32 max_frame
  6: i32 max_in_flight
}

// Draining is pushed as "@edge.Draining" when the broker is shutting down:
// reconnect to another broker from the BrokerList.
struct Draining {
  1: i32 grace_ms
}

// Why a connection was logged out (LoggedOut.reason).
// LOGGED_OUT_LOGOUT: its session token was logged out (login.Logout).
const string LOGGED_OUT_LOGOUT = "logout"
// LOGGED_OUT_LOGOUT_ALL: every session of its user was ended
// (login.LogoutAll).
const string LOGGED_OUT_LOGOUT_ALL = "logout_all"
// LOGGED_OUT_EXPIRED: its session token expired.
const string LOGGED_OUT_EXPIRED = "expired"

// LoggedOut is pushed as "@edge.LoggedOut" when the broker logs a
// connection out because its session ended elsewhere or expired: the
// connection stays open but unauthenticated (non-public calls answer
// unauthenticated, its bindings and subscriptions are gone); log in again
// within the auth timeout or it is closed.
struct LoggedOut {
  1: string reason
}

// Edge is the broker's own API: the broker answers it itself.
service Edge {
  // Hello is the optional first request of a connection.
  HelloReply Hello(1: HelloRequest req)
}
