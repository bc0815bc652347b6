// The login service: accounts and sessions.
namespace go login

struct RegisterRequest {
  1: string username
  2: string password
  3: optional string nickname
}

struct RegisterReply {
  1: string user_id
  2: string nickname
}

struct LoginRequest {
  1: string username
  2: string password
}

struct LoginReply {
  1: string user_id
  2: string nickname
  3: string session_token
  // expires_unix is when the session token expires.
  4: i64 expires_unix
}

struct ValidateRequest {
  1: string session_token
}

struct ValidateReply {
  1: bool valid
  2: string user_id
  3: string nickname
}

struct LogoutRequest {
  // session_token empty = the calling connection's own session.
  1: optional string session_token
}

struct LogoutReply {
}
