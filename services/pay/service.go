package pay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	paypb "github.com/noonhq/noon/idl/gen/pay"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services/pay/provider"
	"github.com/noonhq/noon/wire"
)

// PushRefunded is the push type ("@pay.Refunded", a Purchase) on the
// player's topic when a purchase of theirs is refunded or revoked.
const PushRefunded = "pay.Refunded"

// Limits of requests.
const (
	// maxKeyLen bounds a client idempotency key.
	maxKeyLen = 128
	// defaultListLimit and maxListLimit bound pay.List.
	defaultListLimit = 50
	maxListLimit     = 200
	// pendingBatch bounds the outbox rows one worker pass delivers.
	pendingBatch = 100
	// gameKeyMax is game's idempotency key limit (game.MaxKeyLen).
	gameKeyMax = 128
	// keyWait is how often a request whose key is in flight in another
	// request looks for its reply.
	keyWait = 20 * time.Millisecond
	// keyLease is how long a key's first request may run: a key reserved
	// longer ago without a reply belongs to a request that died with its
	// process, and the next request with it runs (the work is idempotent:
	// the record is unique, the grant keyed).
	keyLease = 30 * time.Second
)

// Game is what pay needs of the game service: its server paths Grant and
// Spend, both idempotent by key.
type Game interface {
	Grant(ctx context.Context, req *gamepb.GrantRequest) (*gamepb.ChangeReply, error)
	Spend(ctx context.Context, req *gamepb.SpendRequest) (*gamepb.ChangeReply, error)
}

// Publisher publishes an event on a topic (a services.Server's Publish).
type Publisher interface {
	Publish(topic, eventType string, payload []byte) error
}

// Deps are what a Service runs on.
type Deps struct {
	// Store keeps the purchases (NewPostgresStore, or NewMemoryStore).
	Store Store
	// Game grants and takes the goods.
	Game Game
	// Publisher pushes @pay.Refunded; nil pushes nothing.
	Publisher Publisher
	// Providers are the stores, by their Name.
	Providers []provider.Provider
	// Logger receives the logs; nil discards them.
	Logger *slog.Logger
	// Metrics receives the metrics; nil means none.
	Metrics metrics.Sink
	// Clock, when set, is the service's clock.
	Clock func() time.Time
}

// Service is the pay service: the handlers of service Pay
// (idl/pay.thrift), the webhooks and the outbox worker.
//
// Exactly-once grant: pay and game own separate databases (and may run
// on separate hosts), so no one transaction spans the purchase record and
// the grant. Pay writes the purchase and an outbox row in one Postgres
// transaction; the row is then delivered to game.Grant, at least once
// (inline after the record, then by the worker on every instance until it
// is marked done, after any restart), with the idempotency key
// "pay:<provider>:<transaction id>": game applies a key once and answers
// a repeat with the first result, so at-least-once delivery grants
// exactly once.
type Service struct {
	opts      Options
	st        Store
	game      Game
	pub       Publisher
	providers map[string]provider.Provider
	products  map[string]Product
	log       *slog.Logger
	m         *serviceMetrics
	now       func() time.Time

	// afterRecord, a test seam, runs after a new purchase is recorded and
	// before its inline delivery; an error ends the request there (as a
	// crash would).
	afterRecord func() error

	kick      chan struct{}
	quit      chan struct{}
	wg        sync.WaitGroup
	startOnce sync.Once
	stopOnce  sync.Once
}

