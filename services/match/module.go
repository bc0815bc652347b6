package match

import (
	"context"
	"strconv"
	"sync"

	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/services"
)

// Name is the match service's name in yellow and the prefix of its
// methods.
const Name = matchrpc.Service

// Module is the match service as a module: stateless (any number of
// instances share Redis), the model in Redis, directives to brokers on its
// PUB socket.
var Module = services.NewModule(services.Def[Options]{
	Name:    Name,
	Kind:    services.KindStateless,
	Summary: "matchmaking queues on Redis (the serverless matchmaker's model); a match ends as a room binding",
	Example: `match.Start '{"queue":"race31"}'`,
	Options: NewOptions,
	Needs:   services.Needs{Redis: true, Pub: true},
	Build:   build,
})

// MetaPresenceFeeds is the yellow meta key under which a match instance
// says how many brokers it hears presence from: a player whose broker it
// does not hear is cancelled only by the broker leaving yellow or the
// ticket's time limit.
const MetaPresenceFeeds = "presence_feeds"

// build makes the match service over env's Redis, placing rooms through
// env's Client.
func build(_ context.Context, env *services.Env, opts Options) (*services.Impl, error) {
	client := env.Client()
	pusher := &serverPusher{}
	svc, err := New(opts, Deps{
		Redis:   env.Redis,
		Pusher:  pusher,
		Rooms:   clientRooms{c: client},
		Cluster: poolCluster{c: client},
		Logger:  env.Log,
		Metrics: env.Metrics,
	})
	if err != nil {
		return nil, err
	}
	presence, err := env.FollowPresence(func(_ uint64, p *platformpb.Presence) { svc.HandlePresence(p) })
	if err != nil {
		svc.Close()
		return nil, err
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = presence.Close() }) }
	impl := &services.Impl{
		Handlers: svc.Handlers(),
		Attach: func(srv *services.Server) {
			pusher.srv.Store(srv)
			svc.Run()
		},
		Drain: func(ctx context.Context) error {
			stop()
			return svc.Drain(ctx)
		},
		Close: func() {
			stop()
			svc.Close()
		},
	}
	impl.Meta = func() map[string]string {
		m := svc.Meta()
		m[MetaPresenceFeeds] = strconv.Itoa(presence.Feeds())
		return m
	}
	return impl, nil
}
