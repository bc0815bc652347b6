package services

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
)

// Module is a service as the platform sees it, whatever its options: what
// cmd/noon lists, and derives `noon service`, `noon dev`, `noon cluster`,
// `noon migrate`, the services section of the config and the banner from.
// A service package exports one, made by NewModule from its Def:
//
//	var Module = services.NewModule(services.Def[services.NoOptions]{...})
//
// The methods that take a Section take one made by the same module's
// NewSection.
type Module interface {
	// Name is the service's name: its config section (services.<name>),
	// the prefix of its methods, its name in yellow.
	Name() string
	// Kind is KindStateless or KindStateful.
	Kind() string
	// Summary is one line saying what the service does (`noon service -h`).
	Summary() string
	// Example is a call to try with noonctl, "<method> '<json>'", or "".
	Example() string
	// Needs says which stores and sockets the service uses.
	Needs() Needs
	// NewSection returns the service's config section with its defaults.
	NewSection() Section
	// Validate checks sec and returns every bad field (config.Errors),
	// named by its yaml path within the section ("argon2.time").
	Validate(sec Section) error
	// ForInstance adjusts sec for instance n (1-based) of several on one
	// host (`noon cluster`, `noon service -instance n`), e.g. login serves
	// its HTTP API on its port + n - 1. Most services change nothing.
	ForInstance(sec Section, n int)
	// Migrate brings the service's Postgres schema (the one sec names) up
	// to date with its embedded migrations and returns the schema; "" and
	// nil when the service has none.
	Migrate(ctx context.Context, pool *pgxpool.Pool, sec Section) (schema string, err error)
	// Start builds one instance of the service from sec over env: it
	// migrates (with Postgres), runs the module's Build, binds the
	// instance's Server and attaches the module's hooks. The instance
	// serves requests at once; its Main makes it discoverable.
	Start(ctx context.Context, env Env, sec Section) (*Instance, error)
}

// Def defines a service module with options O, the service's own options
// type (NoOptions when it has none). NewModule turns it into a Module.
type Def[O config.Validator] struct {
	// Name is the service's name ([a-z][a-z0-9_-]*); the package exports it
	// as its Name constant.
	Name string
	// Kind is KindStateless or KindStateful.
	Kind string
	// Summary is one line saying what the service does.
	Summary string
	// Example, when set, is a call a newcomer can try with noonctl:
	// "<method> '<request as JSON>'" (echo's is echo.Echo '"hello"');
	// `noon dev` prints the first module's.
	Example string
	// Options returns the defaults of O; nil means O's zero value.
	Options func() O
	// Needs says which stores and sockets the service uses.
	Needs Needs
	// Migrations, when set, are the service's Postgres migrations; Schema
	// must be set with them.
	Migrations *Migrations
	// Schema returns the Postgres schema the options name (their
	// postgres_schema): where Migrations go and the stores live.
	Schema func(O) string
	// ForInstance, when set, adjusts the options of instance n (1-based) of
	// several on one host; see Module.ForInstance.
	ForInstance func(o *O, n int)
	// Build makes the service from its options over env (the stores it
	// asked for, its logger and metrics) and returns its handlers and
	// hooks. It starts nothing that Impl's hooks do not stop.
	Build func(ctx context.Context, env *Env, opts O) (*Impl, error)
}

// NoOptions is the options type of a service that has none of its own.
type NoOptions struct{}

// Validate implements config.Validator: there is nothing to check.
func (NoOptions) Validate() error { return nil }

// Needs are what a module asks the platform for.
type Needs struct {
	// Postgres: the service keeps its data in Postgres when one is
	// configured (Env.Postgres), in memory when not (`noon dev`).
	Postgres bool
	// Redis: the service cannot run without Redis (Env.Redis); `noon dev`
	// runs an in-process one.
	Redis bool
	// Pub: the service publishes events, so its pub_bind must be set.
	Pub bool
}

// Migrations are a service's embedded Postgres migrations, applied with
// golang-migrate (stores.Migrate) to the schema its options name.
type Migrations struct {
	// FS holds the SQL files (NNNN_name.up.sql and .down.sql), usually an
	// embed.FS.
	FS fs.FS
	// Dir is their directory in FS ("migrations").
	Dir string
	// Table is golang-migrate's version table in the schema, named for the
	// service ("login_schema_migrations") so that services sharing a
	// schema keep their versions and advisory locks apart.
	Table string
}

