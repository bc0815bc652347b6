package match

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/redis/go-redis/v9"

	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sent is one directive a fakePusher recorded.
type sent struct {
	broker string
	d      *platformpb.SessionDirective
}

// fakePusher records directives.
type fakePusher struct {
	mu   sync.Mutex
	sent []sent
}

func (p *fakePusher) PublishSession(broker string, ds ...*platformpb.SessionDirective) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range ds {
		p.sent = append(p.sent, sent{broker: broker, d: d})
	}
	return nil
}

// all returns the recorded directives.
func (p *fakePusher) all() []sent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

// pushed returns the tickets of the pushes of type typ to user, decoded.
func (p *fakePusher) pushed(t testing.TB, typ, user string) []sentTicket {
	t.Helper()
	var out []sentTicket
	for _, s := range p.all() {
		if s.d.GetPushType() != typ || s.d.GetUserId() != user {
			continue
		}
		out = append(out, sentTicket{sent: s, ticket: decodePush(t, typ, s.d.GetPushPayload())})
	}
	return out
}

// sentTicket is a recorded directive and the ticket its push carries.
type sentTicket struct {
	sent
	ticket *matchpb.Ticket
}

// decodePush decodes a push payload of type typ and returns its ticket.
func decodePush(t testing.TB, typ string, b []byte) *matchpb.Ticket {
	t.Helper()
	var ev interface {
		thrift.TStruct
		GetTicket() *matchpb.Ticket
	}
	switch typ {
	case PushSearching:
		ev = &matchpb.Searching{}
	case PushMatched:
		ev = &matchpb.Matched{}
	case PushTimedOut:
		ev = &matchpb.TimedOut{}
	case PushCancelled:
		ev = &matchpb.Cancelled{}
	default:
		t.Fatalf("push type %q", typ)
	}
	if err := thriftx.Unmarshal(b, ev); err != nil {
		t.Fatalf("%s payload: %v", typ, err)
	}
	return ev.GetTicket()
}

// created is one room the fakeRooms made.
type created struct {
	id      string
	members []string
	game    string
}

// fakeRooms creates rooms idempotently by id, as room.CreateMatched does:
// the same members again answer created=false, other members conflict.
type fakeRooms struct {
	mu    sync.Mutex
	rooms map[string][]string
	made  []created // created=true calls, in order
	calls int
	// hook, when set, runs before each call; an error is returned as the
	// call's (the room is not created).
	hook func(ctx context.Context, req *roompb.CreateMatchedRequest) error
	// after, when set, runs after the room is created; an error is
	// returned as the call's (the room exists).
	after func(ctx context.Context, req *roompb.CreateMatchedRequest) error
}

func newFakeRooms() *fakeRooms { return &fakeRooms{rooms: map[string][]string{}} }

func (r *fakeRooms) CreateMatched(ctx context.Context, req *roompb.CreateMatchedRequest) (*roompb.CreateMatchedReply, error) {
	if r.hook != nil {
		if err := r.hook(ctx, req); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	r.calls++
	reply := &roompb.CreateMatchedReply{State: &roompb.RoomState{ID: req.RoomID}}
	if m, ok := r.rooms[req.RoomID]; ok {
		r.mu.Unlock()
		if !slices.Equal(m, req.Members) {
			return nil, wire.Errorf(wire.CodeConflict, "room %s exists with other members", req.RoomID)
		}
		return reply, r.runAfter(ctx, req)
	}
	r.rooms[req.RoomID] = slices.Clone(req.Members)
	r.made = append(r.made, created{id: req.RoomID, members: slices.Clone(req.Members), game: req.Game})
	r.mu.Unlock()
	reply.Created = true
	return reply, r.runAfter(ctx, req)
}

func (r *fakeRooms) runAfter(ctx context.Context, req *roompb.CreateMatchedRequest) error {
	if r.after != nil {
		return r.after(ctx, req)
	}
	return nil
}

func (r *fakeRooms) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func (r *fakeRooms) creations() []created {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.made)
}

// fakeCluster is a settable view of room instances and brokers.
type fakeCluster struct {
	mu      sync.Mutex
	rooms   []RoomInstance
	brokers []string
	synced  bool
	changed chan struct{}
}

// newFakeCluster returns a view with two room instances with plenty of
// room and brokers b1..b3.
func newFakeCluster() *fakeCluster {
	return &fakeCluster{
		rooms:   []RoomInstance{{ID: "room-1", Free: 100_000, Known: true}, {ID: "room-2", Free: 100_000, Known: true}},
		brokers: []string{"b1", "b2", "b3"},
		synced:  true,
		changed: make(chan struct{}),
	}
}

func (c *fakeCluster) RoomInstances() []RoomInstance {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.rooms)
}

func (c *fakeCluster) LiveBrokers() ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.brokers), c.synced
}

