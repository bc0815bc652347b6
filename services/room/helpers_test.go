package room

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	noonrouter "github.com/noonhq/noon/router"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/room/game"
	"github.com/noonhq/noon/yellow"
)

// testLogger and checkFor are the shared test helpers (internal/testenv).
var (
	testLogger = testenv.Logger
	checkFor   = testenv.CheckFor
)

// hb is the heartbeat of every test yellow, instance and link; a record
// expires, and a link dies, after deadBeats missed beats: half a second,
// yet not by accident on a busy 2-core machine running -race.
const (
	hb        = 100 * time.Millisecond
	deadBeats = 5
	expiry    = deadBeats * hb
	// testLeaseTTL makes failover take about a second.
	testLeaseTTL = time.Second
)

// cluster is a yellow, a Redis namespace and a store that room instances
// share.
type cluster struct {
	t       testing.TB
	y       *yellow.Yellow
	yellows []string
	rdb     redis.UniversalClient
	prefix  string
	store   Store
	games   *game.Registry
	log     *slog.Logger
	rewards Rewarder // the instances' Deps.Rewards
}

// newCluster starts a yellow; instances use store, real Redis under a
// prefix of their own, and the test games (race31 with turn timeout turn,
// and tally).
func newCluster(t testing.TB, store Store, turn time.Duration) *cluster {
	t.Helper()
	rdb := testenv.Redis(t)
	opts := yellow.NewOptions()
	opts.RouterAddr, opts.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	opts.Heartbeat, opts.TickInterval, opts.ExpireAfter = hb, hb, deadBeats
	log := testLogger(t)
	y, err := yellow.New(opts, log.With("yellow", ""))
	if err != nil {
		t.Fatalf("yellow.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- y.Main() }()
	t.Cleanup(func() { y.Exit(); <-done })
	prefix := "noontest:room:" + testenv.UniqueID(t) + ":"
	cleanRedis(t, rdb, prefix)
	return &cluster{
		t: t, y: y, yellows: []string{y.RouterEndpoint()}, rdb: rdb,
		prefix: prefix, store: store, games: testGames(turn), log: log,
	}
}

// cleanRedis deletes the keys under prefix when the test ends (the lease
// epochs are kept forever otherwise).
func cleanRedis(t testing.TB, rdb redis.UniversalClient, prefix string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
}

func (c *cluster) listed(id string) bool {
	for _, inst := range c.y.Registry().Query(Name) {
		if inst.GetId() == id {
			return true
		}
	}
	return false
}

// instance is one room instance: service and server.
type instance struct {
	svc  *Service
	srv  *services.Server
	reg  *yellow.Registration // killable instances register by hand
	id   string
	once sync.Once
}

func (c *cluster) options(mod func(*Options)) Options {
	o := NewOptions()
	o.LeaseTTL = testLeaseTTL
	o.RedisPrefix = c.prefix
	o.IdleEvict = time.Minute
	// Tests flood rooms from few users: the quotas and the member rate
	// have tests of their own, which turn them on.
	o.MemberRate = MemberRateOptions{}
	o.MaxRoomsPerUser, o.MaxCreatesPerUser = 0, 0
	if mod != nil {
		mod(&o)
	}
	return o
}

// start starts a room instance and waits until yellow lists it. A
// killable one registers with yellow itself, so that kill can abandon the
// registration as a dead process would.
func (c *cluster) start(mod func(*Options), killable bool) *instance {
	t := c.t
	t.Helper()
	svc, err := New(c.options(mod), Deps{
		Store: c.store, Redis: c.rdb, Yellows: c.yellows, Heartbeat: hb, Games: c.games, Logger: c.log, Rewards: c.rewards,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	so := services.NewOptions()
	so.Heartbeat = hb
	so.Yellows = c.yellows
	so.DrainTimeout = 5 * time.Second
	srv, err := svc.NewServer(so, c.log)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	in := &instance{svc: svc, srv: srv, id: srv.InstanceID()}
	if killable {
		in.reg = yellow.Register(yellow.ClientOptions{Yellows: c.yellows, Heartbeat: hb, Logger: c.log}, srv.Instance(), srv.Load, yellow.WithMeta(svc.Meta))
	} else {
		go func() { _ = srv.Main() }()
	}
	t.Cleanup(in.stop)
	checkFor(t, 5*time.Second, "instance listed in yellow", func() bool { return c.listed(in.id) })
	// And the instance's own view has synced.
	checkFor(t, 5*time.Second, "instance's watcher synced", func() bool { return svc.isListed(svc.att.Load(), in.id) && len(svc.watcher.Instances(Name)) > 0 })
	return in
}

// stop shuts the instance down (for cleanup).
func (in *instance) stop() {
	in.once.Do(func() {
		if in.reg != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = in.reg.Close(ctx)
			cancel()
		}
		in.srv.Exit()
		in.svc.Close()
	})
}

// kill stops the instance as a killed process: no drain, its yellow
// record left to expire, its leases left to expire.
func (in *instance) kill() {
	in.once.Do(func() {
		if in.reg == nil {
			panic("kill of an instance that is not killable")
		}
		in.reg.Abandon()
		in.srv.Exit()
		in.svc.stop(stopKill)
	})
}

// router routes room requests like the broker, through the one
// client-side router (package router, via services.Client.CallRaw): by the
// session's room binding to the cached or rendezvous owner, else to the
// least-loaded instance; it follows "moved", waits for a dead owner's
// lease to expire, and sends a draining instance's requests to the next
// owner.
type router struct {
	c *services.Client
}

func newRouter(c *cluster) *router {
	cl := services.NewClient(services.ClientOptions{
		Yellows: c.yellows, Heartbeat: hb, Logger: c.log,
		Peer: link.PeerOptions{HeartbeatInterval: hb, DeadAfter: expiry, BackoffMax: hb, Logger: c.log},
	})
	c.t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.Pool().WaitSynced(ctx); err != nil {
		c.t.Fatalf("router pool never synced: %v", err)
	}
	return &router{c: cl}
}

// isLive reports whether the router's view lists id as a ready room
// instance.
func (r *router) isLive(id string) bool { return r.c.Pool().Ready(Name, id) }

func (r *router) do(ctx context.Context, sess *platformpb.Session, method string, payload []byte) (*platformpb.Envelope, error) {
	t := noonrouter.Target{Service: Name, Stateful: true, Key: BindingKey, Value: sess.GetBindings()[BindingKey]}
	return r.c.CallRaw(ctx, t, method, sess, payload)
}

// client is one player's session, used by one goroutine at a time.
type client struct {
	r    *router
	sess *platformpb.Session
}

func (r *router) client(user string) *client {
	return &client{r: r, sess: &platformpb.Session{Id: "s-" + user, UserId: user, Bindings: map[string]string{}}}
}

func (c *client) room() string { return c.sess.Bindings[BindingKey] }

// call calls method with req, applying the reply's bindings to the
// session, and decodes the reply into resp (nil: ignore it).
func (c *client) call(ctx context.Context, method string, req, resp thrift.TStruct) error {
	payload, err := thriftx.Marshal(req)
	if err != nil {
		return err
	}
	rep, err := c.r.do(ctx, c.sess, method, payload)
	if rep != nil {
		for _, b := range rep.GetBindings() {
			if b.GetUnset() {
				delete(c.sess.Bindings, b.GetKey())
			} else {
				c.sess.Bindings[b.GetKey()] = b.GetValue()
			}
		}
	}
	if err != nil {
		return err
	}
	if resp != nil {
		return thriftx.Unmarshal(rep.GetPayload(), resp)
	}
	return nil
}

func (c *client) mustCall(t testing.TB, method string, req, resp thrift.TStruct) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.call(ctx, method, req, resp); err != nil {
		t.Fatalf("%s %s: %v", c.sess.UserId, method, err)
	}
}

// act sends a tally action and returns the event seq it got.
func (c *client) act(ctx context.Context, action string) (int64, error) {
	var rep roompb.ActionReply
	err := c.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte(action)}, &rep)
	return rep.Seq, err
}

