package friends

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	friendspb "github.com/noonhq/noon/idl/gen/friends"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
}

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

// fakeDir is a user directory: ids, and usernames (ignoring case).
type fakeDir struct {
	mu    sync.Mutex
	names map[string]string // lowercase username -> id
	ids   map[string]bool
	err   error // when set, every Lookup fails with it
}

func newDir() *fakeDir { return &fakeDir{names: map[string]string{}, ids: map[string]bool{}} }

func (d *fakeDir) add(id, name string) {
	d.mu.Lock()
	d.ids[id] = true
	d.names[strings.ToLower(name)] = id
	d.mu.Unlock()
}

func (d *fakeDir) Lookup(_ context.Context, username, userID string) (string, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return "", false, d.err
	}
	if username != "" {
		id, ok := d.names[strings.ToLower(username)]
		return id, ok, nil
	}
	return userID, d.ids[userID], nil
}

// pushed is one push the service published.
type pushed struct {
	user, typ string
	payload   []byte
}

// String is "<type> to <user>", what tests compare.
func (p pushed) String() string { return p.typ + " to " + p.user }

// fakePub records pushes.
type fakePub struct {
	mu  sync.Mutex
	all []pushed
	ch  chan struct{} // closed and replaced at each push
}

func newPub() *fakePub { return &fakePub{ch: make(chan struct{})} }

func (p *fakePub) Publish(topic, eventType string, payload []byte) error {
	user, ok := strings.CutPrefix(topic, wire.KeyUser+"/")
	if !ok {
		return fmt.Errorf("push to topic %q", topic)
	}
	p.mu.Lock()
	p.all = append(p.all, pushed{user: user, typ: eventType, payload: payload})
	close(p.ch)
	p.ch = make(chan struct{})
	p.mu.Unlock()
	return nil
}

// take returns the pushes since the last take.
func (p *fakePub) take() []pushed {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.all
	p.all = nil
	return out
}

// strings returns the pushes since the last take as strings.
func (p *fakePub) strings() []string {
	var out []string
	for _, x := range p.take() {
		out = append(out, x.String())
	}
	return out
}

// fakeBrokers is a yellow view of brokers the test sets.
type fakeBrokers struct {
	mu   sync.Mutex
	live []string
	ok   bool
	ch   chan struct{}
}

func newBrokers(live ...string) *fakeBrokers {
	return &fakeBrokers{live: live, ok: true, ch: make(chan struct{})}
}

func (b *fakeBrokers) set(live ...string) {
	b.mu.Lock()
	b.live = live
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

func (b *fakeBrokers) LiveBrokers() ([]string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.live...), b.ok
}

func (b *fakeBrokers) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

// env is a friends service (or several, sharing stores) with fakes.
type env struct {
	t       testing.TB
	store   Store
	rdb     redis.UniversalClient
	clock   *fakeClock
	dir     *fakeDir
	pub     *fakePub
	brokers *fakeBrokers
	prefix  string
	opts    Options
}

// newEnv returns an env over store on the real Redis, under a key prefix
// of its own deleted when the test ends.
func newEnv(t testing.TB, store Store) *env {
	t.Helper()
	rdb := testenv.Redis(t)
	e := newEnvOn(t, store, rdb)
	t.Cleanup(func() { deleteKeys(rdb, e.prefix) })
	return e
}

// newEnvOn returns an env over store and rdb.
func newEnvOn(t testing.TB, store Store, rdb redis.UniversalClient) *env {
	opts := NewOptions()
	opts.RedisPrefix = "test:" + testenv.UniqueID(t) + ":friends:"
	return &env{
		t: t, store: store, rdb: rdb, clock: newClock(), dir: newDir(), pub: newPub(),
		brokers: newBrokers("b1", "b2"), prefix: opts.RedisPrefix, opts: opts,
	}
}

// deleteKeys deletes every key under prefix.
func deleteKeys(rdb redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return
		}
		if len(keys) > 0 {
			rdb.Unlink(ctx, keys...)
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// service returns a new instance over the env's stores and fakes; it is
// not Run: tests drive the tick and presence by hand.
func (e *env) service() *Service {
	e.t.Helper()
	s, err := New(e.opts, Deps{
		Store: e.store, Redis: e.rdb, Users: e.dir, Publisher: e.pub, Brokers: e.brokers,
		Now: e.clock.Now, Logger: testenv.Logger(e.t),
	})
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(s.Close)
	return s
}

// users registers n users in the directory: ids "<prefix>-<i>", usernames
// "Name<i>-<prefix>".
func (e *env) users(n int) []string {
	id := testenv.UniqueID(e.t)
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", id, i)
		e.dir.add(out[i], fmt.Sprintf("Name%d-%s", i, id))
	}
	return out
}

// sessionOf is a client session of user on connection conn.
func sessionOf(user string) *services.Session {
	return services.NewSession(&platformpb.Session{Id: "c-" + user, UserId: user, Broker: "b1"})
}

// call runs method's handler with req as user, and decodes the reply into
// rep (which may be nil).
func call(t testing.TB, s *Service, sess *services.Session, method string, req, rep thrift.TStruct) error {
	t.Helper()
	b, err := thriftx.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.Handlers()[method](services.ContextWithSession(ctx, sess), sess, b)
	if err != nil {
		return err
	}
	if rep != nil {
		if err := thriftx.Unmarshal(out, rep); err != nil {
			t.Fatalf("%s reply: %v", method, err)
		}
	}
	return nil
}

// relation returns user's relation with other ("none" or the state).
func relation(t testing.TB, st Store, user, other string) string {
	t.Helper()
	var e Edge
	var ok bool
	err := st.Update(context.Background(), user, other, func(tx Tx) error {
		var err error
		e, ok, err = tx.Get(context.Background(), user, other)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return "none"
	}
	return e.State.String()
}

// list returns user's relations as "<other>:<state>[:online]", all states.
func list(t testing.TB, s *Service, user string, state *int32) []string {
	t.Helper()
	var rep friendspb.ListReply
	if err := call(t, s, sessionOf(user), "friends.List", &friendspb.ListRequest{State: state}, &rep); err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for _, f := range rep.Friends {
		x := f.UserID + ":" + State(f.State).String()
		if f.Online {
			x += ":online"
		}
		out = append(out, x)
	}
	return out
}

// presence applies a presence event on s at once, as a worker does.
func presence(t testing.TB, s *Service, broker string, seq uint64, user, session string, online bool, at time.Time, grace time.Duration) {
	t.Helper()
	ev, ok := s.presenceEvent(broker, seq, &platformpb.Presence{
		UserId: user, Session: session, Broker: broker, Online: online,
		GraceMs: grace.Milliseconds(), AtUnixMs: at.UnixMilli(),
	})
	if !ok {
		t.Fatalf("presence event of %s on %s/%s refused", user, broker, session)
	}
	s.applyPresence(ev)
}

// migratedSchema returns the test Postgres and a fresh schema migrated with
// the module's migrations, dropped when the test ends.
func migratedSchema(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	pool := testenv.Postgres(t)
	schema := "friends_" + testenv.UniqueID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stores.Migrate(ctx, pool, schema, Migrations.Table, Migrations.FS, Migrations.Dir); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return pool, schema
}
