package services_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services"
)

// greetOptions are the options of the test module.
type greetOptions struct {
	Greeting string `yaml:"greeting"`
	Schema   string `yaml:"postgres_schema"`
	Port     int    `yaml:"port"`
}

func (o greetOptions) Validate() error {
	var errs config.Errors
	errs.Add(config.NonEmpty("greeting", o.Greeting))
	errs.Add(config.Range("port", o.Port, 0, 65535))
	return errs.Err()
}

// recorder records the order of lifecycle events.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// fakeDaemon is a module's extra daemon that records its calls.
type fakeDaemon struct {
	rec  *recorder
	quit chan struct{}
	once sync.Once
}

func (d *fakeDaemon) Main() error { <-d.quit; return nil }
func (d *fakeDaemon) Drain(context.Context) error {
	d.rec.add("daemon drain")
	d.Exit()
	return nil
}
func (d *fakeDaemon) Exit() { d.once.Do(func() { d.rec.add("daemon exit"); close(d.quit) }) }

// greetDef is the test module's definition; rec records its hooks.
func greetDef(rec *recorder) services.Def[greetOptions] {
	return services.Def[greetOptions]{
		Name:    "greet",
		Kind:    services.KindStateless,
		Summary: "says hello",
		Options: func() greetOptions { return greetOptions{Greeting: "hello", Schema: "greet", Port: 9000} },
		ForInstance: func(o *greetOptions, n int) {
			o.Port += n - 1
		},
		Build: func(_ context.Context, env *services.Env, o greetOptions) (*services.Impl, error) {
			if env.Redis != nil || env.Postgres != nil {
				return nil, errors.New("got stores it did not ask for")
			}
			d := &fakeDaemon{rec: rec, quit: make(chan struct{})}
			return &services.Impl{
				Handlers: map[string]services.HandlerFunc{
					"greet.Hello": func(_ context.Context, _ *services.Session, p []byte) ([]byte, error) {
						return []byte(o.Greeting + " " + string(p)), nil
					},
				},
				Attach:  func(s *services.Server) { rec.add("attach " + s.Options().Name) },
				Drain:   func(context.Context) error { rec.add("module drain"); return nil },
				Daemons: []daemon.Named{{Name: "greet api", Daemon: d}},
				Close:   func() { rec.add("close") },
				Banner:  []string{"greet api    nowhere"},
			}, nil
		},
	}
}

func TestModuleSection(t *testing.T) {
	m := services.NewModule(greetDef(nil))
	if m.Name() != "greet" || m.Kind() != services.KindStateless || m.Summary() != "says hello" || m.Needs() != (services.Needs{}) {
		t.Fatalf("module = %s %s %q %+v", m.Name(), m.Kind(), m.Summary(), m.Needs())
	}
	sec := m.NewSection()
	if err := m.Validate(sec); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c := sec.(*services.Config[greetOptions])
	if c.Options.Name != "greet" || c.Options.Concurrency != services.DefaultConcurrency || c.Service.Greeting != "hello" {
		t.Fatalf("defaults = %+v", c)
	}
	// One mapping holds both, strictly.
	dec := yaml.NewDecoder(strings.NewReader("greeting: hi\nconcurrency: 7\n"))
	dec.KnownFields(true)
	if err := dec.Decode(sec); err != nil {
		t.Fatal(err)
	}
	if c.Service.Greeting != "hi" || c.Options.Concurrency != 7 || c.Options.DefaultTimeout != services.DefaultTimeout {
		t.Fatalf("decoded = %+v", c)
	}
	// Set and env address it like any struct.
	if err := config.Set(sec, "port", "80"); err != nil || c.Service.Port != 80 {
		t.Fatalf("Set(port) = %v, %+v", err, c.Service)
	}
	m.ForInstance(sec, 3)
	if c.Service.Port != 82 {
		t.Fatalf("ForInstance(3): port %d, want 82", c.Service.Port)
	}

	// Every bad field, by its path in the section.
	c.Service.Greeting, c.Service.Port = "", -1
	c.Options.Name, c.Options.Kind, c.Options.Concurrency = "other", services.KindStateful, 0
	err := m.Validate(sec)
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Validate = %v (%T), want config.Errors", err, err)
	}
	var fields []string
	for _, fe := range errs {
		fields = append(fields, fe.Field)
	}
	if want := []string{"name", "concurrency", "kind", "greeting", "port"}; !slices.Equal(fields, want) {
		t.Fatalf("bad fields %v, want %v (%v)", fields, want, err)
	}
}

