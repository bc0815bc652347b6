package yellow

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

func testInstance(service, id string) *platformpb.Instance {
	return &platformpb.Instance{
		Service:  service,
		Id:       id,
		Router:   "tcp://127.0.0.1:7000",
		Pub:      "tcp://127.0.0.1:7001",
		Kind:     platformpb.ServiceKind_SERVICE_KIND_STATELESS,
		Version:  "0.1.0",
		Capacity: 64,
		Load:     0.25,
		State:    platformpb.InstanceState_INSTANCE_STATE_READY,
		Meta:     map[string]string{"zone": "a"},
	}
}

func TestValidateInstance(t *testing.T) {
	bigMeta := map[string]string{}
	for i := range 17 {
		bigMeta[string(rune('a'+i))] = "v"
	}
	tests := []struct {
		name   string
		change func(*platformpb.Instance)
		err    string // "" = valid
	}{
		{"valid", func(*platformpb.Instance) {}, ""},
		{"service empty", func(i *platformpb.Instance) { i.Service = "" }, "invalid record: service: required"},
		{"service upper", func(i *platformpb.Instance) { i.Service = "Login" }, `invalid record: service: must match [a-z][a-z0-9_-]{0,63}, got "Login"`},
		{"service digit first", func(i *platformpb.Instance) { i.Service = "1x" }, `invalid record: service: must match [a-z][a-z0-9_-]{0,63}, got "1x"`},
		{"service dot", func(i *platformpb.Instance) { i.Service = "a.b" }, `invalid record: service: must match [a-z][a-z0-9_-]{0,63}, got "a.b"`},
		{"service 64", func(i *platformpb.Instance) { i.Service = "a" + strings.Repeat("b_-9", 15) + "xyz" }, ""},
		{"service 65", func(i *platformpb.Instance) { i.Service = strings.Repeat("a", 65) }, `invalid record: service: must match [a-z][a-z0-9_-]{0,63}, got "` + strings.Repeat("a", 64) + `..."`},
		{"id empty", func(i *platformpb.Instance) { i.Id = "" }, "invalid record: id: required"},
		{"id 128", func(i *platformpb.Instance) { i.Id = strings.Repeat("x", 128) }, ""},
		{"id 129", func(i *platformpb.Instance) { i.Id = strings.Repeat("x", 129) }, "invalid record: id: at most 128 bytes, got 129"},
		{"id space", func(i *platformpb.Instance) { i.Id = "a b" }, `invalid record: id: must be printable with no spaces, got "a b"`},
		{"id control", func(i *platformpb.Instance) { i.Id = "a\x00" }, `invalid record: id: must be printable with no spaces, got "a\x00"`},
		{"id unicode", func(i *platformpb.Instance) { i.Id = "héllo-1" }, ""},
		{"router empty", func(i *platformpb.Instance) { i.Router = "" }, "invalid record: router: required"},
		{"router no scheme", func(i *platformpb.Instance) { i.Router = "127.0.0.1:5" }, `invalid record: router: must be tcp://host:port, got "127.0.0.1:5"`},
		{"router ipc", func(i *platformpb.Instance) { i.Router = "ipc:///tmp/x" }, `invalid record: router: must be tcp://host:port, got "ipc:///tmp/x"`},
		{"router no port", func(i *platformpb.Instance) { i.Router = "tcp://host" }, `invalid record: router: must be tcp://host:port, got "tcp://host"`},
		{"router no host", func(i *platformpb.Instance) { i.Router = "tcp://:5" }, `invalid record: router: must be tcp://host:port, got "tcp://:5"`},
		{"router star", func(i *platformpb.Instance) { i.Router = "tcp://*:5555" }, `invalid record: router: host must not be a wildcard, got "tcp://*:5555"`},
		{"router zero ip", func(i *platformpb.Instance) { i.Router = "tcp://0.0.0.0:5555" }, `invalid record: router: host must not be a wildcard, got "tcp://0.0.0.0:5555"`},
		{"router v6 any", func(i *platformpb.Instance) { i.Router = "tcp://[::]:5555" }, `invalid record: router: host must not be a wildcard, got "tcp://[::]:5555"`},
		{"router v6", func(i *platformpb.Instance) { i.Router = "tcp://[::1]:5555" }, ""},
		{"router hostname", func(i *platformpb.Instance) { i.Router = "tcp://room-1.internal:5555" }, ""},
		{"router bad host", func(i *platformpb.Instance) { i.Router = "tcp://a/b:5555" }, `invalid record: router: bad host in "tcp://a/b:5555"`},
		{"router port 0", func(i *platformpb.Instance) { i.Router = "tcp://h:0" }, `invalid record: router: port must be 1..65535, got "tcp://h:0"`},
		{"router port 65536", func(i *platformpb.Instance) { i.Router = "tcp://h:65536" }, `invalid record: router: port must be a number from 0 to 65535 or *, got "tcp://h:65536"`},
		{"router port 65535", func(i *platformpb.Instance) { i.Router = "tcp://h:65535" }, ""},
		{"router port name", func(i *platformpb.Instance) { i.Router = "tcp://h:http" }, `invalid record: router: port must be a number from 0 to 65535 or *, got "tcp://h:http"`},
		{"router port neg", func(i *platformpb.Instance) { i.Router = "tcp://h:-1" }, `invalid record: router: port must be a number from 0 to 65535 or *, got "tcp://h:-1"`},
		{"router too long", func(i *platformpb.Instance) { i.Router = "tcp://" + strings.Repeat("h", 300) + ":1" }, "invalid record: router: at most 265 bytes, got 308"},
		{"pub empty", func(i *platformpb.Instance) { i.Pub = "" }, ""},
		{"pub star", func(i *platformpb.Instance) { i.Pub = "tcp://*:1" }, `invalid record: pub: host must not be a wildcard, got "tcp://*:1"`},
		{"pub bad", func(i *platformpb.Instance) { i.Pub = "udp://h:1" }, `invalid record: pub: must be tcp://host:port, got "udp://h:1"`},
		{"kind unset", func(i *platformpb.Instance) { i.Kind = 0 }, "invalid record: kind: must be set"},
		{"kind unknown", func(i *platformpb.Instance) { i.Kind = 9 }, "invalid record: kind: unknown value 9"},
		{"kind stateful", func(i *platformpb.Instance) { i.Kind = platformpb.ServiceKind_SERVICE_KIND_STATEFUL }, ""},
		{"kind broker", func(i *platformpb.Instance) { i.Kind = platformpb.ServiceKind_SERVICE_KIND_BROKER }, ""},
		{"version long", func(i *platformpb.Instance) { i.Version = strings.Repeat("1", 65) }, "invalid record: version: at most 64 bytes, got 65"},
		{"version space", func(i *platformpb.Instance) { i.Version = "1 2" }, `invalid record: version: must be printable with no spaces, got "1 2"`},
		{"capacity max", func(i *platformpb.Instance) { i.Capacity = 1_000_000 }, ""},
		{"capacity over", func(i *platformpb.Instance) { i.Capacity = 1_000_001 }, "invalid record: capacity: at most 1000000, got 1000001"},
		{"load negative", func(i *platformpb.Instance) { i.Load = -0.1 }, "invalid record: load: must be a finite number in [0, 1000000], got -0.1"},
		{"load NaN", func(i *platformpb.Instance) { i.Load = math.NaN() }, "invalid record: load: must be a finite number in [0, 1000000], got NaN"},
		{"load Inf", func(i *platformpb.Instance) { i.Load = math.Inf(1) }, "invalid record: load: must be a finite number in [0, 1000000], got +Inf"},
		{"load over", func(i *platformpb.Instance) { i.Load = 1e6 + 1 }, "invalid record: load: must be a finite number in [0, 1000000], got 1.000001e+06"},
		{"load max", func(i *platformpb.Instance) { i.Load = 1e6 }, ""},
		{"state unset", func(i *platformpb.Instance) { i.State = 0 }, "invalid record: state: must be READY or DRAINING, got INSTANCE_STATE_UNSPECIFIED"},
		{"state unknown", func(i *platformpb.Instance) { i.State = 7 }, "invalid record: state: must be READY or DRAINING, got 7"},
		{"state draining", func(i *platformpb.Instance) { i.State = platformpb.InstanceState_INSTANCE_STATE_DRAINING }, ""},
		{"client addr", func(i *platformpb.Instance) { i.ClientAddr = "play.example.com:1055" }, ""},
		{"client addr no port", func(i *platformpb.Instance) { i.ClientAddr = "play.example.com" }, `invalid record: client_addr: must be host:port, got "play.example.com"`},
		{"client addr port 0", func(i *platformpb.Instance) { i.ClientAddr = "h:0" }, `invalid record: client_addr: port must be 1..65535, got "h:0"`},
		{"client addr url", func(i *platformpb.Instance) { i.ClientAddr = "tcp://h:1" }, `invalid record: client_addr: must be host:port, got "tcp://h:1"`},
		{"meta 17", func(i *platformpb.Instance) { i.Meta = bigMeta }, "invalid record: meta: at most 16 entries, got 17"},
		{"meta empty key", func(i *platformpb.Instance) { i.Meta = map[string]string{"": "v"} }, `invalid record: meta: key "" must be 1..64 bytes`},
		{"meta long key", func(i *platformpb.Instance) { i.Meta = map[string]string{strings.Repeat("k", 65): "v"} }, `invalid record: meta: key "` + strings.Repeat("k", 64) + `..." must be 1..64 bytes`},
		{"meta long value", func(i *platformpb.Instance) { i.Meta = map[string]string{"k": strings.Repeat("v", 257)} }, `invalid record: meta: value of "k" is 257 bytes, at most 256`},
		{"meta max", func(i *platformpb.Instance) {
			i.Meta = map[string]string{strings.Repeat("k", 64): strings.Repeat("v", 256)}
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inst := testInstance("login", "login-1")
			tc.change(inst)
			err := ValidateInstance(inst, 0)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.err {
				t.Fatalf("got error %v\nwant       %s", err, tc.err)
			}
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("%v is not ErrInvalidRecord", err)
			}
		})
	}
	if err := ValidateInstance(nil, 0); err == nil || err.Error() != "invalid record: instance: required" {
		t.Fatalf("nil instance: %v", err)
	}
}

