package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/logging"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
	"github.com/noonhq/noon/yellow"
	"go.yaml.in/yaml/v3"
)

// envPrefix prefixes the environment variables that override the config
// file: NOON_YELLOW_HEARTBEAT=2s sets yellow.heartbeat.
const envPrefix = "NOON"

// Config is the layout of a noon config file (configs/*.yaml). Each daemon
// reads its own section; yellows is shared by everything that registers or
// discovers.
type Config struct {
	// Log configures the structured logs every daemon writes to stderr.
	Log logging.Options `yaml:"log"`
	// Admin is the HTTP address of /metrics and /healthz.
	Admin AdminOptions `yaml:"admin"`
	// Yellows are the ROUTER endpoints of every yellow, for providers and
	// consumers alike.
	Yellows []string `yaml:"yellows"`
	// Yellow configures `noon yellow`.
	Yellow yellow.Options `yaml:"yellow"`
	// Broker configures `noon broker` (the edge: listeners, limits, routes).
	Broker broker.Options `yaml:"broker"`
	// BrokerList configures `noon brokerlist` (GET /brokerlist).
	BrokerList brokerlist.Options `yaml:"brokerlist"`
	// Postgres is the database of the services that keep data; empty url =
	// none (noon dev then uses in-memory stores).
	Postgres stores.PostgresOptions `yaml:"postgres"`
	// Redis holds sessions, leases and throttles; no addrs = none (noon dev
	// then runs an in-process Redis).
	Redis stores.RedisOptions `yaml:"redis"`
	// Login configures the login service (accounts, sessions, its HTTP API).
	Login login.Options `yaml:"login"`
	// Room configures the room service (the switch, durability, leases,
	// the sample game).
	Room room.Options `yaml:"room"`
	// Services configures each service by name (`noon service <name>`);
	// the name key is the service name.
	Services ServiceMap `yaml:"services"`
}

// AdminOptions configures the admin HTTP endpoint of a daemon.
type AdminOptions struct {
	// Addr is host:port of /metrics and /healthz; "" means the command's
	// default (noon dev 127.0.0.1:1051, broker 127.0.0.1:1052, yellow
	// 127.0.0.1:1062, a service any free port, logged at start); "off"
	// disables it.
	Addr string `yaml:"addr"`
}

// defaultConfig returns the built-in defaults, which the file, the
// environment and flags override in that order.
func defaultConfig() Config {
	return Config{
		Log:        logging.DefaultOptions(),
		Admin:      AdminOptions{},
		Yellows:    []string{yellow.DefaultRouterAddr},
		Yellow:     yellow.NewOptions(),
		Broker:     broker.NewOptions(),
		BrokerList: brokerlist.NewOptions(),
		Login:      login.NewOptions(),
		Room:       room.NewOptions(),
		Services:   ServiceMap{},
	}
}

// Validate checks the whole file, naming the bad field.
func (c *Config) Validate() error {
	var errs config.Errors
	errs.Add(config.Nested("log", c.Log.Validate()))
	if c.Admin.Addr != "" && c.Admin.Addr != "off" {
		errs.Add(config.HostPort("admin.addr", c.Admin.Addr))
	}
	for i, y := range c.Yellows {
		errs.Add(config.DialEndpoint(fmt.Sprintf("yellows[%d]", i), y))
	}
	if err := c.Yellow.Validate(); err != nil {
		errs.Add(fmt.Errorf("config: %w", err))
	}
	errs.Add(config.Nested("postgres", c.Postgres.Validate()))
	errs.Add(config.Nested("redis", c.Redis.Validate()))
	if err := c.brokerOptions().Validate(); err != nil {
		errs.Add(config.Nested("broker", err))
	}
	if err := c.brokerListOptions().Validate(); err != nil {
		errs.Add(config.Nested("brokerlist", err))
	}
	errs.Add(config.Nested("login", c.Login.Validate()))
	errs.Add(config.Nested("room", c.Room.Validate()))
	for name := range c.Services {
		if _, err := c.service(name); err != nil {
			errs.Add(fmt.Errorf("config: services.%s: %w", name, err))
		}
	}
	return errs.Err()
}

