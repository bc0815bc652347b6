package match

// The seams: what the matchmaker needs from the platform, as small
// interfaces the Service is written against (unit tests fake them), and
// their adapters to the runtime: directives through the instance's
// Server, room.CreateMatched through its Client, the yellow view of its
// Client's pool, and the brokers' presence through Env.Follow.

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/services"
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

// serverPusher publishes directives on the instance's PUB socket, once
// attached to its Server.
type serverPusher struct {
	srv atomic.Pointer[services.Server]
}

// PublishSession publishes ds as one EventSession on broker's session
// topic.
func (p *serverPusher) PublishSession(broker string, ds ...*platformpb.SessionDirective) error {
	srv := p.srv.Load()
	if srv == nil {
		return errors.New("match: not attached to a server yet")
	}
	return srv.PublishSession(broker, ds...)
}

// clientRooms calls room.CreateMatched through the instance's Client.
type clientRooms struct{ c *services.Client }

// CreateMatched calls the room id's owner (a stateful call keyed by room,
// as a broker routes the players' room.* calls). ctx carries no client
// session: placements run on the service's own goroutines.
func (r clientRooms) CreateMatched(ctx context.Context, req *roompb.CreateMatchedRequest) (*roompb.CreateMatchedReply, error) {
	reply := roompb.NewCreateMatchedReply()
	err := r.c.CallTo(ctx, services.Target{Service: roomrpc.Service, Stateful: true, Key: BindingRoom, Value: req.RoomID},
		roomrpc.MethodCreateMatched, req, reply)
	return reply, err
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
