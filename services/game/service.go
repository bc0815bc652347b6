package game

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
)

// Request limits (beyond the catalogue's).
const (
	// maxChangeEntries bounds the currencies, items and stats of one
	// change request, each: a reward or a purchase touches a few.
	maxChangeEntries = 16
	// maxDisplayName bounds a display name, in characters (runes).
	maxDisplayName = 32
	// maxAvatarLen bounds an avatar (a URL or an asset id), in bytes.
	maxAvatarLen = 256
	// maxAuditReason bounds an operator's reason.
	maxAuditReason = 256
	// maxBanDuration bounds a ban: a hundred years is forever.
	maxBanDuration = 100 * 365 * 24 * time.Hour
	// defaultLedgerLimit and maxLedgerLimit bound game.ListLedger.
	defaultLedgerLimit = 50
	maxLedgerLimit     = 500
	// defaultAuditLimit and maxAuditLimit bound game.Audit.
	defaultAuditLimit = 50
	maxAuditLimit     = 500
	// defaultTop, maxTop, defaultAround and maxAround bound the
	// leaderboard reads: a screen of rows.
	defaultTop    = 10
	maxTop        = 100
	defaultAround = 5
	maxAround     = 50
)

// Deps are what a Service runs on.
type Deps struct {
	// Store keeps the players (NewPostgresStore, or NewMemoryStore for
	// `noon dev`).
	Store Store
	// Redis holds the leaderboards' ranks.
	Redis redis.UniversalClient
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Metrics receives the service's metrics; nil means none.
	Metrics metrics.Sink
	// Clock, when set, is the service's clock (seasons, bans, log times).
	Clock func() time.Time
}

// Service is the game service: its methods are the handlers of service
// Game (idl/game.thrift). It is stateless and safe for concurrent use:
// every instance serves every player, the Store serialising each player's
// changes.
type Service struct {
	opts       Options
	st         Store
	lb         *leaderboards
	log        *slog.Logger
	m          *serviceMetrics
	now        func() time.Time
	currencies map[string]CurrencyOptions
	items      map[string]ItemOptions
	boards     map[string]*board
	trusted    []string
	banCallers []string
}

// New returns the game service with opts over deps.
func New(opts Options, deps Deps) (*Service, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Redis == nil {
		return nil, errors.New("game: New needs a Store and a Redis client")
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
		opts: opts, st: deps.Store, log: log, m: newMetrics(sink), now: time.Now,
		currencies: map[string]CurrencyOptions{}, items: map[string]ItemOptions{}, boards: map[string]*board{},
		trusted: slices.Clone(opts.Trusted),
	}
	if deps.Clock != nil {
		s.now = deps.Clock
	}
	// login.Login asks whether a player is banned (its ban_check option).
	s.banCallers = append(slices.Clone(opts.Trusted), "login")
	for _, c := range opts.Currencies {
		if c.Max == 0 {
			c.Max = MaxBalance
		}
		s.currencies[c.Name] = c
	}
	for _, it := range opts.Items {
		switch {
		case !it.Stackable:
			it.MaxCount = 1
		case it.MaxCount == 0:
			it.MaxCount = MaxItemCount
		}
		s.items[it.ID] = it
	}
	for _, b := range opts.Boards {
		s.boards[b.ID] = newBoard(b)
	}
	s.lb = &leaderboards{s: s, rdb: deps.Redis, pfx: opts.RedisPrefix}
	return s, nil
}

// Options returns the options the service runs with.
func (s *Service) Options() Options { return s.opts }

// storeCtx bounds a store call by StoreTimeout within ctx.
func (s *Service) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.StoreTimeout)
}

// storeError converts a store failure of method into a wire error,
// logging and counting what is not the caller's doing.
func (s *Service) storeError(method string, err error) error {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return we
	case errors.Is(err, ErrKeyReused):
		return wire.Errorf(wire.CodeConflict, "%s", trimPrefix(err))
	case errors.Is(err, ErrInsufficient), errors.Is(err, ErrNotOwned), errors.Is(err, ErrLimit):
		return wire.Errorf(wire.CodeConflict, "%s; nothing changed", trimPrefix(err))
	case errors.Is(err, ErrInvalid):
		return wire.Errorf(wire.CodeBadRequest, "%s", trimPrefix(err))
	case errors.Is(err, context.DeadlineExceeded):
		s.m.storeErrors.With(method).Inc()
		return wire.Errorf(wire.CodeTimeout, "%s: the store did not answer in time", method)
	case errors.Is(err, context.Canceled):
		return wire.Errorf(wire.CodeUnavailable, "%s: canceled", method)
	}
	s.m.storeErrors.With(method).Inc()
	s.log.Warn("game: store", "method", method, "err", err)
	if stores.IsOutage(err) {
		return wire.Errorf(wire.CodeUnavailable, "%s store unavailable; nothing changed unless a retry with the same key says so", Name)
	}
	return wire.Errorf(wire.CodeUnavailable, "%s: the store failed; nothing changed unless a retry with the same key says so", method)
}

