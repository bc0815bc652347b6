package yellow

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/wire"
)

// Methods of yellow's ROUTER: the Envelope method of each request.
const (
	MethodRegister   = "yellow.Register"
	MethodHeartbeat  = "yellow.Heartbeat"
	MethodDeregister = "yellow.Deregister"
	MethodQuery      = "yellow.Query"
	MethodSnapshot   = "yellow.Snapshot"
)

// TopicDelta is the PUB topic deltas are published under.
const TopicDelta = "delta"

// EventTypeDelta is the Event type of a published delta.
const EventTypeDelta = "yellow.Delta"

// requestOverhead is what a YellowRequest adds around its record (op,
// request id, service and id fields): 1 KiB is several times that.
const requestOverhead = 1 << 10

// methodOps is the one place a request is routed: method -> operation.
var methodOps = map[string]platformpb.YellowOp{
	MethodRegister:   platformpb.YellowOp_YELLOW_OP_REGISTER,
	MethodHeartbeat:  platformpb.YellowOp_YELLOW_OP_HEARTBEAT,
	MethodDeregister: platformpb.YellowOp_YELLOW_OP_DEREGISTER,
	MethodQuery:      platformpb.YellowOp_YELLOW_OP_QUERY,
	MethodSnapshot:   platformpb.YellowOp_YELLOW_OP_SNAPSHOT,
}

// Stats are yellow's counters, for the admin endpoint and tests.
type Stats struct {
	// Instances is the number of records now.
	Instances int
	// Seq is the number of the last delta.
	Seq uint64
	// Epoch is this run's epoch.
	Epoch string
	// Requests counts every request, BadRequests those rejected as
	// undecodable, unknown or invalid.
	Requests, BadRequests uint64
	// Registers, Heartbeats, UnknownHeartbeats, Deregisters, Queries and
	// Snapshots count the requests of each kind that succeeded.
	Registers, Heartbeats, UnknownHeartbeats, Deregisters, Queries, Snapshots uint64
	// Rejected counts registrations refused because yellow was full (or
	// the caller's identity held its quota).
	Rejected uint64
	// NotOwner counts requests refused because the record belongs to
	// another identity, or the caller's identity may not register under
	// that service name.
	NotOwner uint64
	// Expired counts records removed for missed heartbeats.
	Expired uint64
	// Published counts deltas (ticks included) handed to the PUB socket;
	// Dropped those lost because the publish queue was full or the publish
	// failed (consumers notice the gap and re-sync).
	Published, Dropped uint64
}

type counters struct {
	requests, badRequests                                                 atomic.Uint64
	registers, heartbeats, unknownHeartbeats, deregisters, queries, snaps atomic.Uint64
	rejected, expired, published, dropped, notOwner                       atomic.Uint64
}

// handler answers requests against a registry. It holds no socket, so the
// decoding and validation of every request can be tested and fuzzed alone.
type handler struct {
	reg         *Registry
	log         *slog.Logger
	heartbeatMS uint32
	maxReq      int
	pub         string // PUB endpoint told to consumers
	now         func() time.Time
	c           *counters
}

// requestError is a rejected request: a wire code and human text.
type requestError struct {
	code string
	err  error
}

// decodeRequest decodes and routes a request Envelope: the method picks the
// operation, the payload must be a YellowRequest whose op is unset or the
// same. It bounds the payload before decoding it.
func decodeRequest(env *platformpb.Envelope, maxReq int) (*platformpb.YellowRequest, *requestError) {
	op, ok := methodOps[env.GetMethod()]
	if !ok {
		return nil, &requestError{wire.CodeBadRequest, fmt.Errorf("%w: unknown method %q", ErrBadRequest, wire.Snippet(env.GetMethod()))}
	}
	if n := len(env.GetPayload()); n > maxReq {
		return nil, &requestError{wire.CodeBadRequest, fmt.Errorf("%w: payload of %d bytes, at most %d", ErrBadRequest, n, maxReq)}
	}
	req := &platformpb.YellowRequest{}
	if err := proto.Unmarshal(env.GetPayload(), req); err != nil {
		return nil, &requestError{wire.CodeBadRequest, fmt.Errorf("%w: undecodable YellowRequest: %v", ErrBadRequest, err)}
	}
	switch req.GetOp() {
	case platformpb.YellowOp_YELLOW_OP_UNSPECIFIED:
		req.Op = op
	case op:
	default:
		return nil, &requestError{wire.CodeBadRequest, fmt.Errorf("%w: op %s does not match method %s", ErrBadRequest, req.GetOp(), env.GetMethod())}
	}
	return req, nil
}

