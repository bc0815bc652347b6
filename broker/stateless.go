package broker

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/services"
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
			if notSent(err) && ctx.Err() == nil {
				continue
			}
			return nil, lastErr
		}
		if notRun(rep) && ctx.Err() == nil {
			if rep.GetErrorCode() == services.CodeUnavailable {
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
// instance of service not in exclude. When none has its link up yet but
// some are listed (the broker just started, the instance just appeared),
// it waits up to connectWait, never past ctx.
func (b *Broker) pick(ctx context.Context, service string, exclude []string) (*link.Peer, *platformpb.Instance, error) {
	peer, inst, err := b.pool.Pick(service, exclude...)
	if err == nil {
		return peer, inst, nil
	}
	wait := time.NewTimer(connectWait)
	defer wait.Stop()
	tick := time.NewTicker(pickPoll)
	defer tick.Stop()
	for {
		if b.synced.Load() && !b.hasCandidate(service, exclude) {
			return nil, nil, noInstance(service)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, nil, services.Errorf(services.CodeTimeout, "no live instance of %s before the deadline", service)
			}
			return nil, nil, noInstance(service)
		case <-wait.C:
			return nil, nil, noInstance(service)
		case <-tick.C:
		}
		if peer, inst, err = b.pool.Pick(service, exclude...); err == nil {
			return peer, inst, nil
		}
	}
}

// noInstance is the error for a service with no live instance.
func noInstance(service string) error {
	return services.Errorf(services.CodeUnavailable, "no live instance of %s", service)
}

// hasCandidate reports whether yellow lists a ready instance of service
// not in exclude, whatever the state of its link.
func (b *Broker) hasCandidate(service string, exclude []string) bool {
	for _, inst := range b.pool.Instances(service) {
		if inst.GetState() == platformpb.InstanceState_INSTANCE_STATE_READY && !containsString(exclude, inst.GetId()) {
			return true
		}
	}
	return false
}

// transportError turns a link error into the client's error.
func (b *Broker) transportError(ctx context.Context, r *request, inst *platformpb.Instance, err error) error {
	switch {
	case errors.Is(err, link.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return services.Errorf(services.CodeTimeout, "%s got no reply within %v", r.method, r.timeout)
	case ctx.Err() != nil:
		return services.Errorf(services.CodeUnavailable, "%s cancelled: the connection is closing", r.method)
	case errors.Is(err, link.ErrTooLarge):
		return services.Errorf(services.CodeBadRequest, "%s: request too large for the link", r.method)
	}
	return services.Errorf(services.CodeUnavailable, "%s: instance %s unreachable: %v", r.method, inst.GetId(), err)
}

// notSent reports whether a link error means the request never left: the
// link's queue was full, or it was not connected (link has no distinct
// error for that; its text is stable).
func notSent(err error) bool {
	if errors.Is(err, link.ErrOverloaded) {
		return true
	}
	return errors.Is(err, link.ErrUnavailable) && strings.HasSuffix(err.Error(), " not connected")
}

// notRun reports whether an error reply guarantees that the handler did
// not run: the instance is draining or at capacity.
func notRun(rep *platformpb.Envelope) bool {
	switch rep.GetErrorCode() {
	case services.CodeOverloaded:
		return true
	case services.CodeUnavailable:
		return rep.GetErrorMessage() == services.DrainingMessage
	}
	return false
}