// trimPrefix is err's text without the package's "game: ".
func trimPrefix(err error) string { return strings.TrimPrefix(err.Error(), "game: ") }

// checkUserID checks a user id a request names.
func checkUserID(id string) error {
	if !validUserID(id) {
		return wire.Errorf(wire.CodeBadRequest, "user_id must be 1 to %d printable ASCII bytes, got %q", MaxUserIDLen, wire.Snippet(id))
	}
	return nil
}

// checkKey checks an idempotency key.
func checkKey(key string) error {
	if key == "" || len(key) > MaxKeyLen || !utf8.ValidString(key) {
		return wire.Errorf(wire.CodeBadRequest, "idempotency_key is required: 1 to %d bytes of UTF-8", MaxKeyLen)
	}
	return nil
}

// checkText checks a short free text (a reason, a reference).
func checkText(field, v string, maxLen int, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return wire.Errorf(wire.CodeBadRequest, "%s is required", field)
	}
	if len(v) > maxLen || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
		return wire.Errorf(wire.CodeBadRequest, "%s must be at most %d bytes of printable UTF-8", field, maxLen)
	}
	return nil
}

// deltas turns a request's currencies or items into the Change's deltas
// (sign: +1 to give, -1 to take), checking names, amounts and the
// catalogue.
func (s *Service) deltas(field string, m map[string]int64, sign int64) ([]Delta, error) {
	if len(m) > maxChangeEntries {
		return nil, wire.Errorf(wire.CodeBadRequest, "%s: at most %d entries, got %d", field, maxChangeEntries, len(m))
	}
	out := make([]Delta, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		n := m[name]
		var limit int64
		switch field {
		case "currencies":
			c, ok := s.currencies[name]
			if !ok {
				return nil, wire.Errorf(wire.CodeNotFound, "no currency %q", wire.Snippet(name))
			}
			if n <= 0 || n > MaxBalance {
				return nil, wire.Errorf(wire.CodeBadRequest, "currencies[%s]: an amount in [1, %d], got %d", name, int64(MaxBalance), n)
			}
			limit = c.Max
		default:
			it, ok := s.items[name]
			if !ok {
				return nil, wire.Errorf(wire.CodeNotFound, "no item %q", wire.Snippet(name))
			}
			if n <= 0 || n > MaxItemCount {
				return nil, wire.Errorf(wire.CodeBadRequest, "items[%s]: a count in [1, %d], got %d", name, MaxItemCount, n)
			}
			limit = it.MaxCount
		}
		out = append(out, Delta{Name: name, Delta: sign * n, Max: limit})
	}
	return out, nil
}

// statDeltas checks a request's stat increments.
func statDeltas(m map[string]int64) ([]Delta, error) {
	if len(m) > maxChangeEntries {
		return nil, wire.Errorf(wire.CodeBadRequest, "stats: at most %d entries, got %d", maxChangeEntries, len(m))
	}
	out := make([]Delta, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if !validName(name) {
			return nil, wire.Errorf(wire.CodeBadRequest, "stat %q: names match [a-z0-9][a-z0-9_-]{0,31}", wire.Snippet(name))
		}
		if m[name] == 0 {
			return nil, wire.Errorf(wire.CodeBadRequest, "stats[%s]: an increment must not be 0", name)
		}
		out = append(out, Delta{Name: name, Delta: m[name]})
	}
	return out, nil
}

// grantChange checks a grant and makes its Change.
func (s *Service) grantChange(req *gamepb.GrantRequest, kind string) (Change, error) {
	if req == nil {
		return Change{}, wire.Errorf(wire.CodeBadRequest, "no grant")
	}
	if err := s.changeHeader(req.UserID, req.Reason, req.Reference, req.IdempotencyKey); err != nil {
		return Change{}, err
	}
	cur, err := s.deltas("currencies", req.Currencies, 1)
	if err != nil {
		return Change{}, err
	}
	items, err := s.deltas("items", req.Items, 1)
	if err != nil {
		return Change{}, err
	}
	stats, err := statDeltas(req.Stats)
	if err != nil {
		return Change{}, err
	}
	if len(cur)+len(items)+len(stats) == 0 {
		return Change{}, wire.Errorf(wire.CodeBadRequest, "nothing to grant: set currencies, items or stats")
	}
	return Change{Kind: kind, Key: req.IdempotencyKey, Reason: req.Reason, Reference: req.Reference,
		Currencies: cur, Items: items, Stats: stats, Create: true, At: s.now()}, nil
}

// spendChange checks a spend and makes its Change.
func (s *Service) spendChange(req *gamepb.SpendRequest, kind string) (Change, error) {
	if req == nil {
		return Change{}, wire.Errorf(wire.CodeBadRequest, "no spend")
	}
	if err := s.changeHeader(req.UserID, req.Reason, req.Reference, req.IdempotencyKey); err != nil {
		return Change{}, err
	}
	cur, err := s.deltas("currencies", req.Currencies, -1)
	if err != nil {
		return Change{}, err
	}
	items, err := s.deltas("items", req.Items, -1)
	if err != nil {
		return Change{}, err
	}
	if len(cur)+len(items) == 0 {
		return Change{}, wire.Errorf(wire.CodeBadRequest, "nothing to take: set currencies or items")
	}
	return Change{Kind: kind, Key: req.IdempotencyKey, Reason: req.Reason, Reference: req.Reference,
		Currencies: cur, Items: items, At: s.now()}, nil
}