// Env is what a module's Build gets. The caller of Module.Start sets Log,
// Metrics, Postgres, Redis and Yellows; Start sets Options and hands Build
// only the stores the module asked for.
type Env struct {
	// Log receives the service's logs (Build gets it with service=<name>).
	Log *slog.Logger
	// Metrics receives the instance's metrics; nil means none.
	Metrics metrics.Sink
	// Postgres is the database when the module needs Postgres and one is
	// configured; nil means in-memory stores.
	Postgres *pgxpool.Pool
	// Redis is the Redis client (single node, Sentinel or Cluster) when the
	// module needs Redis.
	Redis redis.UniversalClient
	// Yellows are the platform's yellows (the top-level `yellows`), used
	// when the service's section names none.
	Yellows []string
	// TLS are the instance's credentials (a service:<name> certificate)
	// for mutual TLS on every link; nil: plain links. Insecure allows plain
	// links on addresses other than loopback. Start copies both into
	// Options.
	TLS      *pki.Credentials
	Insecure bool
	// Options are the instance's runtime options (yellows, heartbeat, ...).
	Options Options

	client *lazyClient
}

// lazyClient is the Client of an Env, made on first use.
type lazyClient struct {
	mu     sync.Mutex
	c      *Client
	closed bool
}

// Client returns a Client that calls other services through the instance's
// yellows. It is made on first use and closed with the instance.
func (e *Env) Client() *Client {
	if e.client == nil {
		e.client = &lazyClient{}
	}
	l := e.client
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil {
		l.c = NewClient(ClientOptions{Yellows: e.Options.Yellows, Heartbeat: e.Options.Heartbeat,
			Peer: link.PeerOptions{TLS: e.Options.TLS}, Logger: e.Log})
		if l.closed {
			l.c.Close() // asked for after the instance stopped: calls fail
		}
	}
	return l.c
}

// closeClient closes the Client if one was made.
func (e *Env) closeClient() {
	if e.client == nil {
		return
	}
	l := e.client
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed && l.c != nil {
		l.c.Close()
	}
	l.closed = true
}

// Impl is what a module's Build returns: the service's handlers and the
// hooks the runtime runs around its Server. Only Handlers is required.
type Impl struct {
	// Handlers serve the service's methods, keyed by method.
	Handlers map[string]HandlerFunc
	// Inline lists the methods of Handlers that never block (see
	// Options.Inline).
	Inline []string
	// Attach runs with the instance's Server before it serves: a stateful
	// service learns its instance id and publisher.
	Attach func(*Server)
	// Drain runs when the instance drains, after Daemons drained and
	// before the Server drains: the room service hands its rooms over.
	Drain func(ctx context.Context) error
	// Daemons are more daemons of the service, run, drained and exited
	// with the instance: login's HTTP API.
	Daemons []daemon.Named
	// Close runs once the instance has stopped: it releases what Build
	// took.
	Close func()
	// Banner are the lines `noon dev` prints about the service (where its
	// HTTP API listens).
	Banner []string
	// Meta, when set, returns labels published in the instance's yellow
	// record at registration and on every heartbeat that changes them:
	// what consumers choose an instance by (room publishes rooms_free, its
	// free capacity). It is called once a beat per yellow, from several
	// goroutines: quick, and safe for concurrent use. Bounds (yellow's):
	// at most 16 labels, keys of 1..64 bytes, values of at most 256 bytes,
	// the whole record within yellow's max_record_bytes (4 KiB by
	// default); labels that break them are logged and not sent.
	Meta func() map[string]string
}

// Section is a service's section of the config file, services.<name>: a
// *Config[O], made by its module's NewSection.
type Section interface {
	// Runtime returns the instance's runtime options, for the caller to
	// change (command-line flags).
	Runtime() *Options
}

// Config is the config section of a service with options O: the runtime's
// Options and O, inlined into one YAML mapping, so that services.login
// holds bind and concurrency beside session_ttl. NewModule checks that
// their keys do not collide.
type Config[O any] struct {
	// Options are the runtime's (bind, concurrency, heartbeat, ...).
	Options Options `yaml:",inline"`
	// Service are the service's own.
	Service O `yaml:",inline"`
}

// Runtime implements Section.
func (c *Config[O]) Runtime() *Options { return &c.Options }

// module is the Module of a Def.
type module[O config.Validator] struct{ def Def[O] }

// NewModule returns the Module def defines. It panics if def is malformed
// (a bad name or kind, no Build, Migrations without Schema, a key of O that
// is also a runtime option): a programming error, found at init.
func NewModule[O config.Validator](def Def[O]) Module {
	m := &module[O]{def: def}
	if err := m.check(); err != nil {
		panic(fmt.Sprintf("services: module %q: %v", def.Name, err))
	}
	return m
}

// check reports what is malformed in the definition.
func (m *module[O]) check() error {
	d := &m.def
	if err := wire.ValidateName(d.Name); err != nil {
		return err
	}
	if d.Kind != KindStateless && d.Kind != KindStateful {
		return fmt.Errorf("kind must be %q or %q, got %q", KindStateless, KindStateful, d.Kind)
	}
	if d.Build == nil {
		return errors.New("no Build")
	}
	if mg := d.Migrations; mg != nil && (mg.FS == nil || mg.Table == "" || d.Schema == nil) {
		return errors.New("migrations need FS, Table and Def.Schema")
	}
	if err := yamlKeysUnique(m.NewSection()); err != nil {
		return fmt.Errorf("its options and the runtime's share a key: %v", err)
	}
	return nil
}

