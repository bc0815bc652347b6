package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testListener struct {
	Addr string `yaml:"addr"`
	TLS  bool   `yaml:"tls"`
}

type testBroker struct {
	MaxFrame  ByteSize          `yaml:"max_frame"`
	Heartbeat time.Duration     `yaml:"heartbeat"`
	Listeners []testListener    `yaml:"listeners"`
	Aliases   map[string]string `yaml:"aliases"`
	Tags      []string          `yaml:"tags"`
	Workers   int               `yaml:"workers"`
	Ratio     float64           `yaml:"ratio"`
	Debug     bool              `yaml:"debug"`
	Port      uint16            `yaml:"port"`
	Optional  *int              `yaml:"optional"`
	Secret    string            `yaml:"-"`
}

func (b *testBroker) Validate() error {
	var errs Errors
	errs.Add(Positive("max_frame", b.MaxFrame))
	errs.Add(Positive("workers", b.Workers))
	for i, l := range b.Listeners {
		errs.Add(Nested("listeners", Nested("["+string(rune('0'+i))+"]", HostPort("addr", l.Addr))))
	}
	return errs.Err()
}

type testYellow struct {
	Heartbeat time.Duration `yaml:"heartbeat"`
	Endpoint  string        `yaml:"endpoint"`
}

func (y testYellow) Validate() error {
	return Endpoint("endpoint", y.Endpoint)
}

type testCommon struct {
	Region string `yaml:"region"`
}

type testConfig struct {
	testCommon `yaml:",inline"`
	Broker     testBroker  `yaml:"broker"`
	Yellow     *testYellow `yaml:"yellow"`
	Plain      string
}