func TestValidateRecordSize(t *testing.T) {
	inst := testInstance("login", "login-1")
	inst.Meta = map[string]string{}
	for i := range 16 {
		inst.Meta[strings.Repeat(string(rune('a'+i)), 64)] = strings.Repeat("v", 256)
	}
	n := proto.Size(inst)
	if n <= 4096 {
		t.Fatalf("record is %d bytes, want > 4096 for this test", n)
	}
	want := "invalid record: instance: encoded size " + strconv.Itoa(n) + " bytes, at most 4096"
	if err := ValidateInstance(inst, 0); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if err := ValidateInstance(inst, 8192); err != nil {
		t.Fatalf("with 8 KiB bound: %v", err)
	}
}

func TestValidateHeartbeat(t *testing.T) {
	ok := &platformpb.Instance{Service: "login", Id: "l1", Load: 0.5}
	if err := validateHeartbeat(ok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hb  *platformpb.Instance
		err string
	}{
		{nil, "invalid record: instance: required"},
		{&platformpb.Instance{Id: "l1"}, "invalid record: service: required"},
		{&platformpb.Instance{Service: "login"}, "invalid record: id: required"},
		{&platformpb.Instance{Service: "login", Id: "l1", Load: -1}, "invalid record: load: must be a finite number in [0, 1000000], got -1"},
		{&platformpb.Instance{Service: "login", Id: "l1", State: 3}, "invalid record: state: must be READY or DRAINING, got 3"},
		{&platformpb.Instance{Service: "login", Id: "l1", Meta: map[string]string{"": "x"}}, `invalid record: meta: key "" must be 1..64 bytes`},
		{&platformpb.Instance{Service: "login", Id: "l1", Meta: map[string]string{"k": strings.Repeat("v", MaxMetaValueLen+1)}}, `invalid record: meta: value of "k" is 257 bytes, at most 256`},
		{&platformpb.Instance{Service: "login", Id: "l1", Meta: manyLabels(MaxMetaEntries + 1)}, "invalid record: meta: at most 16 entries, got 17"},
	} {
		if err := validateHeartbeat(tc.hb); err == nil || err.Error() != tc.err {
			t.Errorf("%v: got %v, want %s", tc.hb, err, tc.err)
		}
	}
}

