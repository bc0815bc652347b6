package room

import (
	"context"
	"time"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Rewards: when a game finishes with a winner, the room asks the game
// service to grant the winner what Options.Rewards.OnWin says
// (game.Grant, an internal method the game service takes from room), with
// the idempotency key "room:<id>:win", so a retry, or a second owner after
// a failover, never grants twice. The call runs on its own goroutine,
// retried a few times, so the room's controller never waits for it; a
// reward that still fails is logged and counted (room_reward_errors_total).

// Reward retries: a game service restarting or failing over answers again
// within seconds.
const (
	rewardAttempts    = 4
	rewardFirstDelay  = 250 * time.Millisecond
	rewardCallTimeout = 3 * time.Second
	// maxRewardAmount bounds a reward's amount: the game service's own
	// bound on a balance (10^15).
	maxRewardAmount = 1_000_000_000_000_000
)

// RewardsOptions say what players get for a game's result (the
// services.room.rewards section). None by default.
type RewardsOptions struct {
	// Service is the game service that grants them ("" means "game").
	Service string `yaml:"service"`
	// OnWin, when set, is the winner's reward.
	OnWin *Reward `yaml:"on_win"`
}

// Reward is what a player gets: an amount of a currency and/or a stat
// incremented by one.
type Reward struct {
	// Currency and Amount (> 0) go together; both empty: no currency.
	Currency string `yaml:"currency"`
	Amount   int64  `yaml:"amount"`
	// Stat is incremented by one; "" for none.
	Stat string `yaml:"stat"`
}

// service returns the granting service's name.
func (o RewardsOptions) service() string {
	if o.Service == "" {
		return "game"
	}
	return o.Service
}

// Validate checks the rewards; fields are named by yaml path.
func (o RewardsOptions) Validate() error {
	var errs config.Errors
	if o.Service != "" {
		if err := wire.ValidateName(o.Service); err != nil {
			errs.Addf("service", "%v", err)
		}
	}
	if w := o.OnWin; w != nil {
		if w.Currency == "" && w.Stat == "" {
			errs.Addf("on_win", "set a currency (with an amount) or a stat")
		}
		if w.Currency != "" {
			if err := wire.ValidateName(w.Currency); err != nil {
				errs.Addf("on_win.currency", "%v", err)
			}
		}
		if (w.Currency != "") != (w.Amount != 0) || w.Amount < 0 || w.Amount > maxRewardAmount {
			errs.Addf("on_win.amount", "must be in [1, %d] with a currency, 0 without, got %d", int64(maxRewardAmount), w.Amount)
		}
		if w.Stat != "" {
			if err := wire.ValidateName(w.Stat); err != nil {
				errs.Addf("on_win.stat", "%v", err)
			}
		}
	}
	return errs.Err()
}

// Rewarder grants rewards: game.Grant (the module's calls it through the
// instance's services.Client).
type Rewarder interface {
	Grant(ctx context.Context, req *gamepb.GrantRequest) error
}

// clientRewarder calls <service>.Grant through a services.Client.
type clientRewarder struct {
	c      *services.Client
	method string
}

// NewClientRewarder returns a Rewarder calling service's Grant through c.
func NewClientRewarder(c *services.Client, service string) Rewarder {
	return clientRewarder{c: c, method: service + ".Grant"}
}

// Grant implements Rewarder; the call carries no client session (Grant is
// an internal method).
func (r clientRewarder) Grant(ctx context.Context, req *gamepb.GrantRequest) error {
	return r.c.Call(services.ContextWithSession(ctx, nil), r.method, req, gamepb.NewChangeReply())
}

// WinKey is the idempotency key of room id's winner's reward.
func WinKey(id string) string { return "room:" + id + ":win" }

// rewardWin grants room id's winner the OnWin reward, on a goroutine of
// its own. Called by the room's controller (which s.wg counts, so the Add
// never races stop's Wait).
func (s *Service) rewardWin(id, winner string) {
	w := s.opts.Rewards.OnWin
	if w == nil || s.rewards == nil || winner == "" {
		return
	}
	req := &gamepb.GrantRequest{UserID: winner, Reason: "room_win", Reference: "room:" + id, IdempotencyKey: WinKey(id)}
	if w.Currency != "" {
		req.Currencies = map[string]int64{w.Currency: w.Amount}
	}
	if w.Stat != "" {
		req.Stats = map[string]int64{w.Stat: 1}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		delay := rewardFirstDelay
		var err error
		for attempt := 1; attempt <= rewardAttempts; attempt++ {
			ctx, cancel := context.WithTimeout(s.ctx, rewardCallTimeout)
			err = s.rewards.Grant(ctx, req)
			cancel()
			if err == nil {
				s.st.rewards.Add(1)
				s.log.Debug("room: winner rewarded", "room", id, "winner", winner)
				return
			}
			switch wire.CodeOf(err) {
			case wire.CodeBadRequest, wire.CodeNotFound, wire.CodeUnauthenticated, wire.CodeConflict, wire.CodeUnknownMethod:
				attempt = rewardAttempts // a refusal: retrying changes nothing
				continue
			}
			if attempt == rewardAttempts {
				break
			}
			t := time.NewTimer(delay)
			select {
			case <-s.ctx.Done():
				t.Stop()
				attempt = rewardAttempts
			case <-t.C:
			}
			delay *= 4
		}
		s.st.rewardErrors.Add(1)
		s.log.Error("room: rewarding the winner failed", "room", id, "winner", winner, "service", s.opts.Rewards.service(), "err", err)
	}()
}