func defaults() testConfig {
	return testConfig{
		testCommon: testCommon{Region: "local"},
		Broker:     testBroker{MaxFrame: MiB, Heartbeat: time.Second, Workers: 1, Ratio: 0.5},
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "noon.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr string
	}{
		{in: "1048576", want: MiB},
		{in: "1MiB", want: MiB},
		{in: "64KiB", want: 64 * KiB},
		{in: "64kib", want: 64 * KiB},
		{in: "2MB", want: 2_000_000},
		{in: "2 MB", want: 2_000_000},
		{in: " 1GiB ", want: GiB},
		{in: "1k", want: 1024},
		{in: "10B", want: 10},
		{in: "0", want: 0},
		{in: "1.5KiB", want: 1536},
		{in: ".5MiB", want: 512 * KiB},
		{in: "7EiB", want: 7 * EiB},
		{in: "9223372036854775807", want: 1<<63 - 1},
		{in: "", wantErr: "invalid byte size: empty"},
		{in: "-1", wantErr: `invalid byte size "-1": negative`},
		{in: "-1MiB", wantErr: `invalid byte size "-1MiB": negative`},
		{in: "9223372036854775808", wantErr: `invalid byte size "9223372036854775808": over the maximum of 9223372036854775807 bytes`},
		{in: "8EiB", wantErr: `invalid byte size "8EiB": over the maximum`},
		{in: "100000000000TiB", wantErr: "over the maximum"},
		{in: "1.5B", wantErr: `invalid byte size "1.5B": not a whole number of bytes`},
		{in: "2XB", wantErr: `invalid byte size "2XB": unknown unit "XB"`},
		{in: "MiB", wantErr: `invalid byte size "MiB": want a number`},
		{in: "1e3", wantErr: `unknown unit "e3"`},
		{in: "0x10", wantErr: `unknown unit "x10"`},
		{in: strings.Repeat("1", 100), wantErr: "too long"},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseByteSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0"},
		{1, "1B"},
		{MiB, "1MiB"},
		{64 * KiB, "64KiB"},
		{2 * MB, "2MB"},
		{1500, "1500B"},
		{1536, "1536B"},
		{3 * GiB, "3GiB"},
		{-2 * KiB, "-2KiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in < 0 {
			continue
		}
		back, err := ParseByteSize(tt.in.String())
		if err != nil || back != tt.in {
			t.Errorf("round trip of %d: got %d, %v", int64(tt.in), back, err)
		}
	}
	// flag.Value
	var b ByteSize
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(&b, "max", "")
	if err := fs.Parse([]string{"-max", "2MiB"}); err != nil || b != 2*MiB {
		t.Fatalf("flag: %v %d", err, b)
	}
}

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		check   func(t *testing.T, c *testConfig)
		wantErr string // exact, with FILE for the path
	}{
		{
			name: "full",
			body: `
region: eu
broker:
  max_frame: 2MiB
  heartbeat: 250ms
  listeners:
    - addr: ":1055"
    - {addr: ":1056", tls: true}
  aliases: {CreateRoom: room.Create}
  tags: [a, b]
  workers: 4
  debug: yes
yellow:
  heartbeat: 1m30s
  endpoint: tcp://*:1060
plain: x
`,
			check: func(t *testing.T, c *testConfig) {
				want := testConfig{
					testCommon: testCommon{Region: "eu"},
					Broker: testBroker{
						MaxFrame: 2 * MiB, Heartbeat: 250 * time.Millisecond,
						Listeners: []testListener{{Addr: ":1055"}, {Addr: ":1056", TLS: true}},
						Aliases:   map[string]string{"CreateRoom": "room.Create"},
						Tags:      []string{"a", "b"}, Workers: 4, Ratio: 0.5, Debug: true,
					},
					Yellow: &testYellow{Heartbeat: 90 * time.Second, Endpoint: "tcp://*:1060"},
					Plain:  "x",
				}
				if !reflect.DeepEqual(*c, want) {
					t.Errorf("got  %+v\nwant %+v", *c, want)
				}
			},
		},
		{
			name: "integer byte size keeps other defaults",
			body: "broker:\n  max_frame: 65536\n",
			check: func(t *testing.T, c *testConfig) {
				if c.Broker.MaxFrame != 64*KiB || c.Broker.Heartbeat != time.Second || c.Region != "local" {
					t.Errorf("got %+v", *c)
				}
			},
		},
		{name: "empty file", body: "", check: func(t *testing.T, c *testConfig) {
			if !reflect.DeepEqual(*c, defaults()) {
				t.Errorf("changed: %+v", *c)
			}
		}},
		{name: "only comments", body: "# nothing\n", check: func(*testing.T, *testConfig) {}},
		{
			name:    "unknown key",
			body:    "broker:\n  workers: 2\n  max_fram: 2MiB\n",
			wantErr: `config: FILE:3: unknown key "broker.max_fram"`,
		},
		{
			name:    "unknown top-level key",
			body:    "brokre:\n  workers: 2\n",
			wantErr: `config: FILE:1: unknown key "brokre"`,
		},
		{
			name:    "unknown key in list item",
			body:    "broker:\n  listeners:\n    - addr: x\n      tsl: true\n",
			wantErr: `config: FILE:4: unknown key "broker.listeners[0].tsl"`,
		},
		{
			name:    "yaml dash field is not a key",
			body:    "broker:\n  secret: x\n",
			wantErr: `config: FILE:2: unknown key "broker.secret"`,
		},
		{
			name:    "bad duration",
			body:    "yellow:\n  heartbeat: 1x\n",
			wantErr: "config: FILE:2: yellow.heartbeat: cannot unmarshal !!str `1x` into time.Duration",
		},
		{
			name:    "duration without unit",
			body:    "broker:\n  heartbeat: 5\n",
			wantErr: "config: FILE:2: broker.heartbeat: cannot unmarshal !!int `5` into time.Duration",
		},
		{
			name:    "bad byte size",
			body:    "broker:\n  max_frame: -1\n",
			wantErr: `config: FILE:2: broker.max_frame: invalid byte size "-1": negative`,
		},
		{
			name:    "byte size overflow",
			body:    "broker:\n  max_frame: 9EiB\n",
			wantErr: `config: FILE:2: broker.max_frame: invalid byte size "9EiB": over the maximum of 9223372036854775807 bytes`,
		},
		{
			name: "two errors",
			body: "broker:\n  workers: many\n  nope: 1\n",
			wantErr: "config: FILE:2: broker.workers: cannot unmarshal !!str `many` into int\n" +
				`config: FILE:3: unknown key "broker.nope"`,
		},
		{
			name:    "duplicate key",
			body:    "broker:\n  workers: 1\n  workers: 2\n",
			wantErr: `config: FILE:3: broker.workers: mapping key "workers" already defined at line 2`,
		},
		{
			name:    "syntax error",
			body:    "broker:\n  workers: a: b\n",
			wantErr: "config: FILE:2: mapping values are not allowed in this context",
		},
		{
			name:    "two documents",
			body:    "region: a\n---\nregion: b\n",
			wantErr: "config: FILE:2: a second YAML document; a config file holds one",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.body)
			c := defaults()
			err := LoadFile(path, &c)
			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "FILE", path)
				if err == nil || err.Error() != want {
					t.Fatalf("error:\n got %v\nwant %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, &c)
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	c := defaults()
	if err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml"), &c); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if err := LoadFile("x", c); err == nil || !strings.Contains(err.Error(), "non-nil pointer to a struct") {
		t.Errorf("non-pointer: %v", err)
	}
}