// yamlKeysUnique reports a key that two structs inlined in v both have: the
// yaml package could then neither decode nor encode v. It says so by
// panicking ("duplicated key 'x' in struct ...").
func yamlKeysUnique(v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	_, err = yaml.Marshal(v)
	return err
}

func (m *module[O]) Name() string    { return m.def.Name }
func (m *module[O]) Kind() string    { return m.def.Kind }
func (m *module[O]) Summary() string { return m.def.Summary }
func (m *module[O]) Example() string { return m.def.Example }
func (m *module[O]) Needs() Needs    { return m.def.Needs }

func (m *module[O]) NewSection() Section {
	c := &Config[O]{Options: NewOptions()}
	c.Options.Name = m.def.Name
	c.Options.Kind = m.def.Kind
	if m.def.Options != nil {
		c.Service = m.def.Options()
	}
	return c
}

// config returns sec as the module's section.
func (m *module[O]) config(sec Section) *Config[O] {
	c, ok := sec.(*Config[O])
	if !ok {
		panic(fmt.Sprintf("services: module %q given a section of type %T", m.def.Name, sec))
	}
	return c
}

func (m *module[O]) Validate(sec Section) error {
	c := m.config(sec)
	d := &m.def
	var errs config.Errors
	rt := c.Options
	if rt.Name != d.Name {
		errs.Addf("name", "is the service's own, %q; leave it out", d.Name)
		rt.Name = d.Name
	}
	errs.Add(rt.Validate())
	if rt.Kind != d.Kind && (rt.Kind == KindStateless || rt.Kind == KindStateful) {
		errs.Addf("kind", "the %s service is %s, got %q", d.Name, d.Kind, rt.Kind)
	}
	if d.Needs.Pub && rt.PubBind == "" {
		errs.Addf("pub_bind", "the %s service publishes events: must not be empty", d.Name)
	}
	errs.Add(c.Service.Validate())
	return errs.Err()
}

func (m *module[O]) ForInstance(sec Section, n int) {
	if m.def.ForInstance != nil {
		m.def.ForInstance(&m.config(sec).Service, n)
	}
}

func (m *module[O]) Migrate(ctx context.Context, pool *pgxpool.Pool, sec Section) (string, error) {
	mg := m.def.Migrations
	if mg == nil {
		return "", nil
	}
	schema := m.def.Schema(m.config(sec).Service)
	if err := stores.Migrate(ctx, pool, schema, mg.Table, mg.FS, mg.Dir); err != nil {
		return "", fmt.Errorf("%s: %w", m.def.Name, err)
	}
	return schema, nil
}

func (m *module[O]) Start(ctx context.Context, env Env, sec Section) (*Instance, error) {
	d := &m.def
	c := m.config(sec)
	if err := m.Validate(c); err != nil {
		return nil, config.Nested("services."+d.Name, err)
	}
	if !d.Needs.Postgres {
		env.Postgres = nil
	}
	if !d.Needs.Redis {
		env.Redis = nil
	} else if env.Redis == nil {
		return nil, fmt.Errorf("service %s needs Redis: set redis.addrs", d.Name)
	}
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	if env.Metrics == nil {
		env.Metrics = metrics.Nop()
	}
	if env.Postgres != nil {
		if _, err := m.Migrate(ctx, env.Postgres, c); err != nil {
			return nil, err
		}
	}
	env.Options = c.Options
	env.Options.TLS, env.Options.Insecure = env.TLS, env.Insecure
	if len(env.Options.Yellows) == 0 {
		env.Options.Yellows = slices.Clone(env.Yellows)
	}
	base := env.Log
	env.Log = base.With("service", d.Name)
	env.client = &lazyClient{}

	impl, err := d.Build(ctx, &env, c.Service)
	if err == nil && impl == nil {
		err = errors.New("build returned no Impl")
	}
	if err != nil {
		env.closeClient()
		return nil, fmt.Errorf("service %s: %w", d.Name, err)
	}
	inst := &Instance{name: d.Name, impl: impl, env: &env, log: env.Log}
	if len(impl.Inline) > 0 {
		env.Options.Inline = impl.Inline
	}
	srv, err := NewServer(env.Options, impl.Handlers, base)
	if err != nil {
		inst.release()
		return nil, err
	}
	inst.srv = srv
	srv.SetDrainRequest(inst.requestDrain)
	if impl.Meta != nil {
		srv.SetMeta(impl.Meta)
	}
	if impl.Attach != nil {
		impl.Attach(srv)
	}
	srv.RegisterMetrics(env.Metrics)
	return inst, nil
}
