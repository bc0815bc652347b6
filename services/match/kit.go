package match

// The seams: what the matchmaker needs from the platform, as small
// interfaces the Service is written against (tests fake them), and their
// adapters to the runtime. Several runtime APIs the adapters stand in for
// are being added beside this service; each adapter says what it becomes.

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/apache/thrift/lib/go/thrift"
	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Pusher changes client connections with no request from them: it sends
// directives (bindings, then a push) to the connections broker holds.
type Pusher interface {
	PublishSession(broker string, ds ...*platformpb.SessionDirective) error
}

// RoomCreator creates a room with its members, idempotently by room id
// (room.CreateMatched, routed to the owner of req.RoomID).
type RoomCreator interface {
	CreateMatched(ctx context.Context, req *roompb.CreateMatchedRequest) (*roompb.CreateMatchedReply, error)
}

// Cluster is what the matchmaker reads of the platform in yellow.
type Cluster interface {
	// RoomInstances returns the ready room instances and their free
	// capacity.
	RoomInstances() []RoomInstance
	// LiveBrokers returns the ids of the brokers yellow lists; ok is false
	// while there is no view yet (no broker may then be judged gone).
	LiveBrokers() (ids []string, ok bool)
	// Changed returns a channel closed at the next change of the view
	// (take it before reading the view).
	Changed() <-chan struct{}
}

// RoomInstance is a ready room instance.
type RoomInstance struct {
	// ID is its instance id: rooms are placed on it by rendezvous hashing
	// of the room id over the ready instances' ids.
	ID string
	// Free is how many more rooms it takes (its rooms_free meta); with
	// Known false the instance does not say, and is taken to have room.
	Free  int
	Known bool
}

// hasRoom reports whether the instance takes another room.
func (r RoomInstance) hasRoom() bool { return !r.Known || r.Free > 0 }

// metaRoomsFree is the yellow meta key a room instance publishes its free
// capacity under (decimal), on every heartbeat.
const metaRoomsFree = "rooms_free"

// brokerService is the brokers' service name in yellow.
const brokerService = "broker"

// serverPusher publishes directives on the instance's PUB socket.
type serverPusher struct {
	srv atomic.Pointer[services.Server]
}

// PublishSession publishes ds as one EventSession on broker's session
// topic.
//
// Rewire: (*services.Server).PublishSession(broker, ds...).
func (p *serverPusher) PublishSession(broker string, ds ...*platformpb.SessionDirective) error {
	srv := p.srv.Load()
	if srv == nil {
		return errors.New("match: not attached to a server yet")
	}
	b, err := proto.Marshal(&platformpb.SessionDirectives{Directives: ds})
	if err != nil {
		return err
	}
	return srv.Publish(wire.SessionTopic(broker), wire.EventSession, b)
}

// clientRooms calls room.CreateMatched through the instance's Client.
type clientRooms struct{ c *services.Client }

// CreateMatched calls the room id's owner (a stateful call keyed by room).
func (r clientRooms) CreateMatched(ctx context.Context, req *roompb.CreateMatchedRequest) (*roompb.CreateMatchedReply, error) {
	reply := roompb.NewCreateMatchedReply()
	err := callKeyed(ctx, r.c.CallTo, roomrpc.Service, "room", req.RoomID, roomrpc.MethodCreateMatched, req, reply)
	return reply, err
}

// target has the fields of router.Target, which a service may not import
// (internal/archtest): callKeyed converts it to the CallTo's own target
// type, so a change to router.Target breaks the build here rather than
// the calls.
//
// Rewire: a stateful call the runtime offers services (or the import rule
// relaxed for router), replacing target and callKeyed.
type target = struct {
	Service  string
	Stateful bool
	Key      string
	Value    string
	Instance string
}

// callKeyed calls method on the owner of key = value of service, through
// callTo ((*services.Client).CallTo).
func callKeyed[T ~struct {
	Service  string
	Stateful bool
	Key      string
	Value    string
	Instance string
}](ctx context.Context, callTo func(context.Context, T, string, thrift.TStruct, thrift.TStruct) error, service, key, value, method string, req, resp thrift.TStruct) error {
	return callTo(ctx, T(target{Service: service, Stateful: true, Key: key, Value: value}), method, req, resp)
}

// poolCluster reads the Client's yellow view.
type poolCluster struct{ c *services.Client }

func (p poolCluster) RoomInstances() []RoomInstance {
	var out []RoomInstance
	for _, inst := range p.c.Pool().Instances(roomrpc.Service) {
		if inst.GetState() != platformpb.InstanceState_INSTANCE_STATE_READY {
			continue
		}
		ri := RoomInstance{ID: inst.GetId()}
		if v, ok := inst.GetMeta()[metaRoomsFree]; ok {
			if n, err := strconv.Atoi(v); err == nil {
				ri.Free, ri.Known = n, true
			}
		}
		out = append(out, ri)
	}
	return out
}

func (p poolCluster) LiveBrokers() ([]string, bool) {
	pool := p.c.Pool()
	if !pool.Synced() {
		return nil, false
	}
	var ids []string
	for _, inst := range pool.Instances(brokerService) {
		ids = append(ids, inst.GetId())
	}
	return ids, true
}

func (p poolCluster) Changed() <-chan struct{} { return p.c.Pool().Changed() }

// followPresence follows the brokers' presence events and hands each to
// fn; stop ends it.
//
// Rewire: env.Follow(brokerService, []string{wire.TopicPresence},
// func(_ *platformpb.Instance, _ string, ev *platformpb.Event) {...})
// decoding ev.Payload with decodePresence, stop = Follower.Close. Until
// then tickets of a closed connection end by the broker check (a broker
// that left yellow) or the time limit.
func followPresence(env *services.Env, fn func(*platformpb.Presence)) (stop func(), err error) {
	_, _ = env, fn
	return func() {}, nil
}

// decodePresence decodes a presence event's payload; nil for an event of
// another type or one that does not decode.
func decodePresence(ev *platformpb.Event) *platformpb.Presence {
	if ev.GetType() != wire.EventPresence {
		return nil
	}
	var p platformpb.Presence
	if proto.Unmarshal(ev.GetPayload(), &p) != nil || p.GetUserId() == "" {
		return nil
	}
	return &p
}

// requireService refuses a call that does not come from one of the named
// services (dedicated game servers).
//
// Rewire: sess.RequireService(names...).
func requireService(sess *services.Session, names ...string) error {
	if sess.ID() != "" || sess.UserID() != "" {
		return wire.Errorf(wire.CodeUnauthenticated, "platform processes only: clients may not call this")
	}
	if id, tls := sess.Caller(); tls && (id.Role != pki.RoleService || !slices.Contains(names, id.Name)) {
		return wire.Errorf(wire.CodeUnauthenticated, "caller %s may not call this (services: %v)", id, names)
	}
	return nil
}

// requireAdmin refuses a call that does not come from an operator's tool.
//
// Rewire: sess.RequireAdmin().
func requireAdmin(sess *services.Session) error {
	if sess.ID() != "" || sess.UserID() != "" {
		return wire.Errorf(wire.CodeUnauthenticated, "operators only: clients may not call this")
	}
	if id, tls := sess.Caller(); tls && id.Role != pki.RoleAdmin {
		return wire.Errorf(wire.CodeUnauthenticated, "caller %s is not an operator", id)
	}
	return nil
}

// setMeta makes the instance publish meta() in its yellow record on each
// heartbeat (the scale-out signal).
//
// Rewire: impl.Meta = meta.
func setMeta(impl *services.Impl, meta func() map[string]string) {
	_, _ = impl, meta
}