func TestApplyEnv(t *testing.T) {
	env := []string{
		"NOON_BROKER_MAX_FRAME=2MiB",
		"NOON_YELLOW_HEARTBEAT=2s",
		"NOON_REGION=eu",
		"NOON_BROKER_TAGS=a, b ,c",
		"NOON_BROKER_DEBUG=on",
		"NOON_BROKER_PORT=1055",
		"NOON_BROKER_RATIO=0.25",
		"NOON_BROKER_OPTIONAL=7",
		"NOON_PLAIN=p",
		"NOON_BROKER_LISTENERS=ignored",  // slice of structs: no variable
		"NOON_BROKER_ALIASES=ignored",    // map: no variable
		"NOON_BROKER_SECRET=ignored",     // yaml:"-"
		"NOON_TEST_POSTGRES=postgres://", // not ours
		"OTHER_BROKER_WORKERS=9",
		"NOON_BROKER_WORKERS=8",
		"NOON_BROKER_WORKERS=3", // later duplicate wins
	}
	c := defaults()
	if err := ApplyEnv("NOON", &c, env); err != nil {
		t.Fatal(err)
	}
	seven := 7
	want := defaults()
	want.Region = "eu"
	want.Plain = "p"
	want.Broker.MaxFrame = 2 * MiB
	want.Broker.Tags = []string{"a", "b", "c"}
	want.Broker.Debug = true
	want.Broker.Port = 1055
	want.Broker.Ratio = 0.25
	want.Broker.Optional = &seven
	want.Broker.Workers = 3
	want.Yellow = &testYellow{Heartbeat: 2 * time.Second}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}

	// An empty list.
	c = defaults()
	c.Broker.Tags = []string{"x"}
	if err := ApplyEnv("NOON", &c, []string{"NOON_BROKER_TAGS="}); err != nil || len(c.Broker.Tags) != 0 || c.Broker.Tags == nil {
		t.Errorf("empty list: %v %#v", err, c.Broker.Tags)
	}
	// No prefix.
	c = defaults()
	if err := ApplyEnv("", &c, []string{"BROKER_WORKERS=5"}); err != nil || c.Broker.Workers != 5 {
		t.Errorf("no prefix: %v %d", err, c.Broker.Workers)
	}
}