// changeHeader checks what every change request carries.
func (s *Service) changeHeader(user, reason, reference, key string) error {
	if err := checkUserID(user); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if err := checkText("reason", reason, maxReasonLen, false); err != nil {
		return err
	}
	return checkText("reference", reference, maxReferenceLen, false)
}

// apply runs c for user and answers its reply.
func (s *Service) apply(ctx context.Context, method, user string, c Change) (*gamepb.ChangeReply, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	r, err := s.st.Apply(ctx, user, c)
	if errors.Is(err, ErrNotFound) {
		if c.Kind == KindConsume {
			return nil, wire.Errorf(wire.CodeConflict, "you have no %s; nothing changed", c.Items[0].Name)
		}
		return nil, wire.Errorf(wire.CodeNotFound, "no player %q", wire.Snippet(user))
	}
	if err != nil {
		return nil, s.storeError(method, err)
	}
	if r.Replayed {
		s.m.replays.With(c.Kind).Inc()
	} else {
		s.m.changes.With(c.Kind).Inc()
	}
	return &gamepb.ChangeReply{Seq: r.Seq, Balances: orEmpty(r.Balances), Items: orEmpty(r.Items), Stats: orEmpty(r.Stats), Replayed: r.Replayed}, nil
}

// orEmpty returns m, or an empty map for nil (Thrift encodes both alike;
// callers in Go see a map).
func orEmpty(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// checkMetadata checks a metadata object: at most MaxMetadataBytes, a JSON
// object nested at most MaxMetadataDepth deep.
func (s *Service) checkMetadata(field, v string) error {
	if len(v) > s.opts.MaxMetadataBytes {
		return wire.Errorf(wire.CodeBadRequest, "%s: at most %d bytes, got %d", field, s.opts.MaxMetadataBytes, len(v))
	}
	if err := jsonObject(v, s.opts.MaxMetadataDepth); err != nil {
		return wire.Errorf(wire.CodeBadRequest, "%s: %v", field, err)
	}
	return nil
}

// jsonObject checks that v is one JSON object nested at most depth deep.
func jsonObject(v string, depth int) error {
	if !json.Valid([]byte(v)) {
		return errors.New("not valid JSON")
	}
	dec := json.NewDecoder(strings.NewReader(v))
	level := 0
	for first := true; ; first = false {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not valid JSON: %v", err)
		}
		if first && tok != json.Delim('{') {
			return errors.New("must be a JSON object")
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if level++; level > depth {
				return fmt.Errorf("nested deeper than %d", depth)
			}
		case json.Delim('}'), json.Delim(']'):
			level--
		}
	}
}

// checkDisplayName checks a display name: printable, at most
// maxDisplayName characters, no leading or trailing space ("" clears it).
func checkDisplayName(v string) error {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxDisplayName || strings.TrimSpace(v) != v ||
		strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return wire.Errorf(wire.CodeBadRequest, "display_name must be at most %d printable characters without leading or trailing space", maxDisplayName)
	}
	return nil
}

// profileOf returns p as a reply shows it; owner: with the owner-only
// fields and stats.
func profileOf(p Profile, stats map[string]int64, owner bool) *gamepb.Profile {
	out := &gamepb.Profile{UserID: p.UserID, DisplayName: p.DisplayName, Avatar: p.Avatar, Metadata: p.Metadata,
		CreatedUnixMs: unixMs(p.Created), UpdatedUnixMs: unixMs(p.Updated)}
	if owner {
		out.PrivateMetadata = p.PrivateMetadata
		out.Stats = orEmpty(stats)
	}
	return out
}

// unixMs is t in Unix milliseconds, 0 for the zero time.
func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// banOf is b as BanStatus answers it at now.
func banOf(b Ban, now time.Time) *gamepb.BanStatusReply {
	if !b.Active(now) {
		return &gamepb.BanStatusReply{}
	}
	return &gamepb.BanStatusReply{Banned: true, UntilUnixMs: b.Until.UnixMilli(), Reason: b.Reason}
}

// inventoryOf lists counts with the catalogue's fields, by item id.
func (s *Service) inventoryOf(counts map[string]int64) []*gamepb.Item {
	out := make([]*gamepb.Item, 0, len(counts))
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		it := s.items[id] // an item no longer in the catalogue keeps its count
		out = append(out, &gamepb.Item{Item: id, Count: counts[id], Stackable: it.Stackable, Consumable: it.Consumable, Properties: it.Properties})
	}
	return out
}

// walletOf returns balances with every configured currency.
func (s *Service) walletOf(balances map[string]int64) map[string]int64 {
	out := maps.Clone(balances)
	if out == nil {
		out = map[string]int64{}
	}
	for name := range s.currencies {
		if _, ok := out[name]; !ok {
			out[name] = 0
		}
	}
	return out
}
