package login

import (
	"context"
	"fmt"
	"time"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// banCheckTimeout bounds asking whether a player is banned: a healthy
// game service answers in a millisecond; past this the login goes ahead
// (fail open) rather than keep the player waiting on a service that is
// down.
const banCheckTimeout = 2 * time.Second

// banInstanceWait bounds the wait for the ban service's first instance in
// the yellow view when the view has none: an instance that just
// registered reaches the view within milliseconds (a yellow delta), while
// a service that is down should not hold every login for long.
const banInstanceWait = 500 * time.Millisecond

// Ban is what a BanChecker says of a user.
type Ban struct {
	// Banned is true while the ban is in force.
	Banned bool
	// Until is when it ends; Reason says why.
	Until  time.Time
	Reason string
}

// BanChecker says whether a user is banned. The module's is the service
// Options.BanCheck names, called through the instance's services.Client.
type BanChecker interface {
	BanStatus(ctx context.Context, userID string) (Ban, error)
}

// SetBanChecker makes Login refuse banned players, asking b after the
// password check. Call it before the service serves; nil checks nothing.
func (s *Service) SetBanChecker(b BanChecker) { s.bans = b }

// bannedError is the refusal of a banned player's login: unauthenticated,
// saying until when and why.
func bannedError(b Ban) error {
	return wire.Errorf(wire.CodeUnauthenticated, "banned until %s: %s", b.Until.UTC().Format(time.RFC3339), b.Reason)
}

// checkBan refuses a banned user's login. When the checker fails (the
// service is unreachable or slow) the login goes ahead: a warning is
// logged and login_ban_checks_total{result="error"} counted. Failing
// closed would turn a game service outage into every player locked out;
// a ban is enforced again at the next login once it answers.
func (s *Service) checkBan(ctx context.Context, userID string) error {
	if s.bans == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, banCheckTimeout)
	defer cancel()
	b, err := s.bans.BanStatus(ctx, userID)
	switch {
	case err != nil:
		s.m.banChecks.With("error").Inc()
		s.log.Warn("login: ban check failed: letting the login through (fail open)", "user_id", userID, "service", s.opts.BanCheck, "err", err)
		return nil
	case b.Banned:
		s.m.banChecks.With("banned").Inc()
		s.log.Info("login: refused a banned player", "user_id", userID, "until", b.Until, "reason", b.Reason)
		return bannedError(b)
	}
	s.m.banChecks.With("ok").Inc()
	return nil
}

// clientBans asks <service>.BanStatus (game.BanStatus) through a
// services.Client.
type clientBans struct {
	c       *services.Client
	service string
	method  string
}

// NewClientBanChecker returns a BanChecker that calls service's
// BanStatus method (idl/game.thrift's BanStatusRequest and reply) through
// c.
func NewClientBanChecker(c *services.Client, service string) BanChecker {
	return clientBans{c: c, service: service, method: service + ".BanStatus"}
}

// BanStatus implements BanChecker. The call carries no client session:
// BanStatus is an internal method, which refuses one.
func (b clientBans) BanStatus(ctx context.Context, userID string) (Ban, error) {
	ctx = services.ContextWithSession(ctx, nil)
	b.waitForInstance(ctx)
	var rep gamepb.BanStatusReply
	if err := b.c.Call(ctx, b.method, &gamepb.BanStatusRequest{UserID: userID}, &rep); err != nil {
		return Ban{}, fmt.Errorf("%s: %w", b.method, err)
	}
	if !rep.Banned {
		return Ban{}, nil
	}
	return Ban{Banned: true, Until: time.UnixMilli(rep.UntilUnixMs), Reason: rep.Reason}, nil
}

// waitForInstance waits, at most banInstanceWait, until the client's
// yellow view lists an instance of the ban service: at start (login's view
// a delta behind the service's registration) the call would otherwise
// fail at once.
func (b clientBans) waitForInstance(ctx context.Context) {
	pool := b.c.Pool()
	t := time.NewTimer(banInstanceWait)
	defer t.Stop()
	for {
		changed := pool.Changed()
		if len(pool.Instances(b.service)) > 0 {
			return
		}
		select {
		case <-changed:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
