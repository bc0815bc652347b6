package client

import "github.com/noonhq/noon/wire"

// Error is an error reply from the broker: "<code>: <message>" on the wire,
// with code from a small stable set ("not_found", "unauthenticated",
// "rate_limited", "unavailable", ...; see the README, The client wire).
// errors.Is(err, &client.Error{Code: "not_found"}) matches any error reply
// with that code.
type Error = wire.Error
