package broker

import (
	"context"
	"errors"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// pickPoll is how often a request waiting for a link re-checks the pool: a
// link comes up within a few milliseconds of its dial.
const pickPoll = 2 * time.Millisecond

// callStateless sends r to the least-loaded live instance of its service.
// A request that certainly did not reach or run on an instance (the link
// was not connected, its queue was full, the instance is draining or at
// capacity) is tried once more on another instance. It returns the reply
// envelope (which may carry an error code) or a transport error.
func (b *Broker) callStateless(ctx context.Context, r *request) (*platformpb.Envelope, error) {
	service := r.route.Service
	env := b.envelope(r)
	var tried []string
	var lastErr error
	var lastRep *platformpb.Envelope
	for attempt := 0; attempt < 2; attempt++ {
		peer, inst, err := b.pick(ctx, service, tried)
		if err != nil {
			if lastRep != nil {
				return lastRep, nil
			}
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, err
		}
		tried = append(tried, inst.GetId())
		rep, err := peer.Call(ctx, env)
		if err != nil {
			lastErr = b.transportError(ctx, r, inst, err)
			if services.NotSent(err) && ctx.Err() == nil {
				continue
			}
			return nil, lastErr
		}
		if wire.NotRun(rep) && ctx.Err() == nil {
			if rep.GetErrorCode() == wire.CodeUnavailable {
				b.pool.MarkDraining(inst.GetId())
			}
			lastRep, lastErr = rep, nil
			continue
		}
		return rep, nil
	}
	if lastRep != nil {
		return lastRep, nil
	}
	return nil, lastErr
}

// pick returns the link to, and the record of, the least-loaded live
// instance of service not in exclude, waiting up to connectWait for links
// that are still coming up.
func (b *Broker) pick(ctx context.Context, service string, exclude []string) (*link.Peer, *platformpb.Instance, error) {
	return b.pool.PickWait(ctx, service, connectWait, exclude...)
}

// noInstance is the error for a service with no live instance.
func noInstance(service string) error {
	return wire.Errorf(wire.CodeUnavailable, "no live instance of %s", service)
}

// transportError turns a link error into the client's error.
func (b *Broker) transportError(ctx context.Context, r *request, inst *platformpb.Instance, err error) error {
	switch {
	case errors.Is(err, link.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.CodeTimeout, "%s got no reply within %v", r.method, r.timeout)
	case ctx.Err() != nil:
		return wire.Errorf(wire.CodeUnavailable, "%s cancelled: the connection is closing", r.method)
	case errors.Is(err, link.ErrTooLarge):
		return wire.Errorf(wire.CodeBadRequest, "%s: request too large for the link", r.method)
	}
	return wire.Errorf(wire.CodeUnavailable, "%s: instance %s unreachable: %v", r.method, inst.GetId(), err)
}
