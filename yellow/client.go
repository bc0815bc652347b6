package yellow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

// DefaultCallTimeout bounds one request to a yellow: a yellow on the same
// network answers in well under a millisecond; a second rides out a GC
// pause or a busy host without letting a dead yellow hold a beat for long.
const DefaultCallTimeout = time.Second

// ClientOptions configures the provider side (Register) and the consumer
// side (Watch).
type ClientOptions struct {
	// Yellows are the ROUTER endpoints of every configured yellow.
	Yellows []string `yaml:"yellows"`
	// Heartbeat is how often a provider beats (the faster of this and what
	// yellow asks for is used) and the tick interval a watcher expects
	// before yellow has told it its own. Default 1 s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Timeout bounds each request to a yellow. Default DefaultCallTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// TLS, when set, runs mutual TLS on the links to every yellow, which
	// must present a yellow certificate. Nil: plain links.
	TLS *pki.Credentials `yaml:"-"`
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Heartbeat < minInterval {
		o.Heartbeat = minInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultCallTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// peer is what the clients need of a link to one yellow's ROUTER.
type peer interface {
	Call(ctx context.Context, req *platformpb.Envelope) (*platformpb.Envelope, error)
	// Alive reports whether the link is connected (calls fail at once
	// while it is not).
	Alive() bool
	// Up returns a channel closed once the link is up.
	Up() <-chan struct{}
	Close() error
}

// waitAlive waits up to timeout for p to be connected, so that the first
// call after a (re)dial is not failed at once. It wakes when the link comes
// up (Peer.Up), it does not poll.
func waitAlive(ctx context.Context, p peer, timeout time.Duration) bool {
	if p.Alive() {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.Up():
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// subscription is a live subscription to a yellow's PUB socket; it
// reconnects by itself when the connection fails or goes silent.
type subscription interface {
	Close() error
}

// transport makes links; the real one is the link package (transport.go).
type transport interface {
	dial(endpoint string) peer
	subscribe(endpoint, topic string, deliver func(topic string, ev *platformpb.Event)) (subscription, error)
}

// call sends one request to a yellow and decodes its reply. A reply with an
// error code comes back as a *wire.Error, together with the decoded reply.
func call(ctx context.Context, p peer, timeout time.Duration, method string, req *platformpb.YellowRequest) (*platformpb.YellowReply, error) {
	payload, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("yellow: encoding %s: %w", method, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env := &platformpb.Envelope{
		Kind:      platformpb.Kind_KIND_REQUEST,
		RequestId: req.GetRequestId(),
		Method:    method,
		Payload:   payload,
	}
	if dl, ok := ctx.Deadline(); ok {
		env.DeadlineUnixNano = dl.UnixNano()
	}
	out, err := p.Call(ctx, env)
	if err != nil {
		return nil, err
	}
	rep := &platformpb.YellowReply{}
	if err := proto.Unmarshal(out.GetPayload(), rep); err != nil {
		if out.GetErrorCode() != "" {
			return nil, &wire.Error{Code: out.GetErrorCode(), Message: out.GetErrorMessage()}
		}
		return nil, fmt.Errorf("yellow: undecodable %s reply: %w", method, err)
	}
	if out.GetErrorCode() != "" {
		return rep, &wire.Error{Code: out.GetErrorCode(), Message: out.GetErrorMessage()}
	}
	if rep.GetError() != "" {
		return rep, &wire.Error{Code: wire.CodeInternal, Message: rep.GetError()}
	}
	return rep, nil
}

// isRejection reports whether err is yellow refusing the request (as
// opposed to yellow being unreachable).
func isRejection(err error) bool {
	var re *wire.Error
	return errors.As(err, &re) && (re.Code == wire.CodeBadRequest || re.Code == wire.CodeOverloaded)
}

// replyInterval is the heartbeat interval to use: the faster of ours and
// what yellow asks for.
func replyInterval(ours time.Duration, rep *platformpb.YellowReply) time.Duration {
	if ms := rep.GetHeartbeatIntervalMs(); ms > 0 {
		if theirs := time.Duration(ms) * time.Millisecond; theirs < ours {
			ours = theirs
		}
	}
	return max(ours, minInterval)
}

// jitter spreads d by ±20% so that many clients retrying after a yellow
// restart do not come back in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d*4/5 + rand.N(d*2/5+1)
}