func newTestRegistry(ttl time.Duration, max int) (*Registry, *[]*platformpb.Delta) {
	var emitted []*platformpb.Delta
	r := NewRegistry(RegistryConfig{Epoch: "e1", TTL: ttl, MaxInstances: max}, func(d *platformpb.Delta) {
		emitted = append(emitted, d)
	})
	return r, &emitted
}

func TestRegistryDeltasNumbered(t *testing.T) {
	r, emitted := newTestRegistry(3*time.Second, 0)
	now := time.Unix(1000, 0)
	mustDelta := func(d *platformpb.Delta, err error) *platformpb.Delta {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if d == nil {
			t.Fatal("no delta")
		}
		return d
	}
	d1 := mustDelta(r.Register(testInstance("login", "a"), now))
	d2 := mustDelta(r.Register(testInstance("room", "b"), now))
	// Same record again: no change, no delta.
	if d, err := r.Register(testInstance("login", "a"), now); d != nil || err != nil {
		t.Fatalf("re-register same record: %v %v", d, err)
	}
	// Heartbeat with the same load: no delta; with a new load: UPSERT.
	if d, unknown, err := r.Heartbeat(&platformpb.Instance{Service: "login", Id: "a", Load: 0.25}, now); d != nil || unknown || err != nil {
		t.Fatalf("same-load heartbeat: %v %v %v", d, unknown, err)
	}
	d3, unknown, err := r.Heartbeat(&platformpb.Instance{Service: "login", Id: "a", Load: 0.5, State: platformpb.InstanceState_INSTANCE_STATE_DRAINING}, now)
	if err != nil || unknown || d3 == nil {
		t.Fatalf("heartbeat: %v %v %v", d3, unknown, err)
	}
	if d3.Instance.Load != 0.5 || d3.Instance.State != platformpb.InstanceState_INSTANCE_STATE_DRAINING || d3.Instance.Router == "" {
		t.Fatalf("heartbeat record: %v", d3.Instance)
	}
	// A heartbeat without state keeps the state.
	d4, _, _ := r.Heartbeat(&platformpb.Instance{Service: "login", Id: "a", Load: 0.75}, now)
	if d4 == nil || d4.Instance.State != platformpb.InstanceState_INSTANCE_STATE_DRAINING {
		t.Fatalf("stateless heartbeat changed state: %v", d4)
	}
	tick := r.Tick()
	d5, unknown, err := r.Deregister("room", "b")
	if err != nil || unknown || d5 == nil || d5.Op != platformpb.DeltaOp_DELTA_OP_REMOVE {
		t.Fatalf("deregister: %v %v %v", d5, unknown, err)
	}
	if _, unknown, _ := r.Deregister("room", "b"); !unknown {
		t.Fatal("second deregister not unknown")
	}
	want := []struct {
		seq uint64
		op  platformpb.DeltaOp
	}{{1, 1}, {2, 1}, {3, 1}, {4, 1}, {4, 3}, {5, 2}}
	got := *emitted
	if len(got) != len(want) {
		t.Fatalf("emitted %d deltas, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Seq != w.seq || got[i].Op != w.op || got[i].Epoch != "e1" {
			t.Errorf("delta %d = seq %d op %v epoch %q, want seq %d op %v", i, got[i].Seq, got[i].Op, got[i].Epoch, w.seq, w.op)
		}
	}
	if got[0] != d1 || got[1] != d2 || got[4] != tick || tick.Instance != nil {
		t.Error("returned deltas differ from emitted ones")
	}
	if r.Seq() != 5 {
		t.Fatalf("seq %d", r.Seq())
	}
	recs, seq := r.Snapshot()
	if seq != 5 || len(recs) != 1 || recs[0].Id != "a" {
		t.Fatalf("snapshot %v %d", recs, seq)
	}
}

