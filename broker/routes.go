package broker

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/wire"
)

// Route kinds, the values of Route.Kind.
const (
	// KindStateless: the least-loaded live instance of the service serves
	// the request.
	KindStateless = "stateless"
	// KindStateful: the instance that owns the value of the session's
	// binding Route.Key serves the request.
	KindStateful = "stateful"
	// KindLocal: the broker answers the request itself (edge.Hello).
	KindLocal = "local"
)

// Limits of the route table.
const (
	// maxRoutes bounds the route table: a platform has a few dozen
	// services; a thousand routes is a generated table gone wrong.
	maxRoutes = 1000
	// maxAliases bounds the aliases: pandaparty has a few dozen bare
	// method names.
	maxAliases = 1000
)

// Route says which service serves the methods matching Prefix, how, and
// who may call them.
type Route struct {
	// Prefix is a method prefix ending in "." ("echo.": every echo
	// method) or one full method ("login.Login"). The longest match wins.
	Prefix string `yaml:"prefix" json:"prefix"`
	// Service is the service in yellow that serves the methods ("edge" for
	// the broker's local methods).
	Service string `yaml:"service" json:"service"`
	// Kind is "stateless", "stateful" or "local".
	Kind string `yaml:"kind" json:"kind"`
	// Key is, for a stateful route, the session binding whose value picks
	// the owning instance ("room").
	Key string `yaml:"key,omitempty" json:"key,omitempty"`
	// Binds are extra binding keys the route's replies may set on the
	// session, beside a stateful route's own Key (a matchmaker's reply
	// binding "room" when it places players).
	Binds []string `yaml:"binds,omitempty" json:"binds,omitempty"`
	// Timeout is the request deadline; 0 means Options.DefaultTimeout (in
	// JSON, nanoseconds).
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout_ns,omitempty"`
	// Public routes may be called before the connection authenticates.
	Public bool `yaml:"public,omitempty" json:"public,omitempty"`
	// Authenticates lets the route's replies bind wire.KeyUser, which logs the
	// connection in: only the login service's routes should have it.
	Authenticates bool `yaml:"authenticates,omitempty" json:"authenticates,omitempty"`
}

// DefaultRoutes returns the route table `noon dev` uses.
func DefaultRoutes() []Route {
	return []Route{
		{Prefix: "edge.", Service: "edge", Kind: KindLocal, Public: true},
		{Prefix: "echo.", Service: "echo", Kind: KindStateless, Public: true},
		{Prefix: "login.Register", Service: "login", Kind: KindStateless, Public: true},
		{Prefix: "login.Login", Service: "login", Kind: KindStateless, Public: true, Authenticates: true},
		{Prefix: "login.Validate", Service: "login", Kind: KindStateless, Public: true},
		{Prefix: "login.Logout", Service: "login", Kind: KindStateless, Authenticates: true},
		{Prefix: "login.LogoutAll", Service: "login", Kind: KindStateless, Authenticates: true},
		{Prefix: "login.", Service: "login", Kind: KindStateless},
		{Prefix: "room.", Service: "room", Kind: KindStateful, Key: "room"},
		{Prefix: "match.", Service: "match", Kind: KindStateless, Binds: []string{"room"}},
		{Prefix: "friends.", Service: "friends", Kind: KindStateless},
		{Prefix: "pay.", Service: "pay", Kind: KindStateless},
		{Prefix: "game.", Service: "game", Kind: KindStateless},
	}
}

// DefaultAliases returns pandaparty's bare method names mapped onto noon's.
func DefaultAliases() map[string]string {
	return map[string]string{
		"Register":         "login.Register",
		"Login":            "login.Login",
		"ValidateSession":  "login.Validate",
		"CreateRoom":       "room.Create",
		"JoinRoom":         "room.Join",
		"GetFriendsList":   "friends.List",
		"GetPaymentStatus": "pay.Status",
	}
}

// RouteTable is a checked route table with its aliases: the one place a
// method is routed (Resolve). It is immutable and safe for concurrent use.
type RouteTable struct {
	routes  []Route // as given, for Routes and FormatRoutes
	byLen   []Route // longest prefix first
	exact   map[string]int
	aliases map[string]string
	binds   map[string][]string // by service: the keys its routes may bind
}