func TestApplyEnvErrors(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"NOON_BROKER_WORKERS=abc", `config: env NOON_BROKER_WORKERS (broker.workers): invalid integer "abc"`},
		{"NOON_BROKER_PORT=70000", `config: env NOON_BROKER_PORT (broker.port): unsigned integer "70000" out of range`},
		{"NOON_BROKER_PORT=-1", `config: env NOON_BROKER_PORT (broker.port): invalid unsigned integer "-1"`},
		{"NOON_BROKER_DEBUG=maybe", `config: env NOON_BROKER_DEBUG (broker.debug): invalid boolean "maybe" (want true or false)`},
		{"NOON_YELLOW_HEARTBEAT=2x", `config: env NOON_YELLOW_HEARTBEAT (yellow.heartbeat): invalid duration "2x" (want e.g. 1s, 250ms, 1m30s)`},
		{"NOON_BROKER_HEARTBEAT=", `config: env NOON_BROKER_HEARTBEAT (broker.heartbeat): invalid duration "" (want e.g. 1s, 250ms, 1m30s)`},
		{"NOON_BROKER_MAX_FRAME=2XB", `config: env NOON_BROKER_MAX_FRAME (broker.max_frame): invalid byte size "2XB": unknown unit "XB" (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)`},
		{"NOON_BROKER_RATIO=half", `config: env NOON_BROKER_RATIO (broker.ratio): invalid number "half"`},
	}
	for _, tt := range tests {
		c := defaults()
		err := ApplyEnv("NOON", &c, []string{tt.env})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s:\n got %v\nwant %s", tt.env, err, tt.want)
		}
	}

	// Every bad variable is reported; good ones still apply.
	c := defaults()
	err := ApplyEnv("NOON", &c, []string{"NOON_BROKER_WORKERS=x", "NOON_BROKER_RATIO=y", "NOON_REGION=eu"})
	if err == nil || strings.Count(err.Error(), "config: env") != 2 || c.Region != "eu" {
		t.Errorf("got %v, region %q", err, c.Region)
	}

	// Two fields with the same variable.
	type clash struct {
		A struct {
			BC int `yaml:"b_c"`
		} `yaml:"a"`
		AB struct {
			C int `yaml:"c"`
		} `yaml:"a_b"`
	}
	var cl clash
	err = ApplyEnv("X", &cl, []string{"X_A_B_C=1"})
	if err == nil || err.Error() != "config: env X_A_B_C is ambiguous: it names a.b_c and a_b.c" {
		t.Errorf("clash: %v", err)
	}
}

func TestEnvNames(t *testing.T) {
	c := defaults()
	names, err := EnvNames("NOON", &c)
	if err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"NOON_BROKER_MAX_FRAME": "broker.max_frame",
		"NOON_YELLOW_HEARTBEAT": "yellow.heartbeat",
		"NOON_REGION":           "region",
		"NOON_PLAIN":            "plain",
	} {
		if names[name] != path {
			t.Errorf("%s = %q, want %q", name, names[name], path)
		}
	}
	if _, ok := names["NOON_BROKER_LISTENERS"]; ok {
		t.Error("slice of structs has a variable")
	}
	if len(names) != 12 {
		t.Errorf("got %d names: %v", len(names), names)
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		path, value string
		check       func(c *testConfig) bool
	}{
		{"broker.max_frame", "2MiB", func(c *testConfig) bool { return c.Broker.MaxFrame == 2*MiB }},
		{"broker.heartbeat", "250ms", func(c *testConfig) bool { return c.Broker.Heartbeat == 250*time.Millisecond }},
		{"yellow.heartbeat", "3s", func(c *testConfig) bool { return c.Yellow != nil && c.Yellow.Heartbeat == 3*time.Second }},
		{"region", "us", func(c *testConfig) bool { return c.Region == "us" }},
		{"broker.tags", "x,y", func(c *testConfig) bool { return reflect.DeepEqual(c.Broker.Tags, []string{"x", "y"}) }},
		{"broker.aliases.CreateRoom", "room.Create", func(c *testConfig) bool { return c.Broker.Aliases["CreateRoom"] == "room.Create" }},
		{"broker.aliases.a.b", "c", func(c *testConfig) bool { return c.Broker.Aliases["a.b"] == "c" }},
		{"broker.listeners", "[{addr: ':1055'}, {addr: ':1056', tls: true}]", func(c *testConfig) bool {
			return reflect.DeepEqual(c.Broker.Listeners, []testListener{{Addr: ":1055"}, {Addr: ":1056", TLS: true}})
		}},
		{"broker.aliases", "{Join: room.Join}", func(c *testConfig) bool { return c.Broker.Aliases["Join"] == "room.Join" }},
		{"yellow", "{endpoint: 'tcp://y:1060'}", func(c *testConfig) bool { return c.Yellow != nil && c.Yellow.Endpoint == "tcp://y:1060" }},
		{"broker", "{workers: 9}", func(c *testConfig) bool { return c.Broker.Workers == 9 && c.Broker.MaxFrame == MiB }},
	}
	for _, tt := range tests {
		c := defaults()
		if err := Set(&c, tt.path, tt.value); err != nil {
			t.Errorf("Set(%s, %q): %v", tt.path, tt.value, err)
			continue
		}
		if !tt.check(&c) {
			t.Errorf("Set(%s, %q): got %+v", tt.path, tt.value, c)
		}
	}
}