func TestRegistryHeartbeatUnknown(t *testing.T) {
	r, emitted := newTestRegistry(time.Second, 0)
	d, unknown, err := r.Heartbeat(&platformpb.Instance{Service: "login", Id: "ghost", Load: 0.1}, time.Now())
	if d != nil || !unknown || err != nil {
		t.Fatalf("got %v %v %v", d, unknown, err)
	}
	if len(*emitted) != 0 || r.Seq() != 0 {
		t.Fatal("unknown heartbeat changed the registry")
	}
}

func TestRegistryExpiry(t *testing.T) {
	r, _ := newTestRegistry(3*time.Second, 0)
	t0 := time.Unix(1000, 0)
	r.Register(testInstance("login", "a"), t0)
	r.Register(testInstance("login", "b"), t0)
	r.Register(testInstance("room", "c"), t0)
	// b beats at t0+2s, so it lives until t0+5s.
	r.Heartbeat(&platformpb.Instance{Service: "login", Id: "b", Load: 0.25}, t0.Add(2*time.Second))
	if ds := r.Expire(t0.Add(2999 * time.Millisecond)); len(ds) != 0 {
		t.Fatalf("expired too early: %v", ds)
	}
	ds := r.Expire(t0.Add(3 * time.Second))
	if len(ds) != 2 || ds[0].Instance.Id != "a" || ds[1].Instance.Id != "c" ||
		ds[0].Op != platformpb.DeltaOp_DELTA_OP_REMOVE || ds[0].Seq != 4 || ds[1].Seq != 5 {
		t.Fatalf("expired %v", ds)
	}
	if got := r.Query(""); len(got) != 1 || got[0].Id != "b" {
		t.Fatalf("left %v", got)
	}
	if ds := r.Expire(t0.Add(5 * time.Second)); len(ds) != 1 || ds[0].Instance.Id != "b" {
		t.Fatalf("b not expired: %v", ds)
	}
	if _, unknown, _ := r.Heartbeat(&platformpb.Instance{Service: "login", Id: "b"}, t0.Add(6*time.Second)); !unknown {
		t.Fatal("heartbeat after expiry is not unknown")
	}
}

