package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// SessionOptions configures a Session.
type SessionOptions struct {
	// BrokerList is the URL of the BrokerList (the only address a game
	// client knows), e.g. http://play.example.com:1050/brokerlist.
	BrokerList string
	// Brokers, when BrokerList is empty, are broker addresses to try
	// ("host:port" for TCP, ws:// or wss:// URLs).
	Brokers []string
	// Options are the connection options; Hello is always on (the session
	// resumes with its token in the hello).
	Options Options
}

// Session is a game client's logged-in session across broker connections:
// it picks the least-loaded broker from the BrokerList, keeps the session
// token of its login, and when its connection is lost it reconnects to
// another broker and resumes the session with the token. Pushes of every
// connection arrive on one channel. A Session is safe for concurrent use.
type Session struct {
	opts   SessionOptions
	pushes chan Push

	mu     sync.Mutex // guards the fields below
	c      *Client
	addr   string
	token  string
	userID string
	closed bool
}

// ErrSessionClosed is returned by calls on a closed Session.
var ErrSessionClosed = errors.New("client: session closed")

// Connect fetches the BrokerList, connects to the least-loaded broker and
// says hello.
func Connect(ctx context.Context, opts SessionOptions) (*Session, error) {
	opts.Options.Hello = true
	if opts.Options.PushQueue <= 0 {
		opts.Options.PushQueue = DefaultPushQueue
	}
	s := &Session{opts: opts, pushes: make(chan Push, opts.Options.PushQueue)}
	if _, err := s.client(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Resume is Connect with an existing session token: the connection is
// authenticated by the hello.
func Resume(ctx context.Context, opts SessionOptions, token string) (*Session, error) {
	opts.Options.ResumeToken = token
	s, err := Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.token = token
	s.mu.Unlock()
	return s, nil
}

// candidates lists broker addresses, least loaded first, the one to avoid
// (the broker just lost) last.
func (s *Session) candidates(ctx context.Context, avoid string) ([]string, error) {
	var addrs []string
	if s.opts.BrokerList != "" {
		list, err := FetchBrokerList(ctx, s.opts.BrokerList)
		if err != nil {
			return nil, err
		}
		for a := range list {
			addrs = append(addrs, a)
		}
		sort.Slice(addrs, func(i, j int) bool {
			if list[addrs[i]] != list[addrs[j]] {
				return list[addrs[i]] < list[addrs[j]]
			}
			return addrs[i] < addrs[j]
		})
	} else {
		addrs = append(addrs, s.opts.Brokers...)
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if a != avoid {
			out = append(out, a)
		}
	}
	for _, a := range addrs {
		if a == avoid {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoBrokers
	}
	return out, nil
}

// client returns the live connection, (re)connecting when there is none or
// it was lost.
func (s *Session) client(ctx context.Context) (*Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSessionClosed
	}
	if s.c != nil {
		select {
		case <-s.c.Done():
		default:
			return s.c, nil
		}
	}
	avoid := s.addr
	addrs, err := s.candidates(ctx, avoid)
	if err != nil {
		return nil, err
	}
	opts := s.opts.Options
	opts.ResumeToken = s.token
	var errs []error
	for _, a := range addrs {
		c, err := Dial(ctx, a, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if s.token != "" {
			if h := c.HelloReply(); h == nil || h.GetUserID() == "" {
				c.Close()
				return nil, &Error{Code: "unauthenticated", Message: "session token refused on resume"}
			}
		}
		s.c, s.addr = c, a
		go s.forward(c)
		return c, nil
	}
	return nil, fmt.Errorf("client: no broker reachable: %w", errors.Join(errs...))
}

// forward copies a connection's pushes onto the session's channel. On
// @edge.LoggedOut (a logout, on any broker, or the token's expiry) the
// session forgets its token: the next connection is a fresh one, not a
// resume bound to fail.
func (s *Session) forward(c *Client) {
	for p := range c.Pushes() {
		if p.Type == wire.EventLoggedOut {
			s.mu.Lock()
			s.token, s.userID = "", ""
			s.mu.Unlock()
		}
		select {
		case s.pushes <- p:
		default: // the game is not reading pushes: drop the newest
		}
	}
}

// Broker is the address of the broker the session is connected to.
func (s *Session) Broker() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Token is the session token (after Login or Resume).
func (s *Session) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// UserID is the logged-in user's id, after Login.
func (s *Session) UserID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userID
}

// Pushes delivers the pushes of every connection of the session.
func (s *Session) Pushes() <-chan Push { return s.pushes }

// Call sends method with payload and returns the reply payload. When the
// connection was lost before the call, the session first reconnects (to
// another broker when it can) and resumes. A call cut off by a lost
// connection returns its error: it may have run, so it is not resent.
func (s *Session) Call(ctx context.Context, method string, payload []byte) ([]byte, error) {
	c, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.Call(ctx, method, payload)
}

// CallThrift is Call with Thrift structs.
func (s *Session) CallThrift(ctx context.Context, method string, req, resp thrift.TStruct) error {
	payload, err := thriftx.Marshal(req)
	if err != nil {
		return err
	}
	out, err := s.Call(ctx, method, payload)
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	return thriftx.Unmarshal(out, resp)
}

// Login logs in through the broker and keeps the session token for
// resuming on another broker.
func (s *Session) Login(ctx context.Context, username, password string) (*login.LoginReply, error) {
	rep, err := loginrpc.NewClient(s.CallThrift).Login(ctx, &login.LoginRequest{Username: username, Password: password})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.token, s.userID = rep.GetSessionToken(), rep.GetUserID()
	s.mu.Unlock()
	return rep, nil
}

// Close closes the session's connection (the session token stays valid
// until logout or expiry).
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.c != nil {
		return s.c.Close()
	}
	return nil
}