// collector subscribes to a room's events on instances' PUB sockets and
// keeps them in arrival order.
type collector struct {
	mu     sync.Mutex
	events []*roompb.Event
	probes int
	subs   []*link.Subscriber
}

func collect(t testing.TB, log *slog.Logger, room string, pubs ...string) *collector {
	c := &collector{}
	for _, ep := range pubs {
		s := link.NewSubscriber(ep, link.SubOptions{DeadAfter: expiry, BackoffMax: hb, Logger: log}, c.deliver)
		if err := s.Subscribe(Topic(room)); err != nil {
			t.Fatal(err)
		}
		c.subs = append(c.subs, s)
		t.Cleanup(func() { _ = s.Close() })
	}
	return c
}

func (c *collector) deliver(_ string, ev *platformpb.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.GetType() != EventType {
		c.probes++
		return
	}
	var e roompb.Event
	if err := thriftx.Unmarshal(ev.GetPayload(), &e); err != nil {
		panic(err)
	}
	c.events = append(c.events, &e)
}

func (c *collector) snapshot() ([]*roompb.Event, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events), c.probes
}

// waitSubscribed publishes probes on room's topic from srv until every
// collector has seen one: their subscriptions are in place.
func waitSubscribed(t testing.TB, srv *services.Server, room string, cs ...*collector) {
	t.Helper()
	checkFor(t, 10*time.Second, "subscribers see probes", func() bool {
		_ = srv.Publish(Topic(room), "probe", nil)
		for _, c := range cs {
			if _, n := c.snapshot(); n == 0 {
				return false
			}
		}
		return true
	})
}