// New returns the pay service with opts over deps.
func New(opts Options, deps Deps) (*Service, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Game == nil {
		return nil, errors.New("pay: New needs a Store and a Game")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sink := deps.Metrics
	if sink == nil {
		sink = metrics.Nop()
	}
	s := &Service{
		opts: opts, st: deps.Store, game: deps.Game, pub: deps.Publisher,
		providers: map[string]provider.Provider{}, products: map[string]Product{},
		log: log, m: newMetrics(sink), now: time.Now,
		kick: make(chan struct{}, 1), quit: make(chan struct{}),
	}
	if deps.Clock != nil {
		s.now = deps.Clock
	}
	for _, p := range deps.Providers {
		s.providers[p.Name()] = p
	}
	for _, p := range opts.Products {
		s.products[p.ID] = p
	}
	return s, nil
}

// Run starts the outbox worker (once).
func (s *Service) Run() {
	s.startOnce.Do(func() {
		s.wg.Add(1)
		go s.worker()
	})
}

// Close stops the worker and waits for it.
func (s *Service) Close() {
	s.stopOnce.Do(func() { close(s.quit) })
	s.wg.Wait()
}

// Kick makes the worker look at the outbox now.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// worker delivers the pending outbox rows at each kick and every
// RetryInterval, and prunes old idempotency keys.
func (s *Service) worker() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.RetryInterval)
	defer t.Stop()
	var pruned time.Time
	for {
		s.deliverPending()
		if now := s.now(); now.Sub(pruned) > time.Minute {
			pruned = now
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.st.PruneKeys(ctx, now.Add(-s.opts.KeyTTL)); err != nil {
				s.log.Warn("pay: pruning idempotency keys", "err", err)
			}
			cancel()
		}
		select {
		case <-s.quit:
			return
		case <-s.kick:
		case <-t.C:
		}
	}
}

// deliverPending delivers a batch of pending outbox rows.
func (s *Service) deliverPending() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	rows, err := s.st.Pending(ctx, pendingBatch)
	if err != nil {
		s.log.Warn("pay: reading the outbox", "err", err)
		return
	}
	for _, r := range rows {
		if ctx.Err() != nil {
			return
		}
		if _, err := s.deliver(ctx, r); err != nil {
			s.log.Warn("pay: delivery failed; retried later", "outbox", r.ID, "purchase", r.Purchase.ID, "kind", r.Kind, "err", err)
		}
	}
}

// gameKey is the game idempotency key of a purchase's grant (suffix "")
// or take (":take").
func gameKey(r Record, suffix string) string {
	k := "pay:" + r.Provider + ":" + r.TransactionID + suffix
	if len(k) > gameKeyMax {
		sum := sha256.Sum256([]byte(r.TransactionID))
		k = "pay:" + r.Provider + ":sha256:" + hex.EncodeToString(sum[:]) + suffix
	}
	return k
}

// times multiplies goods by the purchase's quantity.
func times(m map[string]int64, q int) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v * int64(q)
	}
	return out
}

// deliver delivers one outbox row to game and marks it done; done is
// false when it must wait (a take before its grant is done).
func (s *Service) deliver(ctx context.Context, o OutboxRow) (done bool, err error) {
	if o.Done {
		return true, nil
	}
	r := o.Purchase
	switch o.Kind {
	case KindGrant:
		_, err := s.game.Grant(ctx, &gamepb.GrantRequest{
			UserID: r.UserID, Currencies: r.Currencies, Items: r.Items,
			Reason: "purchase", Reference: "pay:" + strconv.FormatInt(r.ID, 10), IdempotencyKey: gameKey(r, ""),
		})
		if err != nil {
			s.m.deliveryErrors.With(KindGrant).Inc()
			return false, err
		}
		if err := s.st.Done(ctx, o.ID, false); err != nil {
			return false, err
		}
		s.m.deliveries.With(KindGrant).Inc()
		return true, nil
	case KindTake:
		// A take waits for the purchase's grant: taking first would find
		// nothing and leave the grant to land after it.
		rows, err := s.st.Outbox(ctx, r.ID)
		if err != nil {
			return false, err
		}
		for _, g := range rows {
			if g.Kind == KindGrant && !g.Done {
				return false, nil
			}
		}
		debt := false
		if r.UserID != "" {
			_, err := s.game.Spend(ctx, &gamepb.SpendRequest{
				UserID: r.UserID, Currencies: r.Currencies, Items: r.Items,
				Reason: "refund", Reference: "pay:" + strconv.FormatInt(r.ID, 10), IdempotencyKey: gameKey(r, ":take"),
			})
			switch {
			case wire.CodeOf(err) == wire.CodeConflict:
				// game's Spend takes all or nothing and has no partial
				// take: what it could not take is owed, in full.
				debt = true
				s.m.debts.Inc()
				s.log.Warn("pay: refund could not take the goods back; recorded as debt", "purchase", r.ID, "user", r.UserID, "err", err)
			case err != nil:
				s.m.deliveryErrors.With(KindTake).Inc()
				return false, err
			}
		}
		if err := s.st.Done(ctx, o.ID, debt); err != nil {
			return false, err
		}
		s.m.deliveries.With(KindTake).Inc()
		if r.UserID != "" {
			s.push(r.UserID, PushRefunded, purchaseOf(r))
		}
		return true, nil
	}
	return false, fmt.Errorf("pay: outbox row %d of unknown kind %q", o.ID, o.Kind)
}

