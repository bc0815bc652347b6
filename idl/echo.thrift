// The echo service: a newcomer's first call, and what tests and benchmarks
// use. echo.Echo takes and returns raw bytes (no struct): the reply payload
// is the request payload, unchanged.
namespace go echo

// SleepRequest asks echo.Sleep to wait ms milliseconds, then reply.
struct SleepRequest {
  1: i32 ms
}

struct SleepReply {
  1: i32 slept_ms
}

// FailRequest asks echo.Fail to return the error code and message.
struct FailRequest {
  1: string code
  2: string message
}

// Echo is the echo service's API: what a newcomer calls first.
service Echo {
  // Echo replies with the request payload, raw bytes, unchanged.
  binary Echo(1: binary payload)
  // Sleep waits SleepRequest.ms milliseconds, then replies.
  SleepReply Sleep(1: SleepRequest req)
  // Fail returns the error FailRequest asks for (its reply is never sent).
  SleepReply Fail(1: FailRequest req)
}