// roomState calls room.Get for room through c.
func getState(t testing.TB, c *client, room string) *roompb.RoomState {
	t.Helper()
	var st roompb.RoomState
	c.mustCall(t, roomrpc.MethodGet, &roompb.GetRequest{RoomID: &room}, &st)
	return &st
}

// tallyOf decodes a tally room's game state.
func tallyOf(t testing.TB, st *roompb.RoomState) *tallyState {
	t.Helper()
	ts, err := decodeTally(st.GameState)
	if err != nil {
		t.Fatalf("tally state: %v", err)
	}
	return ts
}

// startTally creates a tally room for players (the first creates it, the
// others join), readies everyone and starts the game; it returns the
// clients and the room id.
func startTally(t testing.TB, r *router, max int32, players ...string) ([]*client, string) {
	t.Helper()
	return startGame(t, r, tallyName, max, players...)
}

// startGame is startTally for any game.
func startGame(t testing.TB, r *router, game string, max int32, players ...string) ([]*client, string) {
	t.Helper()
	cs := make([]*client, len(players))
	for i, p := range players {
		cs[i] = r.client(p)
	}
	var st roompb.RoomState
	cs[0].mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: game + " room", Game: game, MaxPlayers: max}, &st)
	id := st.ID
	if cs[0].room() != id {
		t.Fatalf("create did not bind the room: %v", cs[0].sess.Bindings)
	}
	for _, c := range cs[1:] {
		c.mustCall(t, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: id}, nil)
	}
	for _, c := range cs {
		c.mustCall(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	}
	cs[0].mustCall(t, roomrpc.MethodStart, &roompb.StartRequest{}, &st)
	if st.Status != StatusPlaying {
		t.Fatalf("status after start = %s", st.Status)
	}
	return cs, id
}

// ownerIn returns the instance of ins whose service has room id active.
func ownerIn(id string, ins ...*instance) *instance {
	for _, in := range ins {
		in.svc.mu.Lock()
		_, ok := in.svc.rooms[id]
		in.svc.mu.Unlock()
		if ok {
			return in
		}
	}
	return nil
}
