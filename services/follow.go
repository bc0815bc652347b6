package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// maxFollowTopics bounds FollowOptions.Topics: a follower takes a feed or
// two of the platform's (wire.TopicPresence); 64 is a mistake's bound.
const maxFollowTopics = 64

// FollowOptions configures a Follower.
type FollowOptions struct {
	// Yellows are the ROUTER endpoints of every yellow the instances are
	// discovered from.
	Yellows []string
	// Heartbeat is the platform's heartbeat (default 1 s): yellow's, and
	// the publishers' own, so a feed silent for three of them is
	// redialled.
	Heartbeat time.Duration
	// TLS, when set, runs mutual TLS on the links to yellow and to the
	// publishers, each of which must hold the certificate its record calls
	// for (router.ExpectedIdentity: a broker's, for service "broker"); the
	// publisher admits the follower by its certificate's role (a broker's
	// PUB socket admits services, a service's admits brokers only). Nil:
	// plain links.
	TLS *pki.Credentials
	// Log receives the follower's logs; nil discards them.
	Log *slog.Logger
	// Service is the service whose instances are followed ("broker").
	Service string
	// Topics are the topics followed on every instance's PUB socket
	// (wire.TopicPresence); 1 to 64 of them.
	Topics []string
	// OnLeave, when set, is called with the record of an instance that was
	// followed and left yellow (deregistered, or expired after it died),
	// on the follower's own goroutine: it publishes nothing more. A broker
	// that left has no connections any more, and may not have published
	// every leave (it crashed), so a presence follower takes its players'
	// connections for gone from then on.
	OnLeave func(inst *platformpb.Instance)
}

// validate checks the options, naming each bad field.
func (o FollowOptions) validate() error {
	var errs config.Errors
	if len(o.Yellows) == 0 {
		errs.Addf("yellows", "at least one yellow endpoint is required: the instances are found there")
	}
	for i, y := range o.Yellows {
		if err := wire.ValidateDialEndpoint(y); err != nil {
			errs.Addf(fmt.Sprintf("yellows[%d]", i), "%v", err)
		}
	}
	if o.Heartbeat != 0 {
		errs.Add(config.Range("heartbeat", o.Heartbeat, minHeartbeat, maxHeartbeat))
	}
	if err := wire.ValidateName(o.Service); err != nil {
		errs.Addf("service", "%v", err)
	}
	if len(o.Topics) == 0 || len(o.Topics) > maxFollowTopics {
		errs.Addf("topics", "1 to %d topics, got %d", maxFollowTopics, len(o.Topics))
	}
	for i, t := range o.Topics {
		if err := link.CheckTopic(t); err != nil {
			errs.Addf(fmt.Sprintf("topics[%d]", i), "%v", err)
		}
	}
	if err := errs.Err(); err != nil {
		return fmt.Errorf("services: follow: %w", err)
	}
	return nil
}

// Follower follows the PUB sockets of every instance of one service
// listed in yellow, on a few topics, and hands each event to a function:
// a service's way to hear the platform's own feeds, such as the brokers'
// presence (service "broker", topic wire.TopicPresence), which the
// matchmaker follows to cancel the tickets of players who left. Instances
// are followed as they appear in yellow (draining ones too: they still
// publish) and dropped as they leave. It is the broker's push hub's core
// (router.Subscribers): one link.Subscriber per instance, redialled when
// it fails or goes silent, expecting over TLS the publisher's identity
// from its record.
//
// Publishing is best effort: an event published while the link is down,
// or before the subscription reached the publisher, is lost. Feeds and
// Changed tell when the links are up.
type Follower struct {
	opts  FollowOptions
	w     *yellow.Watcher
	ownsW bool
	subs  *router.Subscribers

	cancel    context.CancelFunc
	done      chan struct{} // closed when run returns
	closeOnce sync.Once
}

// NewFollower starts following the instances of opts.Service, discovered
// from opts.Yellows, and returns at once. fn gets every event of
// opts.Topics with the record of the instance that published it (which fn
// must not modify); it runs on the instance's subscriber goroutine, so
// events of one instance come in order, one at a time, and those of
// different instances concurrently; it must not block for long (a
// subscriber that stops reading is disconnected by the publisher).
func NewFollower(opts FollowOptions, fn func(from *platformpb.Instance, topic string, ev *platformpb.Event)) (*Follower, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errors.New("services: follow: no function to call")
	}
	w := yellow.Watch(yellow.ClientOptions{
		Yellows:   opts.Yellows,
		Heartbeat: opts.Heartbeat,
		TLS:       opts.TLS,
		Logger:    opts.Log,
	})
	return followWatcher(w, true, opts, fn), nil
}