func TestSetErrors(t *testing.T) {
	tests := []struct {
		path, value, want string
	}{
		{"broker.max_fram", "1", "config: broker.max_fram: unknown option"},
		{"nope", "1", "config: nope: unknown option"},
		{"broker.workers.x", "1", "config: broker.workers.x: unknown option"},
		{"broker.secret", "1", "config: broker.secret: unknown option"},
		{"broker.listeners.0.addr", "x", "config: broker.listeners.0.addr: unknown option"},
		{"", "1", "config: empty option path"},
		{"broker.max_frame", "lots", `config: broker.max_frame: invalid byte size "lots": want a number with an optional unit, e.g. 64KiB`},
		{"broker.workers", "1.5", `config: broker.workers: invalid integer "1.5"`},
		{"broker.listeners", "[{adr: x}]", "config: broker.listeners: invalid YAML value for a []config.testListener: unmarshal errors: line 1: field adr not found in type config.testListener"},
	}
	for _, tt := range tests {
		c := defaults()
		err := Set(&c, tt.path, tt.value)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Set(%q, %q):\n got %v\nwant %s", tt.path, tt.value, err, tt.want)
		}
		var fe FieldError
		if err != nil && !errors.As(err, &fe) {
			t.Errorf("Set(%q): %T is not a FieldError", tt.path, err)
		}
	}
}