// NewRouteTable checks routes and aliases and returns the table. Errors
// name the field: "routes[2].key", "aliases.CreateRoom".
func NewRouteTable(routes []Route, aliases map[string]string) (*RouteTable, error) {
	var errs config.Errors
	if len(routes) == 0 {
		errs.Addf("routes", "must not be empty")
	}
	if len(routes) > maxRoutes {
		errs.Addf("routes", "at most %d routes, got %d", maxRoutes, len(routes))
	}
	if len(aliases) > maxAliases {
		errs.Addf("aliases", "at most %d aliases, got %d", maxAliases, len(aliases))
	}
	t := &RouteTable{exact: make(map[string]int), aliases: make(map[string]string, len(aliases))}
	seen := make(map[string]int)
	for i, r := range routes {
		field := fmt.Sprintf("routes[%d]", i)
		errs.Add(config.Nested(field, r.validate()))
		if j, dup := seen[r.Prefix]; dup {
			errs.Addf(field+".prefix", "%q is already routed by routes[%d]", r.Prefix, j)
			continue
		}
		seen[r.Prefix] = i
		r.Binds = slices.Clone(r.Binds)
		t.routes = append(t.routes, r)
	}
	t.binds = make(map[string][]string)
	for _, r := range t.routes {
		keys := r.Binds
		if r.Kind == KindStateful {
			keys = append([]string{r.Key}, keys...)
		}
		for _, k := range keys {
			if k != wire.KeyUser && !slices.Contains(t.binds[r.Service], k) {
				t.binds[r.Service] = append(t.binds[r.Service], k)
			}
		}
	}
	t.byLen = slices.Clone(t.routes)
	sort.SliceStable(t.byLen, func(i, j int) bool { return len(t.byLen[i].Prefix) > len(t.byLen[j].Prefix) })
	for i, r := range t.byLen {
		if !strings.HasSuffix(r.Prefix, ".") {
			t.exact[r.Prefix] = i
		}
	}
	names := make([]string, 0, len(aliases))
	for name := range aliases {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		target := aliases[name]
		field := "aliases." + name
		switch {
		case name == "" || len(name) > wire.MaxMethodLen:
			errs.Addf("aliases", "alias names must be 1..%d bytes, got %q", wire.MaxMethodLen, name)
			continue
		case strings.Contains(name, "."):
			errs.Addf(field, "an alias is a bare name without \".\"; %q would shadow a method", name)
			continue
		case !wire.ValidMethod(target):
			errs.Addf(field, "target must be <service>.<Method>, got %q", target)
			continue
		}
		if _, ok := t.lookup(target); !ok {
			errs.Addf(field, "target %q has no route", target)
			continue
		}
		t.aliases[name] = target
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// validate checks one route; fields are relative to it.
func (r Route) validate() error {
	var errs config.Errors
	switch {
	case r.Prefix == "":
		errs.Addf("prefix", "must not be empty")
	case len(r.Prefix) > wire.MaxMethodLen:
		errs.Addf("prefix", "at most %d bytes, got %d", wire.MaxMethodLen, len(r.Prefix))
	case strings.HasSuffix(r.Prefix, "."):
		if !wire.ValidName(strings.TrimSuffix(r.Prefix, ".")) {
			errs.Addf("prefix", "must be <service>. or <service>.<Method>, got %q", r.Prefix)
		}
	case !wire.ValidMethod(r.Prefix):
		errs.Addf("prefix", "must be <service>. or <service>.<Method>, got %q", r.Prefix)
	}
	switch r.Kind {
	case KindStateless, KindStateful:
		if !wire.ValidName(r.Service) {
			errs.Addf("service", "must match [a-z][a-z0-9_-]{0,63}, got %q", r.Service)
		}
	case KindLocal:
		if r.Service != "edge" || !strings.HasPrefix(r.Prefix, "edge.") {
			errs.Addf("service", "local routes serve the broker's own edge.* methods: service edge, prefix edge. (got %q, %q)", r.Service, r.Prefix)
		}
	default:
		errs.Addf("kind", "must be one of %s|%s|%s, got %q", KindStateless, KindStateful, KindLocal, r.Kind)
	}
	if r.Kind == KindStateful {
		if !wire.ValidName(r.Key) {
			errs.Addf("key", "a stateful route needs a binding key matching [a-z][a-z0-9_-]{0,63}, got %q", r.Key)
		} else if r.Key == wire.KeyUser {
			errs.Addf("key", "%q is the login binding, not a stateful key", wire.KeyUser)
		}
	} else if r.Key != "" {
		errs.Addf("key", "only stateful routes have a key, got %q on a %s route", r.Key, r.Kind)
	}
	for i, k := range r.Binds {
		if !wire.ValidName(k) || k == wire.KeyUser {
			errs.Addf(fmt.Sprintf("binds[%d]", i), "must be a binding key matching [a-z][a-z0-9_-]{0,63} other than %q, got %q", wire.KeyUser, k)
		}
	}
	if r.Kind == KindLocal && (len(r.Binds) > 0 || r.Authenticates) {
		errs.Addf("kind", "a local route neither binds nor authenticates")
	}
	errs.Add(config.Range("timeout", r.Timeout, 0, maxTimeout))
	return errs.Err()
}

// lookup finds the route of a full method name: an exact route, else the
// longest "<prefix>." the method starts with.
func (t *RouteTable) lookup(method string) (Route, bool) {
	if i, ok := t.exact[method]; ok {
		return t.byLen[i], true
	}
	for _, r := range t.byLen {
		if strings.HasSuffix(r.Prefix, ".") && strings.HasPrefix(method, r.Prefix) && len(method) > len(r.Prefix) {
			return r, true
		}
	}
	return Route{}, false
}

// Resolve maps a method as a client sent it to the full method name (an
// alias's target, or the name itself) and its route. ok is false when no
// route matches.
func (t *RouteTable) Resolve(method string) (full string, r Route, ok bool) {
	if target, isAlias := t.aliases[method]; isAlias {
		method = target
	}
	r, ok = t.lookup(method)
	return method, r, ok
}

// Lookup returns the route of method (a full name or an alias).
func (t *RouteTable) Lookup(method string) (Route, bool) {
	_, r, ok := t.Resolve(method)
	return r, ok
}

// BindKeys returns the session keys the routes of service may bind: each
// stateful route's Key and each route's Binds (never wire.KeyUser, which
// only an Authenticates route's reply sets). They are what the service's
// replies may bind through any of those routes, and what its session
// directives (wire.EventSession) may bind on any connection.
func (t *RouteTable) BindKeys(service string) []string { return slices.Clone(t.binds[service]) }

// hasBinds reports whether the routes of service may bind any key.
func (t *RouteTable) hasBinds(service string) bool { return len(t.binds[service]) > 0 }

// mayBind reports whether the routes of service may bind key.
func (t *RouteTable) mayBind(service, key string) bool { return slices.Contains(t.binds[service], key) }

// Routes returns the routes in their configured order.
func (t *RouteTable) Routes() []Route {
	out := slices.Clone(t.routes)
	for i := range out {
		out[i].Binds = slices.Clone(out[i].Binds)
	}
	return out
}

// Aliases returns a copy of the aliases.
func (t *RouteTable) Aliases() map[string]string {
	out := make(map[string]string, len(t.aliases))
	for k, v := range t.aliases {
		out[k] = v
	}
	return out
}

// Services returns the names of the services the table routes to (not
// the broker's local ones), sorted.
func (t *RouteTable) Services() []string {
	var out []string
	for _, r := range t.routes {
		if r.Kind != KindLocal && !slices.Contains(out, r.Service) {
			out = append(out, r.Service)
		}
	}
	sort.Strings(out)
	return out
}

// FormatRoutes prints the route table and the aliases as aligned text, as
// `noonctl routes` shows them. A zero timeout prints as defaultTimeout.
func FormatRoutes(w io.Writer, routes []Route, aliases map[string]string, defaultTimeout time.Duration) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tSERVICE\tKIND\tKEY\tTIMEOUT\tACCESS\tBINDS")
	for _, r := range routes {
		key := r.Key
		if key == "" {
			key = "-"
		}
		timeout := r.Timeout
		if timeout == 0 {
			timeout = defaultTimeout
		}
		access := "login"
		if r.Public {
			access = "public"
		}
		if r.Authenticates {
			access += ",authenticates"
		}
		binds := "-"
		if len(r.Binds) > 0 {
			binds = strings.Join(r.Binds, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", r.Prefix, r.Service, r.Kind, key, timeout, access, binds)
	}
	if len(aliases) > 0 {
		fmt.Fprintln(tw, "\nALIAS\tMETHOD")
		names := make([]string, 0, len(aliases))
		for n := range aliases {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(tw, "%s\t%s\n", n, aliases[n])
		}
	}
	return tw.Flush()
}