// push publishes msg on user's topic.
func (s *Service) push(user, eventType string, msg thrift.TStruct) {
	if s.pub == nil {
		return
	}
	payload, err := thriftx.Marshal(msg)
	if err == nil {
		err = s.pub.Publish(wire.KeyUser+"/"+user, eventType, payload)
	}
	if err != nil {
		s.log.Debug("pay: push not published", "user", user, "push", eventType, "err", err)
	}
}

// purchaseOf is r on the wire.
func purchaseOf(r Record) *paypb.Purchase {
	return &paypb.Purchase{
		ID: strconv.FormatInt(r.ID, 10), Provider: r.Provider, TransactionID: r.TransactionID,
		Product: r.Product, Quantity: int32(r.Quantity), State: r.State,
		Currencies: orEmpty(maps.Clone(r.Currencies)), Items: orEmpty(maps.Clone(r.Items)),
		UserID: r.UserID, CreatedUnixMs: r.CreatedAt.UnixMilli(),
	}
}

// requestHash is the hash a client idempotency key's request is compared
// by.
func requestHash(providerName string, signed []byte) []byte {
	h := sha256.New()
	h.Write([]byte(providerName))
	h.Write([]byte{0})
	h.Write(signed)
	return h.Sum(nil)
}

// validate runs pay.Validate for user (see api.Validate).
func (s *Service) validate(ctx context.Context, user string, req *paypb.ValidateRequest) (*paypb.ValidateReply, error) {
	if req.IdempotencyKey == "" || len(req.IdempotencyKey) > maxKeyLen {
		return nil, s.reject("bad_key", wire.Errorf(wire.CodeBadRequest, "idempotency_key is required: 1 to %d bytes", maxKeyLen))
	}
	p, ok := s.providers[req.Provider]
	if !ok {
		return nil, s.reject("unknown_provider", wire.Errorf(wire.CodeBadRequest, "unknown provider %q", wire.Snippet(req.Provider)))
	}
	if len(req.Signed) > s.opts.MaxPayload {
		return nil, s.reject("too_large", wire.Errorf(wire.CodeBadRequest, "signed payload of %d bytes, at most %d", len(req.Signed), s.opts.MaxPayload))
	}
	hash := requestHash(req.Provider, req.Signed)
	for {
		e, created, err := s.st.ReserveKey(ctx, user, req.IdempotencyKey, hash, s.now())
		if err != nil {
			return nil, s.storeError(err)
		}
		if !created && !bytes.Equal(e.Hash, hash) {
			return nil, s.reject("key_reused", wire.Errorf(wire.CodeConflict, "idempotency_key was used with another request"))
		}
		if created || e.Reply == nil && s.now().Sub(e.At) > keyLease {
			break
		}
		if e.Reply != nil {
			var rep paypb.ValidateReply
			if err := thriftx.Unmarshal(e.Reply, &rep); err != nil {
				return nil, s.storeError(err)
			}
			s.m.keyReplays.Inc()
			return &rep, nil
		}
		// The first request with this key is still running: wait for its
		// reply.
		select {
		case <-ctx.Done():
			return nil, wire.Errorf(wire.CodeUnavailable, "a request with this idempotency_key is in flight; retry")
		case <-time.After(keyWait):
		}
	}
	rep, err := s.validateOnce(ctx, user, p, req)
	if err != nil {
		if rerr := s.st.ReleaseKey(context.WithoutCancel(ctx), user, req.IdempotencyKey); rerr != nil {
			s.log.Warn("pay: releasing an idempotency key", "err", rerr)
		}
		return nil, err
	}
	b, err := thriftx.Marshal(rep)
	if err == nil {
		err = s.st.AnswerKey(context.WithoutCancel(ctx), user, req.IdempotencyKey, b)
	}
	if err != nil {
		s.log.Warn("pay: storing an idempotency key's reply", "err", err)
	}
	return rep, nil
}