func TestRegistryBound(t *testing.T) {
	r, _ := newTestRegistry(time.Second, 3)
	now := time.Now()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := r.Register(testInstance("login", id), now); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.Register(testInstance("login", "d"), now)
	if !errors.Is(err, ErrTooManyInstances) || err.Error() != "too many instances: yellow holds at most 3" {
		t.Fatalf("4th registration: %v", err)
	}
	// Re-registering an existing instance is still fine when full.
	inst := testInstance("login", "a")
	inst.Load = 0.9
	if d, err := r.Register(inst, now); err != nil || d == nil {
		t.Fatalf("re-register when full: %v %v", d, err)
	}
	r.Deregister("login", "b")
	if _, err := r.Register(testInstance("login", "d"), now); err != nil {
		t.Fatalf("after deregister: %v", err)
	}
}

func TestRegistryReplaceRestarted(t *testing.T) {
	r, _ := newTestRegistry(time.Second, 0)
	now := time.Now()
	r.Register(testInstance("room", "r1"), now)
	inst := testInstance("room", "r1")
	inst.Router = "tcp://127.0.0.1:7100"
	d, err := r.Register(inst, now)
	if err != nil || d == nil || d.Op != platformpb.DeltaOp_DELTA_OP_UPSERT || d.Instance.Router != inst.Router {
		t.Fatalf("replace: %v %v", d, err)
	}
	if got := r.Query("room"); len(got) != 1 || got[0].Router != inst.Router {
		t.Fatalf("query %v", got)
	}
	// The registry keeps its own copy.
	inst.Router = "tcp://127.0.0.1:1"
	if got := r.Query("room"); got[0].Router != "tcp://127.0.0.1:7100" {
		t.Fatal("registry shares the caller's record")
	}
}

