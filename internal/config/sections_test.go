package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// testModule is one entry of testSections, with an inlined part as a
// service's section has.
type testModule struct {
	testCommon `yaml:",inline"`
	TTL        time.Duration `yaml:"ttl"`
	Tags       []string      `yaml:"tags"`
}

// testSections is a section whose keys are fixed at run time.
type testSections map[string]*testModule

func (s testSections) ConfigSections() map[string]any {
	out := make(map[string]any, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}

func (s *testSections) UnmarshalYAML(n *yaml.Node) error {
	var raw map[string]yaml.Node
	if err := n.Decode(&raw); err != nil {
		return err
	}
	for k, node := range raw {
		m, ok := (*s)[k]
		if !ok {
			return fmt.Errorf("unknown section %q", k)
		}
		if err := node.Decode(m); err != nil {
			return err
		}
	}
	return nil
}

type testWithSections struct {
	Region   string       `yaml:"region"`
	Services testSections `yaml:"services"`
}

func newWithSections() testWithSections {
	return testWithSections{Services: testSections{
		"login":   {TTL: time.Hour},
		"my-room": {TTL: time.Minute},
	}}
}

func TestSections(t *testing.T) {
	c := newWithSections()
	names, err := EnvNames("NOON", &c)
	if err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"NOON_SERVICES_LOGIN_TTL":      "services.login.ttl",
		"NOON_SERVICES_LOGIN_REGION":   "services.login.region",
		"NOON_SERVICES_MY_ROOM_TAGS":   "services.my-room.tags",
		"NOON_SERVICES_MY_ROOM_REGION": "services.my-room.region",
	} {
		if names[name] != path {
			t.Errorf("%s = %q, want %q", name, names[name], path)
		}
	}
	if len(names) != 7 {
		t.Errorf("got %d names: %v", len(names), names)
	}

	file := writeFile(t, "services:\n  login:\n    ttl: 2h\n    region: eu\n")
	env := []string{"NOON_SERVICES_MY_ROOM_TAGS=a,b", "NOON_SERVICES_LOGIN_REGION=us"}
	sets := []string{"services.my-room.ttl=5s", "services.login.tags=x"}
	if err := Load(&c, file, "NOON", env, sets); err != nil {
		t.Fatal(err)
	}
	login, room := c.Services["login"], c.Services["my-room"]
	if login.TTL != 2*time.Hour || login.Region != "us" || strings.Join(login.Tags, ",") != "x" {
		t.Errorf("login = %+v; want ttl 2h (file), region us (env), tags x (-set)", login)
	}
	if room.TTL != 5*time.Second || strings.Join(room.Tags, ",") != "a,b" {
		t.Errorf("my-room = %+v; want ttl 5s (-set), tags a,b (env)", room)
	}

	for _, tt := range []struct{ path, want string }{
		{"services.nope.ttl", "config: services.nope.ttl: unknown option"},
		{"services.login.nope", "config: services.login.nope: unknown option"},
		{"services.login.ttl", `config: services.login.ttl: invalid duration "x"`},
	} {
		if err := Set(&c, tt.path, "x"); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Set(%s) = %v, want %q", tt.path, err, tt.want)
		}
	}
	if err := Set(&c, "services", "{login: {ttl: 3h}}"); err != nil || c.Services["login"].TTL != 3*time.Hour {
		t.Errorf("Set(services, yaml) = %v, login %+v", err, c.Services["login"])
	}
}
