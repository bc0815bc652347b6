package friends

// The seams: what the friends service needs from the platform, as small
// interfaces the Service is written against (unit tests fake them), and
// their adapters to the runtime: pushes through the instance's Server,
// login.LookupUser through its Client, the brokers in its Client's yellow
// view, and the brokers' presence through Env.Follow.

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/apache/thrift/lib/go/thrift"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/services"
)

// Directory finds users: the login service owns the accounts.
type Directory interface {
	// Lookup returns the id of the user named by username (ignoring case)
	// or by userID (exactly one is set); ok is false when there is none.
	Lookup(ctx context.Context, username, userID string) (id string, ok bool, err error)
}

// Publisher publishes an event of eventType with payload on topic (a
// services.Server's Publish): brokers push it to the connections
// subscribed to topic.
type Publisher interface {
	Publish(topic, eventType string, payload []byte) error
}

// Brokers is what the service reads of the platform in yellow: which
// brokers are alive, to end the connections of those that left.
type Brokers interface {
	// LiveBrokers returns the ids of the brokers yellow lists; ok is false
	// while there is no view yet (no broker may then be judged gone).
	LiveBrokers() (ids []string, ok bool)
	// Changed returns a channel closed at the next change of the view
	// (take it before reading the view).
	Changed() <-chan struct{}
}

// brokerService is the brokers' service name in yellow.
const brokerService = "broker"

// serverPublisher publishes on the instance's PUB socket, once attached to
// its Server.
type serverPublisher struct {
	srv atomic.Pointer[services.Server]
}

// Publish implements Publisher.
func (p *serverPublisher) Publish(topic, eventType string, payload []byte) error {
	srv := p.srv.Load()
	if srv == nil {
		return errors.New("friends: not attached to a server yet")
	}
	return srv.Publish(topic, eventType, payload)
}

// loginDirectory calls login.LookupUser (an internal method: the friends
// service's certificate may) through the instance's Client.
type loginDirectory struct{ c *services.Client }

// Lookup implements Directory. The call carries no client session (a
// service calling a service is that service): login refuses one.
func (d loginDirectory) Lookup(ctx context.Context, username, userID string) (string, bool, error) {
	req := &loginpb.LookupUserRequest{}
	if username != "" {
		req.Username = thrift.StringPtr(username)
	} else {
		req.UserID = thrift.StringPtr(userID)
	}
	rep, err := loginrpc.NewClient(d.c.Call).LookupUser(services.ContextWithSession(ctx, nil), req)
	if err != nil {
		return "", false, err
	}
	return rep.UserID, rep.Found, nil
}

// poolBrokers reads the Client's yellow view.
type poolBrokers struct{ c *services.Client }

// LiveBrokers implements Brokers.
func (p poolBrokers) LiveBrokers() ([]string, bool) {
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

// Changed implements Brokers.
func (p poolBrokers) Changed() <-chan struct{} { return p.c.Pool().Changed() }