func TestRegistryQuery(t *testing.T) {
	r, _ := newTestRegistry(time.Second, 0)
	now := time.Now()
	for _, k := range [][2]string{{"room", "b"}, {"login", "z"}, {"room", "a"}} {
		r.Register(testInstance(k[0], k[1]), now)
	}
	got := r.Query("room")
	if len(got) != 2 || got[0].Id != "a" || got[1].Id != "b" {
		t.Fatalf("room: %v", got)
	}
	all := r.Query("")
	if len(all) != 3 || all[0].Service != "login" {
		t.Fatalf("all: %v", all)
	}
	if len(r.Query("nope")) != 0 {
		t.Fatal("nope")
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := NewOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		change func(*Options)
		err    string
	}{
		{func(o *Options) { o.RouterAddr = "" }, "yellow: router_addr: required"},
		{func(o *Options) { o.RouterAddr = "127.0.0.1:1" }, `yellow: router_addr: must be tcp://host:port, got "127.0.0.1:1"`},
		{func(o *Options) { o.PubAddr = "tcp://h:99999" }, `yellow: pub_addr: port must be a number from 0 to 65535 or *, got "tcp://h:99999"`},
		{func(o *Options) { o.Heartbeat = time.Millisecond }, "yellow: heartbeat: must be in [10ms, 1m0s], got 1ms"},
		{func(o *Options) { o.ExpireAfter = 0 }, "yellow: expire_after: must be in [1, 100], got 0"},
		{func(o *Options) { o.MaxInstances = 0 }, "yellow: max_instances: must be in [1, 1048576], got 0"},
		{func(o *Options) { o.MaxRecordBytes = 10 }, "yellow: max_record_bytes: must be in [512, 65536], got 10"},
		{func(o *Options) { o.TickInterval = -1 }, "yellow: tick_interval: must be 0 (= heartbeat) or in [10ms, 1m0s], got -1ns"},
	} {
		o := NewOptions()
		tc.change(&o)
		if err := o.Validate(); err == nil || err.Error() != tc.err {
			t.Errorf("got %v, want %s", err, tc.err)
		}
	}
	o := NewOptions()
	o.RouterAddr, o.PubAddr, o.TickInterval = "tcp://0.0.0.0:0", "tcp://*:0", 0
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsYAML(t *testing.T) {
	const doc = `
router_addr: tcp://0.0.0.0:1060
pub_addr: tcp://0.0.0.0:1061
heartbeat: 500ms
expire_after: 4
max_instances: 100
max_record_bytes: 2048
tick_interval: 250ms
`
	o := NewOptions()
	if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
		t.Fatal(err)
	}
	want := Options{RouterAddr: "tcp://0.0.0.0:1060", PubAddr: "tcp://0.0.0.0:1061", Heartbeat: 500 * time.Millisecond, ExpireAfter: 4, MaxInstances: 100, MaxPerIdentity: DefaultMaxPerIdentity, MaxRecordBytes: 2048, TickInterval: 250 * time.Millisecond}
	if o != want {
		t.Fatalf("got %+v, want %+v", o, want)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	o.TickInterval = time.Second
	if err := o.Validate(); err == nil || err.Error() != "yellow: tick_interval: must be at most heartbeat (500ms), got 1s" {
		t.Fatalf("tick > heartbeat: %v", err)
	}
}

// TestRegistryOwners: a record belongs to the identity that registered it;
// another identity can neither replace, heartbeat nor deregister it, and
// one identity's records are bounded.
func TestRegistryOwners(t *testing.T) {
	r := NewRegistry(RegistryConfig{MaxInstances: 10, MaxPerOwner: 2}, nil)
	now := time.Now()
	real := testInstance("login", "l1")
	if _, err := r.RegisterAs("service:login", real, now); err != nil {
		t.Fatal(err)
	}
	forged := testInstance("login", "l1")
	forged.Router = "tcp://10.9.9.9:6666"
	if _, err := r.RegisterAs("service:evil", forged, now); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("re-registration by another identity: %v", err)
	}
	if _, err := r.Register(forged, now); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("re-registration from a plain link: %v", err)
	}
	if _, _, err := r.HeartbeatAs("service:evil", &platformpb.Instance{Service: "login", Id: "l1", Load: 1}, now); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("heartbeat by another identity: %v", err)
	}
	if _, _, err := r.DeregisterAs("service:evil", "login", "l1"); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("deregister by another identity: %v", err)
	}
	if got := r.Query("login"); len(got) != 1 || got[0].GetRouter() != real.GetRouter() {
		t.Fatalf("the real record changed: %v", got)
	}
	// The quota: a second record fits, a third does not; others still can.
	if _, err := r.RegisterAs("service:login", testInstance("login", "l2"), now); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RegisterAs("service:login", testInstance("login", "l3"), now); !errors.Is(err, ErrTooManyInstances) {
		t.Fatalf("beyond the quota: %v", err)
	}
	if _, err := r.RegisterAs("service:room", testInstance("room", "r1"), now); err != nil {
		t.Fatalf("another identity: %v", err)
	}
	// The owner deregisters and frees its quota; expiry frees it too.
	if _, unknown, err := r.DeregisterAs("service:login", "login", "l2"); err != nil || unknown {
		t.Fatalf("owner's deregister: %v %v", unknown, err)
	}
	if _, err := r.RegisterAs("service:login", testInstance("login", "l3"), now); err != nil {
		t.Fatalf("after a deregister: %v", err)
	}
	r.Expire(now.Add(time.Hour))
	if _, err := r.RegisterAs("service:login", testInstance("login", "l4"), now); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestMayRegister(t *testing.T) {
	for _, tt := range []struct {
		owner, service string
		want           bool
	}{
		{"", "login", true},
		{"service:login", "login", true},
		{"service:login", "room", false},
		{"service:login", "broker", false},
		{"broker", "broker", true},
		{"broker:b1", "broker", true},
		{"broker", "login", false},
		{"admin", "login", false},
		{"yellow", "broker", false},
	} {
		if got := mayRegister(tt.owner, tt.service); got != tt.want {
			t.Errorf("mayRegister(%q, %q) = %v", tt.owner, tt.service, got)
		}
	}
}

