package yellow

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// FuzzYellowRequest feeds arbitrary payloads, under every method, to the
// server's request handling (decode, route, validate, run against a
// registry). It must never panic and must always answer with a decodable
// YellowReply whose error agrees with the Envelope's error code.
func FuzzYellowRequest(f *testing.F) {
	seed := func(method string, req *platformpb.YellowRequest) {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(method, b)
	}
	seed(MethodRegister, &platformpb.YellowRequest{Op: platformpb.YellowOp_YELLOW_OP_REGISTER, RequestId: 1, Instance: testInstance("login", "login-1")})
	seed(MethodHeartbeat, &platformpb.YellowRequest{Op: platformpb.YellowOp_YELLOW_OP_HEARTBEAT, RequestId: 2,
		Instance: &platformpb.Instance{Service: "login", Id: "login-1", Load: 0.5, State: platformpb.InstanceState_INSTANCE_STATE_DRAINING}})
	seed(MethodHeartbeat, &platformpb.YellowRequest{Op: platformpb.YellowOp_YELLOW_OP_HEARTBEAT, RequestId: 3,
		Instance: &platformpb.Instance{Service: "login", Id: "login-1", Load: 0.25, Meta: map[string]string{"rooms_free": "12", "zone": "b"}}})
	seed(MethodQuery, &platformpb.YellowRequest{Op: platformpb.YellowOp_YELLOW_OP_QUERY, Service: "login"})
	seed(MethodSnapshot, &platformpb.YellowRequest{Op: platformpb.YellowOp_YELLOW_OP_SNAPSHOT})
	seed(MethodDeregister, &platformpb.YellowRequest{Op: platformpb.YellowOp_YELLOW_OP_DEREGISTER, Service: "login", Id: "login-1"})
	f.Add("yellow.Nope", []byte{0xff, 0x01})

	h := newTestHandler(f)
	f.Fuzz(func(t *testing.T, method string, payload []byte) {
		// The whole payload, then its first half (a frame cut short).
		for _, p := range [][]byte{payload, payload[:len(payload)/2]} {
			env := h.serve(&platformpb.Envelope{Kind: platformpb.Kind_KIND_REQUEST, Method: method, Payload: p}, "")
			decodeReply(t, env)
		}
		if h.reg.Len() > 8 {
			t.Fatalf("registry beyond its bound: %d", h.reg.Len())
		}
		for _, rec := range h.reg.Query("") {
			if err := ValidateInstance(rec, 0); err != nil {
				t.Fatalf("registry holds an invalid record: %v", err)
			}
		}
	})
}

// FuzzDelta feeds arbitrary Delta payloads to the watcher's decoding and
// applying of what arrives on a yellow's PUB socket. It must never panic,
// never move the seq backwards, and keep only valid records.
func FuzzDelta(f *testing.F) {
	seed := func(d *platformpb.Delta) {
		b, err := proto.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(upsert(11, "e", "login", "login-2"))
	seed(&platformpb.Delta{Seq: 11, Epoch: "e", Op: platformpb.DeltaOp_DELTA_OP_REMOVE, Instance: testInstance("login", "login-1")})
	seed(&platformpb.Delta{Seq: 10, Epoch: "e", Op: platformpb.DeltaOp_DELTA_OP_TICK})
	seed(&platformpb.Delta{Seq: 12, Epoch: "e", Op: platformpb.DeltaOp_DELTA_OP_TICK})
	seed(upsert(1, "other", "room", "r1"))

	f.Fuzz(func(t *testing.T, payload []byte) {
		var v viewState
		v.install([]*platformpb.Instance{testInstance("login", "login-1")}, 10, "e")
		for _, p := range [][]byte{payload, payload[:len(payload)/2]} {
			d, err := decodeDelta(&platformpb.Event{Type: EventTypeDelta, Payload: p})
			if err != nil {
				continue
			}
			before := v.seq
			res, k := v.apply(d)
			if v.seq < before {
				t.Fatalf("seq went back from %d to %d", before, v.seq)
			}
			if res == applyChanged && v.seq != before+1 {
				t.Fatalf("applied delta %d after %d", d.GetSeq(), before)
			}
			if res == applyChanged && k != keyOf(d.GetInstance()) {
				t.Fatalf("changed key %v for delta of %v", k, d.GetInstance())
			}
			for key, rec := range v.recs {
				if key != keyOf(rec) {
					t.Fatalf("record %v under key %v", rec, key)
				}
				if err := ValidateInstance(rec, maxMaxRecordBytes); err != nil {
					t.Fatalf("view holds an invalid record: %v", err)
				}
			}
		}
	})
}