// brokerOptions returns the broker's options with the shared yellows.
func (c *Config) brokerOptions() broker.Options {
	o := c.Broker
	if len(o.Yellows) == 0 {
		o.Yellows = append([]string(nil), c.Yellows...)
	}
	return o
}

// brokerListOptions returns the BrokerList's options with the shared
// yellows.
func (c *Config) brokerListOptions() brokerlist.Options {
	o := c.BrokerList
	if len(o.Yellows) == 0 {
		o.Yellows = append([]string(nil), c.Yellows...)
	}
	return o
}

// service returns the effective options of the named service: defaults,
// then the file's services.<name> section, with the shared yellows.
func (c *Config) service(name string) (services.Options, error) {
	o, ok := c.Services[name]
	if !ok {
		o = newServiceOptions(name)
	}
	o.Name = name
	if len(o.Yellows) == 0 {
		o.Yellows = append([]string(nil), c.Yellows...)
	}
	return o, o.Validate()
}

// yamlLine matches the "line N: " of a decoder message.
var yamlLine = regexp.MustCompile(`^line (\d+): `)

// shiftLines moves the line numbers of a decoder error on a re-encoded
// section by offset, so they point into the original file.
func shiftLines(err error, offset int) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	out := &yaml.TypeError{}
	for _, e := range te.Errors {
		if m := yamlLine.FindStringSubmatch(e); m != nil {
			n, _ := strconv.Atoi(m[1])
			e = fmt.Sprintf("line %d: %s", n+offset, e[len(m[0]):])
		}
		out.Errors = append(out.Errors, e)
	}
	return out
}

// serviceDefaults adjust services.NewOptions() for a service (the room
// service is stateful).
var serviceDefaults = map[string]func(*services.Options){}

// newServiceOptions returns the default options of the named service.
func newServiceOptions(name string) services.Options {
	o := services.NewOptions()
	if f := serviceDefaults[name]; f != nil {
		f(&o)
	}
	return o
}

// configFlags are the flags every daemon command shares.
type configFlags struct {
	file string
	sets config.SetFlag
}

func (f *configFlags) register(fs *flag.FlagSet, defaultFile string) {
	fs.StringVar(&f.file, "config", defaultFile, "YAML config `file` (\"\" = built-in defaults)")
	fs.Var(&f.sets, "set", "override one option, `path=value` (e.g. yellow.heartbeat=2s); repeatable")
}

// load builds the config: defaults < file < NOON_* env < -set, then
// validates it.
func (f *configFlags) load() (*Config, error) { return f.loadWith(nil) }

// loadWith is load with explicit flags applied last, by flags.
func (f *configFlags) loadWith(flags func(*Config)) (*Config, error) {
	cfg := defaultConfig()
	if err := config.Load(&cfg, f.file, envPrefix, os.Environ(), f.sets); err != nil {
		return nil, err
	}
	if flags != nil {
		flags(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// ServiceMap is the services section: options by service name. Each entry
// starts from services.NewOptions(), so a section names only what it
// changes, and unknown keys are errors as everywhere else.
type ServiceMap map[string]services.Options

// UnmarshalYAML decodes each entry strictly over the defaults.
func (m *ServiceMap) UnmarshalYAML(node *yaml.Node) error {
	var raw map[string]yaml.Node
	if err := node.Decode(&raw); err != nil {
		return err
	}
	if *m == nil {
		*m = ServiceMap{}
	}
	for name, n := range raw {
		o, ok := (*m)[name]
		if !ok {
			o = newServiceOptions(name)
		}
		b, err := yaml.Marshal(&n)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&o); err != nil && !errors.Is(err, io.EOF) {
			return shiftLines(err, n.Line-1)
		}
		(*m)[name] = o
	}
	return nil
}