// manyLabels returns n meta labels l0=v, l1=v, ...
func manyLabels(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m["l"+strconv.Itoa(i)] = "v"
	}
	return m
}

// TestRegistryHeartbeatMeta: a heartbeat's meta replaces the record's and
// emits a delta; a heartbeat without meta keeps it; the same meta again
// changes nothing; meta that breaks the rules (or makes the record too
// big) is refused and changes nothing.
func TestRegistryHeartbeatMeta(t *testing.T) {
	r, emitted := newTestRegistry(3*time.Second, 0)
	now := time.Unix(1000, 0)
	if _, err := r.Register(testInstance("room", "a"), now); err != nil { // meta zone=a, load 0.25
		t.Fatal(err)
	}
	meta := func() map[string]string { return r.Query("room")[0].GetMeta() }
	hb := func(m map[string]string) (*platformpb.Delta, error) {
		d, unknown, err := r.Heartbeat(&platformpb.Instance{Service: "room", Id: "a", Load: 0.25, Meta: m}, now)
		if unknown {
			t.Fatal("unknown")
		}
		return d, err
	}
	if d, err := hb(nil); d != nil || err != nil {
		t.Fatalf("a beat without meta: %v %v", d, err)
	}
	if got := meta(); got["zone"] != "a" || len(got) != 1 {
		t.Fatalf("meta after a beat without meta: %v", got)
	}
	d, err := hb(map[string]string{"rooms_free": "7"})
	if err != nil || d == nil || d.GetOp() != platformpb.DeltaOp_DELTA_OP_UPSERT {
		t.Fatalf("a beat with new meta: %v %v", d, err)
	}
	if got := d.GetInstance().GetMeta(); len(got) != 1 || got["rooms_free"] != "7" {
		t.Fatalf("delta's meta %v, want it replaced whole", got)
	}
	if got := meta(); len(got) != 1 || got["rooms_free"] != "7" {
		t.Fatalf("record's meta %v", got)
	}
	if d, err := hb(map[string]string{"rooms_free": "7"}); d != nil || err != nil {
		t.Fatalf("the same meta again: %v %v", d, err)
	}
	n := len(*emitted)
	if _, err := hb(manyLabels(MaxMetaEntries + 1)); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("too many labels: %v", err)
	}
	// A record that the meta would take past the size bound.
	small := NewRegistry(RegistryConfig{MaxRecordBytes: minMaxRecordBytes}, nil)
	if _, err := small.Register(testInstance("room", "a"), now); err != nil {
		t.Fatal(err)
	}
	big := map[string]string{"a": strings.Repeat("x", 250), "b": strings.Repeat("y", 250)}
	_, _, err = small.Heartbeat(&platformpb.Instance{Service: "room", Id: "a", Load: 0.25, Meta: big}, now)
	if err == nil || !strings.Contains(err.Error(), "invalid record: instance: encoded size") {
		t.Fatalf("a beat whose meta makes the record too big: %v", err)
	}
	if got := small.Query("room")[0].GetMeta(); len(got) != 1 || got["zone"] != "a" {
		t.Fatalf("meta after a refused beat: %v", got)
	}
	if len(*emitted) != n || meta()["rooms_free"] != "7" {
		t.Fatalf("refused beats changed something: %d deltas, meta %v", len(*emitted)-n, meta())
	}
}