func (c *fakeCluster) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// set changes the view and wakes Changed's waiters.
func (c *fakeCluster) set(f func(c *fakeCluster)) {
	c.mu.Lock()
	f(c)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// env is a test's Redis, prefix, clock and fakes, shared by the service
// instances it makes.
type env struct {
	t       testing.TB
	rdb     redis.UniversalClient
	prefix  string
	clock   *fakeClock
	pusher  *fakePusher
	rooms   *fakeRooms
	cluster *fakeCluster
	opts    Options
}

// newEnv returns an env on the test Redis with a prefix of its own, and
// opts holding the one queue q (defaults otherwise).
func newEnv(t testing.TB, qs ...QueueOptions) *env {
	t.Helper()
	rdb := testenv.Redis(t)
	e := newEnvOn(t, rdb, qs...)
	t.Cleanup(func() { e.flush() })
	return e
}

// newEnvOn is newEnv on rdb.
func newEnvOn(t testing.TB, rdb redis.UniversalClient, qs ...QueueOptions) *env {
	opts := NewOptions()
	opts.RedisPrefix = "noontest:" + testenv.UniqueID(t) + ":" + randomID()[:6] + ":"
	opts.Queues = qs
	return &env{t: t, rdb: rdb, prefix: opts.RedisPrefix, clock: newFakeClock(), pusher: &fakePusher{},
		rooms: newFakeRooms(), cluster: newFakeCluster(), opts: opts}
}

// flush deletes the env's keys.
func (e *env) flush() {
	ctx := context.Background()
	for _, k := range e.keys() {
		e.rdb.Del(ctx, k)
	}
}

// keys lists the env's keys.
func (e *env) keys() []string {
	ctx := context.Background()
	var out []string
	iter := e.rdb.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	slices.Sort(out)
	return out
}

// snapshot returns every key of the env with its DUMP, to compare.
func (e *env) snapshot() map[string]string {
	ctx := context.Background()
	out := map[string]string{}
	for _, k := range e.keys() {
		v, err := e.rdb.Dump(ctx, k).Result()
		if err != nil {
			e.t.Fatalf("dump %s: %v", k, err)
		}
		out[k] = v
	}
	return out
}

// service makes an instance over the env.
func (e *env) service(name string) *Service {
	e.t.Helper()
	s, err := New(e.opts, Deps{
		Redis: e.rdb, Pusher: e.pusher, Rooms: e.rooms, Cluster: e.cluster,
		Now: e.clock.Now, InstanceID: name, Logger: testenv.Logger(e.t),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.Close)
	return s
}

// player is a client of one user on one connection of a broker.
type player struct {
	user, conn, broker string
	bindings           map[string]string
}

func newPlayer(user, broker string) *player {
	return &player{user: user, conn: "c-" + user, broker: broker, bindings: map[string]string{}}
}

// call calls method on s as p, applying the bindings the reply sets.
func (p *player) call(s *Service, method string, req, resp thrift.TStruct) error {
	return callAs(s, &platformpb.Session{Id: p.conn, UserId: p.user, Broker: p.broker, Bindings: p.bindings}, method, req, resp, p.bindings)
}

// callAs calls method on s from session pb (nil: no client, a platform
// process or operator).
func callAs(s *Service, pb *platformpb.Session, method string, req, resp thrift.TStruct, bindings map[string]string) error {
	payload, err := thriftx.Marshal(req)
	if err != nil {
		return err
	}
	sess := services.NewSession(pb)
	out, err := s.Handlers()[method](context.Background(), sess, payload)
	binds, _ := sess.Changes()
	for _, b := range binds {
		if bindings == nil {
			continue
		}
		if b.GetUnset() {
			delete(bindings, b.GetKey())
		} else {
			bindings[b.GetKey()] = b.GetValue()
		}
	}
	if err != nil {
		return err
	}
	if resp != nil {
		return thriftx.Unmarshal(out, resp)
	}
	return nil
}

// start starts a ticket for p in queue with the given properties.
func (p *player) start(t testing.TB, s *Service, queue string, strs map[string]string, nums map[string]float64) *matchpb.Ticket {
	t.Helper()
	var rep matchpb.StartReply
	if err := p.call(s, matchrpc.MethodStart, &matchpb.StartRequest{Queue: queue, Strings: strs, Numbers: nums}, &rep); err != nil {
		t.Fatalf("%s: Start: %v", p.user, err)
	}
	return rep.Ticket
}

// status returns p's ticket tid.
func (p *player) status(t testing.TB, s *Service, tid string) *matchpb.Ticket {
	t.Helper()
	var rep matchpb.StatusReply
	if err := p.call(s, matchrpc.MethodStatus, &matchpb.StatusRequest{Ticket: tid}, &rep); err != nil {
		t.Fatalf("%s: Status: %v", p.user, err)
	}
	return rep.Ticket
}

// tick runs s's tick and fails the test on an error.
func tick(t testing.TB, s *Service) {
	t.Helper()
	if err := s.Tick(context.Background()); err != nil {
		t.Fatalf("tick: %v", err)
	}
}

// wantCode fails unless err carries code.
func wantCode(t testing.TB, what string, err error, code string) {
	t.Helper()
	if err == nil || wire.CodeOf(err) != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

// zcard returns the size of q's sorted set name.
func (e *env) zcard(queue, name string) int64 {
	n, err := e.rdb.ZCard(context.Background(), e.prefix+"{"+queue+"}:"+name).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// playerKeys lists the Player:<user> keys of queue left in Redis.
func (e *env) playerKeys(queue string) []string {
	var out []string
	for _, k := range e.keys() {
		if strings.HasPrefix(k, e.prefix+"{"+queue+"}:"+keyPlayer) {
			out = append(out, k)
		}
	}
	return out
}

// errKilled is a fake failure.
var errKilled = errors.New("killed")

// users returns n user ids with prefix.
func users(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}