func TestSetFlag(t *testing.T) {
	var sets SetFlag
	fs := flag.NewFlagSet("noon", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	fs.Var(&sets, "set", "override")
	if err := fs.Parse([]string{"-set", "broker.workers=2", "-set", "broker.workers=3", "-set", "region=a=b"}); err != nil {
		t.Fatal(err)
	}
	if sets.String() != "broker.workers=2 broker.workers=3 region=a=b" {
		t.Errorf("String() = %q", sets.String())
	}
	c := defaults()
	if err := sets.Apply(&c); err != nil {
		t.Fatal(err)
	}
	if c.Broker.Workers != 3 || c.Region != "a=b" {
		t.Errorf("got %+v", c)
	}
	if err := fs.Parse([]string{"-set", "novalue"}); err == nil || !strings.Contains(err.Error(), `want path=value, e.g. broker.max_frame=2MiB, got "novalue"`) {
		t.Errorf("bad -set: %v", err)
	}
	if err := fs.Parse([]string{"-set", "=x"}); err == nil {
		t.Error("empty path accepted")
	}
}

func TestLoadPrecedence(t *testing.T) {
	file := writeFile(t, "region: file\nbroker:\n  workers: 2\n  ratio: 0.75\n  tags: [f]\n")
	env := []string{"NOON_BROKER_WORKERS=3", "NOON_BROKER_TAGS=e"}
	sets := []string{"broker.workers=4"}
	tests := []struct {
		name        string
		file        string
		env         []string
		sets        []string
		wantWorkers int
		wantRatio   float64
		wantRegion  string
		wantTags    []string
	}{
		{"defaults", "", nil, nil, 1, 0.5, "local", nil},
		{"file over defaults", file, nil, nil, 2, 0.75, "file", []string{"f"}},
		{"env over file", file, env, nil, 3, 0.75, "file", []string{"e"}},
		{"env over defaults", "", env, nil, 3, 0.5, "local", []string{"e"}},
		{"set over env", file, env, sets, 4, 0.75, "file", []string{"e"}},
		{"set over file", file, nil, sets, 4, 0.75, "file", []string{"f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults()
			if err := Load(&c, tt.file, "NOON", tt.env, tt.sets); err != nil {
				t.Fatal(err)
			}
			if c.Broker.Workers != tt.wantWorkers || c.Broker.Ratio != tt.wantRatio || c.Region != tt.wantRegion || !reflect.DeepEqual(c.Broker.Tags, tt.wantTags) {
				t.Errorf("got workers=%d ratio=%v region=%q tags=%v", c.Broker.Workers, c.Broker.Ratio, c.Region, c.Broker.Tags)
			}
		})
	}

	// Each layer's error stops the load.
	c := defaults()
	if err := Load(&c, writeFile(t, "x: 1\n"), "NOON", nil, nil); err == nil || !strings.Contains(err.Error(), `unknown key "x"`) {
		t.Errorf("file error: %v", err)
	}
	if err := Load(&c, "", "NOON", []string{"NOON_BROKER_WORKERS=x"}, nil); err == nil || !strings.Contains(err.Error(), "NOON_BROKER_WORKERS") {
		t.Errorf("env error: %v", err)
	}
	if err := Load(&c, "", "NOON", nil, []string{"broker.nope=1"}); err == nil || err.Error() != "config: broker.nope: unknown option" {
		t.Errorf("set error: %v", err)
	}
}

func TestFieldErrors(t *testing.T) {
	if got := (FieldError{Field: "broker.max_frame", Msg: "must be positive, got 0"}).Error(); got != "config: broker.max_frame: must be positive, got 0" {
		t.Errorf("FieldError = %q", got)
	}
	if got := (FieldError{Msg: "bad"}).Error(); got != "config: bad" {
		t.Errorf("FieldError without field = %q", got)
	}
	var errs Errors
	if errs.Err() != nil {
		t.Error("empty Errors is not a nil error")
	}
	errs.Add(nil)
	errs.Add(FieldError{Field: "a", Msg: "x"})
	if _, ok := errs.Err().(FieldError); !ok {
		t.Errorf("one error: %T", errs.Err())
	}
	errs.Addf("b", "must be %d", 1)
	errs.Add(errors.Join(FieldError{Field: "c", Msg: "y"}, errors.New("plain")))
	if got := errs.Err().Error(); got != "config: a: x; b: must be 1; c: y; plain" {
		t.Errorf("Errors = %q", got)
	}
	var fe FieldError
	if !errors.As(errs.Err(), &fe) || fe.Field != "a" {
		t.Errorf("errors.As: %+v", fe)
	}
	if got := Nested("log", errs.Err()).Error(); got != "config: log.a: x; log.b: must be 1; log.c: y; log: plain" {
		t.Errorf("Nested = %q", got)
	}
	if Nested("x", nil) != nil {
		t.Error("Nested(nil) != nil")
	}
}

func TestValidate(t *testing.T) {
	c := defaults()
	c.Broker.Workers = 0
	c.Broker.Listeners = []testListener{{Addr: ":1055"}, {Addr: "nope"}}
	c.Yellow = &testYellow{Endpoint: "udp://x:1"}
	err := Validate(&c)
	want := `config: broker.workers: must be positive, got 0; broker.listeners[1].addr: must be host:port, got "nope"; yellow.endpoint: must be tcp://host:port, got "udp://x:1"`
	if err == nil || err.Error() != want {
		t.Errorf("Validate:\n got %v\nwant %s", err, want)
	}
	c = defaults()
	if err := Validate(c); err != nil { // by value: pointer-receiver Validate still runs
		t.Errorf("valid config: %v", err)
	}
	c.Broker.MaxFrame = 0
	if err := Validate(c); err == nil || err.Error() != "config: broker.max_frame: must be positive, got 0" {
		t.Errorf("by value: %v", err)
	}
}

func TestHelpers(t *testing.T) {
	tests := []struct {
		err  error
		want string // "" = valid
	}{
		{Positive("n", 1), ""},
		{Positive("n", 0), "config: n: must be positive, got 0"},
		{Positive("d", time.Duration(0)), "config: d: must be positive, got 0s"},
		{Positive("b", ByteSize(-1)), "config: b: must be positive, got -1B"},
		{NonNegative("n", 0), ""},
		{NonNegative("n", -1.5), "config: n: must not be negative, got -1.5"},
		{Range("n", 5, 1, 10), ""},
		{Range("n", 11, 1, 10), "config: n: must be between 1 and 10, got 11"},
		{NonEmpty("s", "x"), ""},
		{NonEmpty("s", "  "), "config: s: must not be empty"},
		{OneOf("l", "info", "debug", "info"), ""},
		{OneOf("l", "loud", "debug", "info"), `config: l: must be one of debug|info, got "loud"`},
		{HostPort("a", ":1055"), ""},
		{HostPort("a", "127.0.0.1:0"), ""},
		{HostPort("a", "localhost:65535"), ""},
		{HostPort("a", "[::1]:1055"), ""},
		{HostPort("a", ""), "config: a: must be host:port, got an empty string"},
		{HostPort("a", "localhost"), `config: a: must be host:port, got "localhost"`},
		{HostPort("a", ":65536"), `config: a: port must be a number from 0 to 65535, got "65536" in ":65536"`},
		{HostPort("a", ":-1"), `config: a: port must be a number from 0 to 65535, got "-1" in ":-1"`},
		{HostPort("a", ":http"), `config: a: port must be a number from 0 to 65535, got "http" in ":http"`},
		{HostPort("a", "::1:80"), `config: a: must be host:port, got "::1:80"`},
		{Endpoint("e", "tcp://*:1060"), ""},
		{Endpoint("e", "tcp://*:0"), ""},
		{Endpoint("e", "tcp://*:*"), ""},
		{Endpoint("e", "tcp://127.0.0.1:1060"), ""},
		{Endpoint("e", "tcp://[::1]:1060"), ""},
		{Endpoint("e", "ipc:///tmp/noon.sock"), `config: e: must be tcp://host:port, got "ipc:///tmp/noon.sock"`},
		{Endpoint("e", "127.0.0.1:1060"), `config: e: must be tcp://host:port, got "127.0.0.1:1060"`},
		{Endpoint("e", "tcp://:1060"), `config: e: must be tcp://host:port, got "tcp://:1060"`},
		{Endpoint("e", "tcp://host"), `config: e: must be tcp://host:port, got "tcp://host"`},
		{Endpoint("e", "tcp://host:99999"), `config: e: port must be a number from 0 to 65535 or *, got "tcp://host:99999"`},
		{DialEndpoint("e", "tcp://yellow:1060"), ""},
		{DialEndpoint("e", "tcp://*:1060"), `config: e: host must not be a wildcard, got "tcp://*:1060"`},
		{DialEndpoint("e", "tcp://h:0"), `config: e: port must be 1..65535, got "tcp://h:0"`},
	}
	for i, tt := range tests {
		got := ""
		if tt.err != nil {
			got = tt.err.Error()
		}
		if got != tt.want {
			t.Errorf("%d: got %q, want %q", i, got, tt.want)
		}
	}
}
