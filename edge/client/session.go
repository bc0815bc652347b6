package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// Local events of a Session: pushes the Session itself makes (their
// types start with "_", which no broker push does).
const (
	// EventResumed is pushed after the Session lost its connection and
	// resumed its login session on a broker (in the background, or before
	// a Call); its payload is the broker's address. The broker restored the
	// session's bindings and subscriptions (the player is in their room
	// again), but pushes published while no connection was up are not
	// replayed: an app catches up on them here (room.Get with since_seq).
	EventResumed = "_client.Resumed"
	// EventResumeFailed is pushed when a resume was refused (the token was
	// logged out or expired): the Session forgot the token and must log in
	// again.
	EventResumeFailed = "_client.ResumeFailed"
)

// Defaults of SessionOptions' reconnection backoff.
const (
	// DefaultReconnectMin is the first wait before reconnecting after a
	// failed attempt, 50 ms: another broker is usually there at once.
	DefaultReconnectMin = 50 * time.Millisecond
	// DefaultReconnectMax caps the wait between attempts, 5 s: a client
	// keeps trying about as often as a player would, without hammering a
	// cluster that is down.
	DefaultReconnectMax = 5 * time.Second
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
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// reconnect a logged-in session whose connection was lost (doubling,
	// with jitter); 0 means DefaultReconnectMin / DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
	// NoBackgroundReconnect turns the background reconnection off: a lost
	// connection is then replaced only by the next Call.
	NoBackgroundReconnect bool
}

// Session is a game client's logged-in session across broker connections:
// it picks the least-loaded broker from the BrokerList, keeps the session
// token of its login (Login, or a login.Login made with Call), and when
// its connection is lost while logged in it reconnects in the background
// to another broker, with backoff, and resumes the session with the token:
// the broker restores the session's room binding and subscriptions, and
// the Session pushes EventResumed. Pushes of every connection arrive on
// one channel. A Session is safe for concurrent use.
type Session struct {
	opts   SessionOptions
	pushes chan Push
	quit   chan struct{} // closed by Close

	mu sync.Mutex // guards the fields below
	c  *Client
	// leaving is a connection whose broker said it is draining: c while
	// no Call has moved the session yet.
	leaving *Client
	addr    string
	token   string
	userID  string
	closed  bool
}

// ErrSessionClosed is returned by calls on a closed Session.
var ErrSessionClosed = errors.New("client: session closed")

// Connect fetches the BrokerList, connects to the least-loaded broker and
// says hello.
func Connect(ctx context.Context, opts SessionOptions) (*Session, error) {
	return connect(ctx, opts, "")
}

// Resume is Connect with an existing session token: the connection is
// authenticated by the hello (an error if the token is refused).
func Resume(ctx context.Context, opts SessionOptions, token string) (*Session, error) {
	return connect(ctx, opts, token)
}

// connect makes a Session, with token if set, and its first connection.
func connect(ctx context.Context, opts SessionOptions, token string) (*Session, error) {
	opts.Options.Hello = true
	if opts.Options.PushQueue <= 0 {
		opts.Options.PushQueue = DefaultPushQueue
	}
	if opts.ReconnectMin <= 0 {
		opts.ReconnectMin = DefaultReconnectMin
	}
	if opts.ReconnectMax < opts.ReconnectMin {
		opts.ReconnectMax = max(DefaultReconnectMax, opts.ReconnectMin)
	}
	s := &Session{opts: opts, pushes: make(chan Push, opts.Options.PushQueue), quit: make(chan struct{}), token: token}
	if _, err := s.client(ctx); err != nil {
		s.Close()
		return nil, err
	}
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
	if s.c != nil && s.c != s.leaving {
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
		resumed := s.c != nil && s.token != ""
		if s.token != "" {
			if h := c.HelloReply(); h == nil || h.GetUserID() == "" {
				c.Close()
				if s.c != nil {
					// A lost session's token: forget it, so the next
					// connection is a fresh one, and say so.
					s.token, s.userID = "", ""
					s.local(EventResumeFailed, nil)
				}
				return nil, &Error{Code: "unauthenticated", Message: "session token refused on resume"}
			}
		}
		s.c, s.addr = c, a
		if s.token != "" {
			s.userID = c.HelloReply().GetUserID()
		}
		if resumed {
			s.local(EventResumed, []byte(a))
		}
		go s.forward(c)
		return c, nil
	}
	return nil, fmt.Errorf("client: no broker reachable: %w", errors.Join(errs...))
}