func TestModulePubNeedsPubBind(t *testing.T) {
	def := greetDef(nil)
	def.Needs.Pub = true
	m := services.NewModule(def)
	sec := m.NewSection()
	sec.Runtime().PubBind = ""
	if err := m.Validate(sec); err == nil || !strings.Contains(err.Error(), "pub_bind: the greet service publishes events") {
		t.Fatalf("Validate = %v", err)
	}
}

func TestNewModuleRefusesMalformed(t *testing.T) {
	mustPanic := func(name, want string, f func()) {
		t.Helper()
		defer func() {
			r := recover()
			if r == nil || !strings.Contains(fmt.Sprint(r), want) {
				t.Errorf("%s: panic %v, want one naming %q", name, r, want)
			}
		}()
		f()
	}
	mustPanic("key clash", "share a key", func() {
		services.NewModule(services.Def[configClash]{Name: "x", Kind: services.KindStateless, Build: buildNothing[configClash]})
	})
	mustPanic("bad kind", "kind", func() {
		services.NewModule(services.Def[services.NoOptions]{Name: "x", Kind: "odd", Build: buildNothing[services.NoOptions]})
	})
	mustPanic("bad name", "x.y", func() {
		services.NewModule(services.Def[services.NoOptions]{Name: "x.y", Kind: services.KindStateless, Build: buildNothing[services.NoOptions]})
	})
	mustPanic("no build", "no Build", func() {
		services.NewModule(services.Def[services.NoOptions]{Name: "x", Kind: services.KindStateless})
	})
	mustPanic("no schema", "Def.Schema", func() {
		services.NewModule(services.Def[services.NoOptions]{Name: "x", Kind: services.KindStateless, Build: buildNothing[services.NoOptions],
			Migrations: &services.Migrations{FS: fstest.MapFS{}, Dir: ".", Table: "x_schema_migrations"}})
	})
}

// configClash has a key of the runtime's options.
type configClash struct {
	Heartbeat time.Duration `yaml:"heartbeat"`
}

func (configClash) Validate() error { return nil }

func buildNothing[O any](context.Context, *services.Env, O) (*services.Impl, error) {
	return &services.Impl{}, nil
}

func TestModuleStart(t *testing.T) {
	y := mustStartYellow(t, "", "")
	rec := &recorder{}
	m := services.NewModule(greetDef(rec))
	sec := m.NewSection()
	sec.Runtime().Heartbeat = hb
	inst, err := m.Start(context.Background(), services.Env{
		Log:     testLogger(t),
		Yellows: []string{y.RouterEndpoint()},
	}, sec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Exit)
	if got := inst.Banner(); len(got) != 1 || got[0] != "greet api    nowhere" {
		t.Fatalf("banner %q", got)
	}
	done := make(chan error, 1)
	go func() { done <- inst.Main() }()
	checkFor(t, 5*time.Second, "registered", func() bool { return y.has("greet", inst.Server().InstanceID()) })

	c := newClient(t, y)
	env, err := c.CallRaw(context.Background(), router.Target{}, "greet.Hello", nil, []byte("ann"))
	if err != nil || string(env.GetPayload()) != "hello ann" {
		t.Fatalf("greet.Hello = %v, %v", env, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := inst.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Main: %v", err)
	}
	inst.Exit()
	want := []string{"attach greet", "daemon drain", "daemon exit", "module drain", "close"}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Fatalf("lifecycle %q, want %q", got, want)
	}
	checkFor(t, 5*time.Second, "deregistered", func() bool { return !y.has("greet", inst.Server().InstanceID()) })
}

