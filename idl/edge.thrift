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

// Edge is the broker's own API: the broker answers it itself.
service Edge {
  // Hello is the optional first request of a connection.
  HelloReply Hello(1: HelloRequest req)
}
