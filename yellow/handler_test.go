package yellow

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/wire"
)

func newTestHandler(t testing.TB) *handler {
	t.Helper()
	c := &counters{}
	return &handler{
		reg:         NewRegistry(RegistryConfig{Epoch: "ep", TTL: time.Minute, MaxInstances: 8}, nil),
		log:         slog.New(slog.DiscardHandler),
		heartbeatMS: 1000,
		maxReq:      DefaultMaxRecordBytes + requestOverhead,
		pub:         "tcp://127.0.0.1:1061",
		now:         time.Now,
		c:           c,
	}
}

func requestEnv(t testing.TB, method string, req *platformpb.YellowRequest) *platformpb.Envelope {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return &platformpb.Envelope{Kind: platformpb.Kind_KIND_REQUEST, RequestId: 7, Method: method, Payload: b}
}

func decodeReply(t testing.TB, env *platformpb.Envelope) *platformpb.YellowReply {
	t.Helper()
	if env == nil {
		t.Fatal("nil reply")
	}
	rep := &platformpb.YellowReply{}
	if err := proto.Unmarshal(env.GetPayload(), rep); err != nil {
		t.Fatalf("reply payload: %v", err)
	}
	if rep.GetEpoch() != "ep" || rep.GetHeartbeatIntervalMs() != 1000 || rep.GetPub() != "tcp://127.0.0.1:1061" {
		t.Fatalf("reply lacks epoch/heartbeat/pub: %v", rep)
	}
	if env.GetKind() != platformpb.Kind_KIND_REPLY {
		t.Fatalf("reply kind %v", env.GetKind())
	}
	if (env.GetErrorCode() == "") != (rep.GetError() == "") {
		t.Fatalf("error code %q but reply error %q", env.GetErrorCode(), rep.GetError())
	}
	return rep
}

func TestHandlerOps(t *testing.T) {
	h := newTestHandler(t)
	inst := testInstance("login", "l1")
	env := h.serve(requestEnv(t, MethodRegister, &platformpb.YellowRequest{RequestId: 3, Instance: inst}), "")
	rep := decodeReply(t, env)
	if env.GetErrorCode() != "" || rep.GetSeq() != 1 || rep.GetRequestId() != 3 || env.GetRequestId() != 7 {
		t.Fatalf("register: %v %v", env, rep)
	}
	env = h.serve(requestEnv(t, MethodHeartbeat, &platformpb.YellowRequest{
		Op: platformpb.YellowOp_YELLOW_OP_HEARTBEAT, Instance: &platformpb.Instance{Service: "login", Id: "l1", Load: 0.9},
	}), "")
	if rep := decodeReply(t, env); rep.GetUnknown() || rep.GetSeq() != 2 {
		t.Fatalf("heartbeat: %v", rep)
	}
	env = h.serve(requestEnv(t, MethodHeartbeat, &platformpb.YellowRequest{
		Instance: &platformpb.Instance{Service: "login", Id: "nope"},
	}), "")
	if rep := decodeReply(t, env); !rep.GetUnknown() {
		t.Fatalf("unknown heartbeat: %v", rep)
	}
	h.serve(requestEnv(t, MethodRegister, &platformpb.YellowRequest{Instance: testInstance("room", "r1")}), "")
	env = h.serve(requestEnv(t, MethodQuery, &platformpb.YellowRequest{Service: "login"}), "")
	if rep := decodeReply(t, env); len(rep.GetInstances()) != 1 || rep.GetInstances()[0].GetLoad() != 0.9 {
		t.Fatalf("query: %v", rep)
	}
	env = h.serve(requestEnv(t, MethodSnapshot, &platformpb.YellowRequest{}), "")
	if rep := decodeReply(t, env); len(rep.GetInstances()) != 2 || rep.GetSeq() != 3 {
		t.Fatalf("snapshot: %v", rep)
	}
	env = h.serve(requestEnv(t, MethodDeregister, &platformpb.YellowRequest{Service: "login", Id: "l1"}), "")
	if rep := decodeReply(t, env); rep.GetUnknown() || rep.GetSeq() != 4 {
		t.Fatalf("deregister: %v", rep)
	}
	env = h.serve(requestEnv(t, MethodDeregister, &platformpb.YellowRequest{Instance: &platformpb.Instance{Service: "login", Id: "l1"}}), "")
	if rep := decodeReply(t, env); !rep.GetUnknown() {
		t.Fatalf("second deregister: %v", rep)
	}
}

