package services

import (
	"context"
	"errors"

	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
)

// StoreError returns what a handler of service answers for err, the
// failure of a store (Postgres, Redis) call made under ctx, the request's
// context:
//   - nil, and an error carrying a *wire.Error, unchanged;
//   - when ctx itself has ended, timeout (deadline) or unavailable
//     (canceled): the caller stopped waiting, the store may be fine;
//   - a store outage (stores.IsOutage: unreachable, connection lost, the
//     store's own deadline) unavailable "<service> store unavailable",
//     which a client retries;
//   - anything else unchanged: a bug, answered internal (and logged) by
//     the server.
//
// Every service maps its store errors through it, so that an outage is
// never answered internal, and no store error's text reaches a client.
func StoreError(ctx context.Context, service string, err error) error {
	if err == nil {
		return nil
	}
	var we *wire.Error
	if errors.As(err, &we) {
		return err
	}
	if ctx != nil {
		switch ctx.Err() {
		case context.DeadlineExceeded:
			return wire.Errorf(wire.CodeTimeout, "deadline passed waiting for the %s store", service)
		case context.Canceled:
			return wire.Errorf(wire.CodeUnavailable, "canceled waiting for the %s store", service)
		}
	}
	if stores.IsOutage(err) {
		return wire.Errorf(wire.CodeUnavailable, "%s store unavailable", service)
	}
	return err
}