// validateOnce verifies, records and grants a purchase.
func (s *Service) validateOnce(ctx context.Context, user string, p provider.Provider, req *paypb.ValidateRequest) (*paypb.ValidateReply, error) {
	pu, err := p.ValidatePurchase(ctx, req.Signed)
	if err != nil {
		return nil, s.providerError(err)
	}
	prod, ok := s.products[pu.ProductID]
	if !ok {
		return nil, s.reject("unknown_product", wire.Errorf(wire.CodeBadRequest, "unknown product %q", wire.Snippet(pu.ProductID)))
	}
	r, existed, err := s.st.Record(ctx, Record{
		Provider: p.Name(), TransactionID: pu.TransactionID, Product: pu.ProductID, Quantity: pu.Quantity,
		Currencies: times(prod.Currencies, pu.Quantity), Items: times(prod.Items, pu.Quantity),
		UserID: user, CreatedAt: s.now().UTC(),
	})
	if errors.Is(err, ErrOtherUser) {
		return nil, s.reject("other_user", wire.Errorf(wire.CodeConflict, "this purchase belongs to another player"))
	}
	if err != nil {
		return nil, s.storeError(err)
	}
	if existed {
		s.m.seenBefore.Inc()
		return &paypb.ValidateReply{Purchase: purchaseOf(r), SeenBefore: true}, nil
	}
	s.m.purchases.With(p.Name()).Inc()
	if s.afterRecord != nil {
		if err := s.afterRecord(); err != nil {
			return nil, s.storeError(err)
		}
	}
	// Deliver now (the worker retries what fails).
	if rows, err := s.st.Outbox(ctx, r.ID); err == nil {
		for _, o := range rows {
			if _, err := s.deliver(ctx, o); err != nil {
				s.log.Info("pay: grant not delivered yet; the worker retries", "purchase", r.ID, "err", err)
				s.Kick()
			}
		}
	}
	if cur, err := s.st.Purchase(ctx, r.ID); err == nil {
		r = cur
	}
	return &paypb.ValidateReply{Purchase: purchaseOf(r)}, nil
}

// providerError converts a provider's refusal to a wire error, counted.
func (s *Service) providerError(err error) error {
	switch {
	case errors.Is(err, provider.ErrBadSignature):
		return s.reject("bad_signature", wire.Errorf(wire.CodeBadRequest, "%v", err))
	case errors.Is(err, provider.ErrExpired):
		return s.reject("expired", wire.Errorf(wire.CodeBadRequest, "%v", err))
	case errors.Is(err, provider.ErrTooLarge):
		return s.reject("too_large", wire.Errorf(wire.CodeBadRequest, "%v", err))
	case errors.Is(err, provider.ErrMalformed):
		return s.reject("malformed", wire.Errorf(wire.CodeBadRequest, "%v", err))
	}
	s.log.Warn("pay: provider failed", "err", err)
	return wire.Errorf(wire.CodeUnavailable, "the store could not verify the purchase now; retry")
}

// reject counts a refusal by reason and returns err.
func (s *Service) reject(reason string, err error) error {
	s.m.rejections.With(reason).Inc()
	return err
}

// storeError converts a store failure to a wire error.
func (s *Service) storeError(err error) error {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return we
	case errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.CodeTimeout, "the store did not answer in time")
	case errors.Is(err, context.Canceled):
		return wire.Errorf(wire.CodeUnavailable, "canceled")
	}
	s.m.storeErrors.Inc()
	s.log.Warn("pay: store", "err", err)
	if stores.IsOutage(err) {
		return wire.Errorf(wire.CodeUnavailable, "%s store unavailable; retry with the same idempotency_key", Name)
	}
	return wire.Errorf(wire.CodeUnavailable, "the store failed; retry with the same idempotency_key")
}

// Notify handles a verified notification of provider: a refund or a
// revoke takes the goods back (once per purchase); others are recorded.
// Each notification id counts once.
func (s *Service) Notify(ctx context.Context, providerName string, n provider.Notification) (fresh bool, err error) {
	switch n.Type {
	case provider.TypeRefund, provider.TypeRevoke:
		fresh, r, err := s.st.Refund(ctx, providerName, n.ID, n.Type, n.Purchase.TransactionID, n.Purchase.ProductID, s.now().UTC())
		if err != nil {
			return false, err
		}
		if fresh && r.UserID != "" {
			s.Kick()
		}
		return fresh, nil
	default:
		return s.st.Notify(ctx, providerName, n.ID, n.Type, n.Purchase.TransactionID, s.now().UTC())
	}
}