// serve answers one request Envelope from the caller with identity owner
// ("" on a plain link); it never panics on bad input.
func (h *handler) serve(env *platformpb.Envelope, owner string) *platformpb.Envelope {
	h.c.requests.Add(1)
	req, rerr := decodeRequest(env, h.maxReq)
	rep := &platformpb.YellowReply{}
	if rerr == nil {
		rep.RequestId = req.GetRequestId()
		rerr = h.do(req, rep, owner)
	}
	if rerr != nil && errors.Is(rerr.err, ErrNotOwner) {
		h.c.notOwner.Add(1)
		h.log.Warn("yellow: refused a change to a record of another identity", "caller", owner, "method", wire.Snippet(env.GetMethod()), "err", rerr.err)
	}
	// Read after the operation, so that the reply's seq covers it.
	rep.Epoch = h.reg.Epoch()
	if req.GetOp() != platformpb.YellowOp_YELLOW_OP_SNAPSHOT || rerr != nil {
		rep.Seq = h.reg.Seq()
	}
	rep.HeartbeatIntervalMs = h.heartbeatMS
	rep.Pub = h.pub
	out := &platformpb.Envelope{
		Kind:      platformpb.Kind_KIND_REPLY,
		RequestId: env.GetRequestId(),
		Method:    env.GetMethod(),
	}
	if rerr != nil {
		if rerr.code == wire.CodeBadRequest {
			h.c.badRequests.Add(1)
		}
		msg := rerr.err.Error()
		h.log.Debug("yellow: request rejected", "method", wire.Snippet(env.GetMethod()), "code", rerr.code, "err", msg,
			"payload", fmt.Sprintf("%q", wire.Snippet(env.GetPayload())), "bytes", len(env.GetPayload()))
		rep.Error = rerr.code + ": " + msg
		out.ErrorCode = rerr.code
		out.ErrorMessage = msg
	}
	payload, err := proto.Marshal(rep)
	if err != nil { // cannot happen with valid UTF-8 records; be safe
		h.log.Error("yellow: encoding reply", "err", err)
		out.ErrorCode, out.ErrorMessage, payload = wire.CodeInternal, "encoding reply failed", nil
	}
	out.Payload = payload
	return out
}

// do runs one decoded request of owner, filling rep.
func (h *handler) do(req *platformpb.YellowRequest, rep *platformpb.YellowReply, owner string) *requestError {
	now := h.now()
	switch req.GetOp() {
	case platformpb.YellowOp_YELLOW_OP_REGISTER:
		if svc := req.GetInstance().GetService(); !mayRegister(owner, svc) {
			return &requestError{wire.CodeUnauthenticated, fmt.Errorf("%w: %s may not register as service %q", ErrNotOwner, owner, wire.Snippet(svc))}
		}
		_, err := h.reg.RegisterAs(owner, req.GetInstance(), now)
		if errors.Is(err, ErrNotOwner) {
			return &requestError{wire.CodeUnauthenticated, err}
		}
		if errors.Is(err, ErrTooManyInstances) {
			h.c.rejected.Add(1)
			return &requestError{wire.CodeOverloaded, err}
		}
		if err != nil {
			return &requestError{wire.CodeBadRequest, err}
		}
		h.c.registers.Add(1)
	case platformpb.YellowOp_YELLOW_OP_HEARTBEAT:
		_, unknown, err := h.reg.HeartbeatAs(owner, req.GetInstance(), now)
		if errors.Is(err, ErrNotOwner) {
			return &requestError{wire.CodeUnauthenticated, err}
		}
		if err != nil {
			return &requestError{wire.CodeBadRequest, err}
		}
		rep.Unknown = unknown
		if unknown {
			h.c.unknownHeartbeats.Add(1)
		} else {
			h.c.heartbeats.Add(1)
		}
	case platformpb.YellowOp_YELLOW_OP_DEREGISTER:
		service, id := req.GetService(), req.GetId()
		if service == "" && id == "" {
			service, id = req.GetInstance().GetService(), req.GetInstance().GetId()
		}
		_, unknown, err := h.reg.DeregisterAs(owner, service, id)
		if errors.Is(err, ErrNotOwner) {
			return &requestError{wire.CodeUnauthenticated, err}
		}
		if err != nil {
			return &requestError{wire.CodeBadRequest, err}
		}
		rep.Unknown = unknown
		h.c.deregisters.Add(1)
	case platformpb.YellowOp_YELLOW_OP_QUERY:
		if s := req.GetService(); s != "" {
			if err := ValidateServiceName(s); err != nil {
				return &requestError{wire.CodeBadRequest, err}
			}
		}
		rep.Instances, _ = h.reg.snapshot(req.GetService())
		h.c.queries.Add(1)
	case platformpb.YellowOp_YELLOW_OP_SNAPSHOT:
		// The seq must be the one the records were taken at, not a later
		// one: a delta between the two would otherwise be skipped.
		var seq uint64
		rep.Instances, seq = h.reg.snapshot("")
		h.c.snaps.Add(1)
		rep.Seq = seq
	default:
		return &requestError{wire.CodeBadRequest, fmt.Errorf("%w: unknown op %d", ErrBadRequest, int32(req.GetOp()))}
	}
	return nil
}

// mayRegister reports whether the caller with identity owner may register
// an instance of service: a service's identity ("service:<name>") only
// under its own name, a broker's ("broker" or "broker:<label>") only as
// the broker service; on a plain link (owner "") anyone may.
func mayRegister(owner, service string) bool {
	if owner == "" {
		return true
	}
	role, name, _ := strings.Cut(owner, ":")
	switch role {
	case "service":
		return name == service
	case "broker":
		return service == "broker"
	}
	return false
}