func TestHandlerRejects(t *testing.T) {
	h := newTestHandler(t)
	bad := testInstance("login", "l1")
	bad.Router = "tcp://*:7000"
	big := testInstance("login", "big")
	big.Version = strings.Repeat("v", 8000)
	for _, tc := range []struct {
		name string
		env  *platformpb.Envelope
		code string
		msg  string
	}{
		{"unknown method", &platformpb.Envelope{Method: "yellow.Nope"}, "bad_request", `bad request: unknown method "yellow.Nope"`},
		{"garbage", &platformpb.Envelope{Method: MethodRegister, Payload: []byte{0xff, 0xff, 0xff}}, "bad_request", "bad request: undecodable YellowRequest: "},
		{"op mismatch", requestEnv(t, MethodQuery, &platformpb.YellowRequest{Op: platformpb.YellowOp_YELLOW_OP_REGISTER}), "bad_request",
			"bad request: op YELLOW_OP_REGISTER does not match method yellow.Query"},
		{"unknown op", requestEnv(t, MethodQuery, &platformpb.YellowRequest{Op: 42}), "bad_request", "bad request: op 42 does not match method yellow.Query"},
		{"bad record", requestEnv(t, MethodRegister, &platformpb.YellowRequest{Instance: bad}), "bad_request",
			`invalid record: router: host must not be a wildcard, got "tcp://*:7000"`},
		{"no record", requestEnv(t, MethodRegister, &platformpb.YellowRequest{}), "bad_request", "invalid record: instance: required"},
		{"too big", requestEnv(t, MethodRegister, &platformpb.YellowRequest{Instance: big}), "bad_request", "bad request: payload of 8"},
		{"bad query", requestEnv(t, MethodQuery, &platformpb.YellowRequest{Service: "A"}), "bad_request", `invalid record: service: must match [a-z][a-z0-9_-]{0,63}, got "A"`},
		{"bad deregister", requestEnv(t, MethodDeregister, &platformpb.YellowRequest{Service: "login"}), "bad_request", "invalid record: id: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := h.serve(tc.env, "")
			rep := decodeReply(t, env)
			if env.GetErrorCode() != tc.code || !strings.HasPrefix(env.GetErrorMessage(), tc.msg) {
				t.Fatalf("got %s: %s\nwant %s: %s...", env.GetErrorCode(), env.GetErrorMessage(), tc.code, tc.msg)
			}
			if rep.GetError() != env.GetErrorCode()+": "+env.GetErrorMessage() {
				t.Fatalf("reply error %q", rep.GetError())
			}
		})
	}
	if h.reg.Len() != 0 || h.c.badRequests.Load() != 9 {
		t.Fatalf("registry %d records, %d bad requests", h.reg.Len(), h.c.badRequests.Load())
	}
	// Full: overloaded.
	for i := range 8 {
		h.serve(requestEnv(t, MethodRegister, &platformpb.YellowRequest{Instance: testInstance("login", "x"+strings.Repeat("1", i+1))}), "")
	}
	env := h.serve(requestEnv(t, MethodRegister, &platformpb.YellowRequest{Instance: testInstance("login", "one-too-many")}), "")
	if env.GetErrorCode() != "overloaded" || env.GetErrorMessage() != "too many instances: yellow holds at most 8" {
		t.Fatalf("full: %s: %s", env.GetErrorCode(), env.GetErrorMessage())
	}
}

// TestHandlerIdentities: a caller registers only under its identity's
// service name, and cannot touch another identity's record; each refusal
// is answered unauthenticated and counted.
func TestHandlerIdentities(t *testing.T) {
	h := newTestHandler(t)
	reg := func(owner string, inst *platformpb.Instance) *platformpb.Envelope {
		return h.serve(requestEnv(t, MethodRegister, &platformpb.YellowRequest{Instance: inst}), owner)
	}
	if env := reg("service:login", testInstance("login", "l1")); env.GetErrorCode() != "" {
		t.Fatalf("own name: %s: %s", env.GetErrorCode(), env.GetErrorMessage())
	}
	for _, tc := range []struct {
		owner string
		inst  *platformpb.Instance
	}{
		{"service:login", testInstance("room", "r1")},
		{"service:login", testInstance("broker", "b1")},
		{"admin", testInstance("login", "l2")},
		{"service:evil", testInstance("login", "l1")},
	} {
		if env := reg(tc.owner, tc.inst); env.GetErrorCode() != wire.CodeUnauthenticated {
			t.Errorf("%s registering %s: %s: %s", tc.owner, tc.inst.GetService(), env.GetErrorCode(), env.GetErrorMessage())
		}
	}
	env := h.serve(requestEnv(t, MethodDeregister, &platformpb.YellowRequest{Service: "login", Id: "l1"}), "service:other")
	if env.GetErrorCode() != wire.CodeUnauthenticated {
		t.Errorf("deregister by another identity: %s: %s", env.GetErrorCode(), env.GetErrorMessage())
	}
	if got := len(h.reg.Query("login")); got != 1 {
		t.Fatalf("%d login records, want the real one", got)
	}
	if got := h.c.notOwner.Load(); got != 5 {
		t.Fatalf("notOwner = %d, want 5", got)
	}
}