// followWatcher returns a Follower over w's view; ownsW says whether Close
// closes w. The Follower stops on its own when w closes.
func followWatcher(w *yellow.Watcher, ownsW bool, opts FollowOptions, fn func(*platformpb.Instance, string, *platformpb.Event)) *Follower {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	log := opts.Log.With("component", "follower", "follow", opts.Service)
	f := &Follower{opts: opts, w: w, ownsW: ownsW, done: make(chan struct{})}
	f.subs = router.NewSubscribers(link.SubOptions{
		IdentityPrefix: "follow-" + opts.Service + "-",
		DeadAfter:      link.DefaultDeadIntervals * opts.Heartbeat,
		TLS:            opts.TLS,
		Logger:         log,
	}, func(inst *platformpb.Instance) (router.Feed, bool) {
		if inst.GetService() != opts.Service {
			return router.Feed{}, false
		}
		return router.Feed{Deliver: func(topic string, ev *platformpb.Event) { fn(inst, topic, ev) }}, true
	})
	for _, t := range opts.Topics {
		_ = f.subs.Subscribe(t) // validated
	}
	var ctx context.Context
	ctx, f.cancel = context.WithCancel(context.Background())
	go f.run(ctx)
	return f
}

// run follows the view: at every change of it, the subscribers follow
// the service's instances. It returns at Close, or when the watcher closes
// (the Client of an Env, closed with its instance).
func (f *Follower) run(ctx context.Context) {
	defer close(f.done)
	followed := make(map[string]*platformpb.Instance) // by id, with a pub: for OnLeave
	// WaitFor re-checks at every change of the view; the check is the
	// sync, and it never says ready.
	_ = f.w.WaitFor(ctx, func() bool {
		insts := f.w.Instances(f.opts.Service)
		f.subs.Sync(insts)
		if f.opts.OnLeave != nil {
			now := make(map[string]*platformpb.Instance, len(insts))
			for _, inst := range insts {
				if inst.GetPub() != "" {
					now[inst.GetId()] = inst
				}
			}
			for id, inst := range followed {
				if now[id] == nil {
					f.opts.OnLeave(inst)
				}
			}
			followed = now
		}
		return false
	})
	f.subs.Close()
}

// Feeds returns the number of instances followed with a live link.
func (f *Follower) Feeds() int { return f.subs.Live(nil) }

// Changed returns a channel closed at the next change of what is
// followed: an instance followed or dropped, a link that came up. Take it
// before looking (Feeds), then wait on it.
func (f *Follower) Changed() <-chan struct{} { return f.subs.Changed() }

// WaitFeeds waits until at least n instances are followed with a live
// link, ctx ends (its error), or the Follower stops (ErrClosed). It wakes
// on Changed; it does not poll.
func (f *Follower) WaitFeeds(ctx context.Context, n int) error {
	for {
		changed := f.Changed()
		if f.Feeds() >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-f.done:
			return ErrClosed
		}
	}
}

// Close stops following: the links are closed, and fn is not called once
// it returns. It is idempotent and returns nil.
func (f *Follower) Close() error {
	f.closeOnce.Do(func() {
		f.cancel()
		<-f.done
		if f.ownsW {
			f.w.Close()
		}
	})
	return nil
}

// Follow starts a Follower of the instances of service on topics with the
// instance's yellows, heartbeat and certificate, and its logger (see
// NewFollower). It follows yellow through the Env's Client and stops with
// it, when the instance stops; Close stops it sooner.
func (e *Env) Follow(service string, topics []string, fn func(from *platformpb.Instance, topic string, ev *platformpb.Event)) (*Follower, error) {
	opts := FollowOptions{
		Yellows:   e.Options.Yellows,
		Heartbeat: e.Options.Heartbeat,
		TLS:       e.Options.TLS,
		Log:       e.Log,
		Service:   service,
		Topics:    topics,
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errors.New("services: follow: no function to call")
	}
	return followWatcher(e.Client().Pool().Watcher(), false, opts, fn), nil
}

// BrokerService is the brokers' service name in yellow, whose PUB sockets
// carry the platform's presence events.
const BrokerService = "broker"

// FollowPresence follows every broker's presence events (wire.TopicPresence)
// and hands each to fn with the event's sequence number. The presence's
// Broker is set to the id of the broker that published it, from its yellow
// record (which, over TLS, its certificate vouches for): a broker cannot
// speak for another's connections. The Follower stops with the instance.
func (e *Env) FollowPresence(fn func(seq uint64, p *platformpb.Presence)) (*Follower, error) {
	return e.Follow(BrokerService, []string{wire.TopicPresence}, func(from *platformpb.Instance, _ string, ev *platformpb.Event) {
		if p := DecodePresence(ev); p != nil {
			p.Broker = from.GetId()
			fn(ev.GetSeq(), p)
		}
	})
}

// DecodePresence decodes a presence event's payload; nil for an event of
// another type, one that does not decode, or one without a user.
func DecodePresence(ev *platformpb.Event) *platformpb.Presence {
	if ev.GetType() != wire.EventPresence {
		return nil
	}
	var p platformpb.Presence
	if proto.Unmarshal(ev.GetPayload(), &p) != nil || p.GetUserId() == "" {
		return nil
	}
	return &p
}