// clientFor is client for a Call. When no broker answers (in a rolling
// restart the brokers listed may all be draining while the new ones are
// not listed yet) it tries again, as the background reconnection does:
// after ReconnectMin with jitter, doubling, for at most ReconnectMax in
// all and never past ctx. Nothing was sent, so the call is safe to retry.
// A refusal (an *Error: the session token) or Close ends it at once.
func (s *Session) clientFor(ctx context.Context) (*Client, error) {
	bo, start := s.backoff(), time.Now()
	for {
		c, err := s.client(ctx)
		if connectEnds(err) || ctx.Err() != nil {
			return c, err
		}
		d := bo.next()
		if time.Since(start)+d > s.opts.ReconnectMax {
			return nil, err
		}
		select {
		case <-s.quit:
			return nil, ErrSessionClosed
		case <-ctx.Done():
			return nil, err
		case <-time.After(d):
		}
	}
}

// connectEnds reports whether client's result ends a retry loop: a
// connection, Close, or a refusal (an *Error: the session token).
func connectEnds(err error) bool {
	var werr *Error
	return err == nil || errors.Is(err, ErrSessionClosed) || errors.As(err, &werr)
}

// reconnectBackoff is the reconnection's backoff: from ReconnectMin,
// doubling up to ReconnectMax, each delay with jitter in [wait/2, wait],
// so that the players of a dead broker do not all come back at once.
type reconnectBackoff struct{ wait, max time.Duration }

func (s *Session) backoff() *reconnectBackoff {
	return &reconnectBackoff{wait: s.opts.ReconnectMin, max: s.opts.ReconnectMax}
}

// next returns the next delay.
func (b *reconnectBackoff) next() time.Duration {
	d := b.wait/2 + rand.N(b.wait/2+1)
	b.wait = min(2*b.wait, b.max)
	return d
}

// local queues a local event on the session's pushes (dropped if the game
// is not reading them, as a broker's push would be). The caller holds
// s.mu.
func (s *Session) local(typ string, payload []byte) {
	select {
	case s.pushes <- Push{Type: typ, Payload: payload}:
	default:
	}
}

// reconnect replaces the lost connection c in the background while the
// session has a token: it tries the brokers (another than c's first) with
// a backoff from ReconnectMin doubling to ReconnectMax, until one resumes
// the session, the token is refused, a Call reconnected first, or Close.
func (s *Session) reconnect(c *Client) {
	bo := s.backoff()
	for {
		s.mu.Lock()
		stop := s.closed || s.c != c || s.token == ""
		s.mu.Unlock()
		if stop {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-s.quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		_, err := s.client(ctx)
		cancel()
		if connectEnds(err) {
			return // resumed, closed, or refused
		}
		select {
		case <-s.quit:
			return
		case <-time.After(bo.next()):
		}
	}
}

// forward copies a connection's pushes onto the session's channel. On
// @edge.LoggedOut (a logout, on any broker, or the token's expiry) the
// session forgets its token: the next connection is a fresh one, not a
// resume bound to fail.
func (s *Session) forward(c *Client) {
	for p := range c.Pushes() {
		switch p.Type {
		case wire.EventLoggedOut:
			s.mu.Lock()
			s.token, s.userID = "", ""
			s.mu.Unlock()
		case wire.EventDraining:
			// The broker is going away (a deploy): the next Call moves to
			// another broker, resuming the session, while the calls in
			// flight here are answered; the broker closes this connection
			// when its grace ends. Pushes keep coming from both until
			// then (a room event may arrive twice: its seq tells).
			s.mu.Lock()
			s.leaving = c
			s.mu.Unlock()
		}
		select {
		case s.pushes <- p:
		default: // the game is not reading pushes: drop the newest
		}
	}
	// The connection ended: reconnect now if logged in, rather than at
	// the next Call, so that the player is back in the room and its pushes
	// flow again with no action of the game.
	if !s.opts.NoBackgroundReconnect {
		s.reconnect(c)
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
	c, err := s.clientFor(ctx)
	if err != nil {
		return nil, err
	}
	out, err := c.Call(ctx, method, payload)
	if err == nil {
		s.observe(method, payload, out)
	}
	return out, err
}

// observe keeps the token of a successful login.Login made with Call (or
// its pandaparty name), and forgets it after a login.Logout of it, as
// Login does.
func (s *Session) observe(method string, payload, out []byte) {
	switch method {
	case loginrpc.MethodLogin, "Login":
		var rep login.LoginReply
		if thriftx.Unmarshal(out, &rep) != nil || rep.GetSessionToken() == "" {
			return
		}
		s.mu.Lock()
		s.token, s.userID = rep.GetSessionToken(), rep.GetUserID()
		s.mu.Unlock()
	case loginrpc.MethodLogout:
		var req login.LogoutRequest
		if thriftx.Unmarshal(payload, &req) != nil {
			return
		}
		s.mu.Lock()
		if req.GetSessionToken() == s.token {
			s.token, s.userID = "", ""
		}
		s.mu.Unlock()
	}
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
	// Call keeps the token (observe).
	return loginrpc.NewClient(s.CallThrift).Login(ctx, &login.LoginRequest{Username: username, Password: password})
}

// Close closes the session's connection (the session token stays valid
// until logout or expiry).
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	if s.c != nil {
		return s.c.Close()
	}
	return nil
}
