package broker_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/internal/config"
)

// validOptions are options that pass Validate.
func validOptions() broker.Options {
	o := broker.NewOptions()
	o.Yellows = []string{"tcp://127.0.0.1:1060"}
	return o
}

func TestOptionsValidate(t *testing.T) {
	if err := validOptions().Validate(); err != nil {
		t.Fatalf("defaults with a yellow: %v", err)
	}
	if err := broker.NewOptions().Validate(); err == nil || !strings.Contains(err.Error(), "yellows: at least one yellow") {
		t.Fatalf("defaults without yellows: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*broker.Options)
		want string // a substring of the error: the field and what is wrong
	}{
		{"id", func(o *broker.Options) { o.ID = "has space" }, "id: "},
		{"edge", func(o *broker.Options) { o.Edge.MaxInFlight = 0 }, "edge.max_in_flight: must be between 1 and 65536, got 0"},
		{"advertise wildcard", func(o *broker.Options) { o.Advertise = "0.0.0.0:1055" }, "advertise: must be a host clients can dial"},
		{"advertise port", func(o *broker.Options) { o.Advertise = "broker1" }, `advertise: must be host:port, got "broker1"`},
		{"control", func(o *broker.Options) { o.Control = "ipc:///tmp/x" }, "control: must be tcp://host:port"},
		{"yellow", func(o *broker.Options) { o.Yellows = []string{"tcp://127.0.0.1:0"} }, "yellows[0]: port must be 1..65535"},
		{"heartbeat", func(o *broker.Options) { o.Heartbeat = time.Millisecond }, "heartbeat: must be between 10ms and 1m0s, got 1ms"},
		{"default_timeout", func(o *broker.Options) { o.DefaultTimeout = 0 }, "default_timeout: must be between"},
		{"max_hops", func(o *broker.Options) { o.MaxHops = 11 }, "max_hops: must be between 0 and 10, got 11"},
		{"drain_grace", func(o *broker.Options) { o.DrainGrace = -time.Second }, "drain_grace: must be between"},
		{"pub_bind", func(o *broker.Options) { o.PubBind = "udp://127.0.0.1:0" }, "pub_bind: "},
		{"resume_grace", func(o *broker.Options) { o.ResumeGrace = time.Hour }, "resume_grace: must be between 0s and 10m0s, got 1h0m0s"},
		{"route kind", func(o *broker.Options) { o.Routes[1].Kind = "magic" }, `routes[1].kind: must be one of stateless|stateful|local, got "magic"`},
		{"route prefix", func(o *broker.Options) { o.Routes[1].Prefix = "Echo" }, `routes[1].prefix: must be <service>. or <service>.<Method>, got "Echo"`},
		{"route key", func(o *broker.Options) { o.Routes[8].Key = "" }, "routes[8].key: a stateful route needs a binding key"},
		{"stateless key", func(o *broker.Options) { o.Routes[1].Key = "room" }, `routes[1].key: only stateful routes have a key, got "room" on a stateless route`},
		{"route timeout", func(o *broker.Options) { o.Routes[1].Timeout = time.Hour }, "routes[1].timeout: must be between 0s and 1m0s"},
		{"duplicate", func(o *broker.Options) {
			o.Routes = append(o.Routes, broker.Route{Prefix: "echo.", Service: "echo2", Kind: broker.KindStateless})
		},
			`routes[13].prefix: "echo." is already routed by routes[1]`},
		{"local", func(o *broker.Options) { o.Routes[0].Service = "login" }, "routes[0].service: local routes serve"},
		{"binds user", func(o *broker.Options) { o.Routes[8].Binds = []string{"user"} }, "routes[8].binds[0]: must be a binding key"},
		{"alias target", func(o *broker.Options) { o.Aliases = map[string]string{"Fly": "plane.Fly"} }, `aliases.Fly: target "plane.Fly" has no route`},
		{"alias name", func(o *broker.Options) { o.Aliases = map[string]string{"echo.X": "echo.Echo"} }, "aliases.echo.X: an alias is a bare name"},
		{"auth method", func(o *broker.Options) { o.AuthValidateMethod = "edge.Hello" }, `auth_validate_method: "edge.Hello" has no route to a service`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions()
			tc.mod(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestOptionsYAML loads options from YAML with the config loader: every
// field is snake_case and routes replace the defaults.
func TestOptionsYAML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.yaml")
	yaml := `
id: broker-1
advertise: play.example.com:1055
control: tcp://0.0.0.0:1057
yellows: [tcp://10.0.0.1:1060, tcp://10.0.0.2:1060]
heartbeat: 2s
default_timeout: 3s
max_hops: 2
drain_grace: 20s
pub_bind: tcp://0.0.0.0:1059
resume_grace: 45s
auth_validate_method: login.Validate
edge:
  tcp_addr: ":2055"
  max_in_flight: 16
routes:
  - {prefix: "edge.", service: edge, kind: local, public: true}
  - {prefix: "login.", service: login, kind: stateless, public: true, authenticates: true}
  - {prefix: "room.", service: room, kind: stateful, key: room, timeout: 2s}
aliases:
  JoinRoom: room.Join
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	o := broker.NewOptions()
	if err := config.LoadFile(path, &o); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.ID != "broker-1" || o.Advertise != "play.example.com:1055" || len(o.Yellows) != 2 || o.Heartbeat != 2*time.Second ||
		o.DefaultTimeout != 3*time.Second || o.MaxHops != 2 || o.DrainGrace != 20*time.Second ||
		o.PubBind != "tcp://0.0.0.0:1059" || o.ResumeGrace != 45*time.Second ||
		o.Edge.TCPAddr != ":2055" || o.Edge.MaxInFlight != 16 || o.Edge.WSAddr != "127.0.0.1:1056" { // the default
		t.Fatalf("options %+v", o)
	}
	if len(o.Routes) != 3 || o.Routes[2].Key != "room" || o.Routes[2].Timeout != 2*time.Second {
		t.Fatalf("routes %+v", o.Routes)
	}
	table, err := broker.NewRouteTable(o.Routes, o.Aliases)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := table.Lookup("JoinRoom"); !ok || r.Service != "room" {
		t.Fatalf("JoinRoom -> %+v %v", r, ok)
	}
	if _, ok := table.Lookup("CreateRoom"); ok {
		t.Fatal("the default aliases survived a config that sets aliases")
	}
}

func TestRoutes(t *testing.T) {
	table, err := broker.NewRouteTable(broker.DefaultRoutes(), broker.DefaultAliases())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, full, prefix string
		public, auth         bool
	}{
		{"edge.Hello", "edge.Hello", "edge.", true, false},
		{"echo.Echo", "echo.Echo", "echo.", true, false},
		{"login.Login", "login.Login", "login.Login", true, true},
		{"login.Validate", "login.Validate", "login.Validate", true, false},
		{"login.Logout", "login.Logout", "login.Logout", false, true},
		{"login.LogoutAll", "login.LogoutAll", "login.LogoutAll", false, true},
		{"login.LoginAgain", "login.LoginAgain", "login.", false, false}, // a full-method route matches exactly
		{"room.Join", "room.Join", "room.", false, false},
		{"Login", "login.Login", "login.Login", true, true},
		{"CreateRoom", "room.Create", "room.", false, false},
	} {
		full, r, ok := table.Resolve(tc.method)
		if !ok || full != tc.full || r.Prefix != tc.prefix || r.Public != tc.public || r.Authenticates != tc.auth {
			t.Errorf("Resolve(%q) = %q %+v %v, want %q on %q (public %v, authenticates %v)", tc.method, full, r, ok, tc.full, tc.prefix, tc.public, tc.auth)
		}
	}
	for _, m := range []string{"", "echo.", "echo", "nosuch.Method", "Echo.Echo", "edgeX.Hello", "NoAlias"} {
		if r, ok := table.Lookup(m); ok {
			t.Errorf("Lookup(%q) = %+v, want no route", m, r)
		}
	}
	if r, _ := table.Lookup("room.Join"); r.Kind != broker.KindStateful || r.Key != "room" {
		t.Errorf("room route %+v", r)
	}
	if got, want := strings.Join(table.Services(), ","), "echo,friends,game,login,match,pay,room"; got != want {
		t.Errorf("Services() = %s, want %s", got, want)
	}
}

func TestFormatRoutes(t *testing.T) {
	var sb strings.Builder
	routes := []broker.Route{
		{Prefix: "edge.", Service: "edge", Kind: broker.KindLocal, Public: true},
		{Prefix: "login.Login", Service: "login", Kind: broker.KindStateless, Public: true, Authenticates: true},
		{Prefix: "room.", Service: "room", Kind: broker.KindStateful, Key: "room", Timeout: 2 * time.Second},
	}
	if err := broker.FormatRoutes(&sb, routes, map[string]string{"JoinRoom": "room.Join"}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	want := `PREFIX       SERVICE  KIND       KEY   TIMEOUT  ACCESS                BINDS
edge.        edge     local      -     5s       public                -
login.Login  login    stateless  -     5s       public,authenticates  -
room.        room     stateful   room  2s       login                 -

ALIAS     METHOD
JoinRoom  room.Join
`
	if sb.String() != want {
		t.Fatalf("FormatRoutes:\n%s\nwant:\n%s", sb.String(), want)
	}
}

// TestNewAdvertise checks what New derives from wildcard listeners, and
// that it refuses bad options and busy ports.
func TestNewAdvertise(t *testing.T) {
	o := validOptions()
	o.Yellows = []string{"tcp://127.0.0.1:1"} // none there: New does not need one
	o.Edge.TCPAddr, o.Edge.WSAddr = "0.0.0.0:0", "0.0.0.0:0"
	o.Control = "tcp://0.0.0.0:0"
	// A control socket on a wildcard address needs TLS, or insecure.
	if _, err := broker.New(o, testLogger(t), nil); err == nil || !strings.Contains(err.Error(), "broker: control: tcp://0.0.0.0:0 is not a loopback address") {
		t.Fatalf("plain control on a wildcard address: %v", err)
	}
	o.Control = "tcp://127.0.0.1:0"
	o.PubBind = "tcp://0.0.0.0:0"
	if _, err := broker.New(o, testLogger(t), nil); err == nil || !strings.Contains(err.Error(), "broker: pub_bind: tcp://0.0.0.0:0 is not a loopback address") {
		t.Fatalf("plain pub on a wildcard address: %v", err)
	}
	o.Control = "tcp://0.0.0.0:0"
	o.Insecure = true
	b, err := broker.New(o, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Exit()
	_, port, _ := net.SplitHostPort(b.TCPAddr().String())
	if want := "127.0.0.1:" + port; b.Advertise() != want {
		t.Errorf("advertise %q, want %q", b.Advertise(), want)
	}
	if !strings.HasPrefix(b.ControlEndpoint(), "tcp://127.0.0.1:") || strings.HasSuffix(b.ControlEndpoint(), ":0") {
		t.Errorf("control endpoint %q", b.ControlEndpoint())
	}
	if !strings.HasPrefix(b.PubEndpoint(), "tcp://127.0.0.1:") || strings.HasSuffix(b.PubEndpoint(), ":0") {
		t.Errorf("pub endpoint %q", b.PubEndpoint())
	}
	if !strings.HasPrefix(b.ID(), "broker-") {
		t.Errorf("generated id %q", b.ID())
	}

	o2 := validOptions()
	o2.Edge.TCPAddr = b.TCPAddr().String() // busy
	o2.Edge.WSAddr = ""
	if _, err := broker.New(o2, nil, nil); err == nil || !strings.Contains(err.Error(), "listen tcp_addr") {
		t.Errorf("New on a busy port: %v", err)
	}
	o3 := validOptions()
	o3.MaxHops = -1
	if _, err := broker.New(o3, nil, nil); err == nil || !strings.Contains(err.Error(), "max_hops") {
		t.Errorf("New with bad options: %v", err)
	}
	o4 := validOptions()
	o4.Edge.TCPAddr, o4.Edge.WSAddr = "127.0.0.1:0", ""
	o4.Advertise = "play.example.com:1055"
	b4, err := broker.New(o4, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b4.Exit()
	if b4.Advertise() != "play.example.com:1055" || !strings.HasPrefix(b4.ControlEndpoint(), "tcp://127.0.0.1:") {
		t.Errorf("advertise %q, control %q", b4.Advertise(), b4.ControlEndpoint())
	}
}