// TestModuleMeta: Impl.Meta's labels are in the instance's yellow record
// from its registration on, and follow their changes with the heartbeats.
func TestModuleMeta(t *testing.T) {
	y := mustStartYellow(t, "", "")
	var free atomic.Int64
	free.Store(5)
	def := greetDef(&recorder{})
	build := def.Build
	def.Build = func(ctx context.Context, env *services.Env, o greetOptions) (*services.Impl, error) {
		impl, err := build(ctx, env, o)
		if impl != nil {
			impl.Meta = func() map[string]string { return map[string]string{"free": strconv.FormatInt(free.Load(), 10)} }
		}
		return impl, err
	}
	m := services.NewModule(def)
	sec := m.NewSection()
	sec.Runtime().Heartbeat = hb
	inst, err := m.Start(context.Background(), services.Env{Log: testLogger(t), Yellows: []string{y.RouterEndpoint()}}, sec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Exit)
	if got := inst.Server().Instance().GetMeta()["free"]; got != "5" {
		t.Fatalf("Instance().meta[free] = %q, want 5", got)
	}
	go func() { _ = inst.Main() }()
	metaIs := func(want string) func() bool {
		return func() bool {
			for _, rec := range y.Registry().Query("greet") {
				if rec.GetId() == inst.Server().InstanceID() {
					return rec.GetMeta()["free"] == want
				}
			}
			return false
		}
	}
	checkFor(t, 5*time.Second, "registered with meta free=5", metaIs("5"))
	free.Store(4)
	checkFor(t, 5*time.Second, "meta free=4 after a beat", metaIs("4"))
}

func TestModuleStartNeedsRedis(t *testing.T) {
	def := greetDef(&recorder{})
	def.Needs.Redis = true
	m := services.NewModule(def)
	_, err := m.Start(context.Background(), services.Env{}, m.NewSection())
	if err == nil || err.Error() != "service greet needs Redis: set redis.addrs" {
		t.Fatalf("Start = %v", err)
	}
	// A bad section is refused with its full path.
	sec := m.NewSection()
	sec.Runtime().Concurrency = -1
	if _, err := m.Start(context.Background(), services.Env{}, sec); err == nil || !strings.HasPrefix(err.Error(), "config: services.greet.concurrency: ") {
		t.Fatalf("Start(bad section) = %v", err)
	}
}

func TestModuleMigrate(t *testing.T) {
	pool := testenv.Postgres(t)
	schema := fmt.Sprintf("greet_test_%d", time.Now().UnixNano())
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	def := greetDef(&recorder{})
	def.Needs.Postgres = true
	def.Migrations = &services.Migrations{
		FS: fstest.MapFS{
			"sql/0001_greetings.up.sql":   {Data: []byte("CREATE TABLE greetings (id int PRIMARY KEY);")},
			"sql/0001_greetings.down.sql": {Data: []byte("DROP TABLE greetings;")},
		},
		Dir:   "sql",
		Table: "greet_schema_migrations",
	}
	def.Schema = func(o greetOptions) string { return o.Schema }
	m := services.NewModule(def)
	sec := m.NewSection()
	sec.(*services.Config[greetOptions]).Service.Schema = schema
	got, err := m.Migrate(context.Background(), pool, sec)
	if err != nil || got != schema {
		t.Fatalf("Migrate = %q, %v", got, err)
	}
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+schema+".greetings").Scan(&n); err != nil || n != 0 {
		t.Fatalf("table: %d, %v", n, err)
	}
	plain := services.NewModule(greetDef(nil))
	if got, err := plain.Migrate(context.Background(), pool, plain.NewSection()); got != "" || err != nil {
		t.Fatalf("Migrate without migrations = %q, %v", got, err)
	}
}
