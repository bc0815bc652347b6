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
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/services"
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
	// TLS is the process's certificate for mutual TLS on every internal
	// link (ZeroMQ, yellow included). noon dev and noon cluster make their
	// own and ignore the files.
	TLS pki.Config `yaml:"tls"`
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
	// Console configures the web console (`noon console`, and noon dev's
	// on its admin port).
	Console ConsoleOptions `yaml:"console"`
	// Services configures each service of the modules list by name
	// (services.<name>): the runtime's options (bind, concurrency, ...) and
	// the service's own, in one mapping.
	Services ServiceMap `yaml:"services"`
}

// AdminOptions configures the admin HTTP endpoint of a daemon.
type AdminOptions struct {
	// Addr is host:port of /metrics, /healthz (liveness), /readyz
	// (readiness) and /drain (POST from loopback: drain as on SIGTERM);
	// "" means the command's
	// default (noon dev 127.0.0.1:1051, broker 127.0.0.1:1052, yellow
	// 127.0.0.1:1062, a service any free port, logged at start); "off"
	// disables it.
	Addr string `yaml:"addr"`
}

// ConsoleOptions configures the web console.
type ConsoleOptions struct {
	// Listen is host:port of `noon console`'s HTTP (the page at
	// /console/); noon dev serves the console on its admin port instead.
	Listen string `yaml:"listen"`
	// Token is the bearer token the console's API wants (16..256 bytes);
	// "" generates one at start, printed in the log (and noon dev's
	// banner).
	Token string `yaml:"token"`
}

// defaultConsoleListen is `noon console`'s default address.
const defaultConsoleListen = "127.0.0.1:1054"

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
		Console:    ConsoleOptions{Listen: defaultConsoleListen},
		Services:   newServiceMap(),
	}
}

// Validate checks the whole file, naming the bad field.
func (c *Config) Validate() error {
	var errs config.Errors
	errs.Add(config.Nested("log", c.Log.Validate()))
	errs.Add(config.Nested("tls", c.TLS.Validate()))
	if c.Admin.Addr != "" && c.Admin.Addr != "off" {
		errs.Add(config.HostPort("admin.addr", c.Admin.Addr))
	}
	if c.Console.Listen != "" {
		errs.Add(config.HostPort("console.listen", c.Console.Listen))
	}
	if n := len(c.Console.Token); n != 0 && (n < 16 || n > 256) {
		errs.Add(config.FieldError{Field: "console.token", Msg: fmt.Sprintf("must be 16..256 bytes, got %d", n)})
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
	for _, m := range modules {
		errs.Add(config.Nested("services."+m.Name(), m.Validate(c.Services[m.Name()])))
	}
	return errs.Err()
}

// credentials loads the tls block's certificate: nil without one (plain
// links, which daemons allow on loopback only unless tls.insecure). The
// daemon checks that its identity fits what it runs.
func (c *Config) credentials() (*pki.Credentials, error) {
	creds, err := c.TLS.Load()
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return creds, nil
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

// ServiceMap is the services section: the section of every module by its
// name, holding the module's defaults until the file, NOON_SERVICES_* or
// -set services.<name>.<field> change them. A section names only what it
// changes; unknown services and keys are errors as everywhere else.
type ServiceMap map[string]services.Section

// newServiceMap returns every module's section with its defaults.
func newServiceMap() ServiceMap {
	m := make(ServiceMap, len(modules))
	for _, mod := range modules {
		m[mod.Name()] = mod.NewSection()
	}
	return m
}

// ConfigSections implements config.Sections: -set and NOON_* address each
// section's fields like a struct's.
func (m ServiceMap) ConfigSections() map[string]any {
	out := make(map[string]any, len(m))
	for name, sec := range m {
		out[name] = sec
	}
	return out
}

// UnmarshalYAML decodes each entry strictly over its module's defaults.
func (m *ServiceMap) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.MappingNode {
		var raw map[string]yaml.Node
		return node.Decode(&raw) // null is fine; anything else says why not
	}
	if *m == nil {
		*m = newServiceMap()
	}
	// Report every bad entry, as the decoder does for a struct.
	bad := &yaml.TypeError{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, n := node.Content[i], node.Content[i+1]
		sec, ok := (*m)[key.Value]
		if !ok {
			bad.Errors = append(bad.Errors, fmt.Sprintf("line %d: unknown service %q (known: %s)", key.Line, key.Value, moduleNames()))
			continue
		}
		b, err := yaml.Marshal(n)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(sec); err != nil && !errors.Is(err, io.EOF) {
			var te *yaml.TypeError
			if !errors.As(shiftLines(err, n.Line-1), &te) {
				return err
			}
			bad.Errors = append(bad.Errors, te.Errors...)
		}
	}
	if len(bad.Errors) > 0 {
		return bad
	}
	return nil
}
