package game

import (
	"fmt"
	"strings"
	"time"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
)

// Defaults of Options.
const (
	// DefaultSchema is the Postgres schema the game service owns.
	DefaultSchema = "game"
	// DefaultRedisPrefix namespaces the leaderboards' keys; each board's
	// season follows it in a hash tag ("noon:game:lb:{wins:all}").
	DefaultRedisPrefix = "noon:game:"
	// DefaultMaxMetadataBytes bounds a profile's metadata (each of the
	// public and the private JSON object): a few settings and
	// achievements, not a save game.
	DefaultMaxMetadataBytes = 4096
	// DefaultMaxMetadataDepth bounds the nesting of a metadata object: deep
	// enough for {"a":{"b":[1]}}, shallow enough that no parser recurses
	// far.
	DefaultMaxMetadataDepth = 8
	// DefaultStoreTimeout bounds one store call: longer than any healthy
	// transaction, short enough that a stuck database shows as errors
	// quickly.
	DefaultStoreTimeout = 5 * time.Second
)

// DefaultTrusted are the services that may call the server paths
// (game.Grant, game.Spend, game.SubmitScoreFor, game.BanStatus): rooms
// (game rules' rewards), the matchmaker and payments. Admins always may.
var DefaultTrusted = []string{"room", "match", "pay"}

// Bounds checked by Validate, and limits of requests.
const (
	// maxNameLen bounds a currency, item, stat or board name: they are map
	// keys on the wire, rows in Postgres and (boards) Redis key parts.
	maxNameLen = 32
	// maxCurrencies, maxItems and maxBoards bound the configured catalogue:
	// every instance holds it, and GetWallet lists every currency.
	maxCurrencies = 32
	maxItems      = 10_000
	maxBoards     = 256
	// maxProperties and maxPropertyLen bound an item's properties.
	maxProperties  = 32
	maxPropertyLen = 256
	// MaxBalance caps any balance (and a currency's max): 10^15 keeps every
	// sum of two balances far inside int64.
	MaxBalance = 1_000_000_000_000_000
	// MaxItemCount caps any item count (and an item's max_count).
	MaxItemCount = 1_000_000_000
	// MaxScore caps a leaderboard score's magnitude: 2^53 - 1, the largest
	// integer a Redis sorted-set score (a double) holds exactly.
	MaxScore = 1<<53 - 1
	// maxMetadataBytesLimit bounds max_metadata_bytes: a profile is read
	// whole by GetProfile.
	maxMetadataBytesLimit = 64 << 10
	// maxMetadataDepthLimit bounds max_metadata_depth.
	maxMetadataDepthLimit = 32
	// maxTrusted bounds the trusted option.
	maxTrusted = 16
)

// Options configures the game service (services.game in the config files,
// beside the instance's services.Options).
type Options struct {
	// PostgresSchema is the schema of the Postgres store and its
	// migrations: [a-z_][a-z0-9_]*, at most 63 bytes.
	PostgresSchema string `yaml:"postgres_schema"`
	// RedisPrefix namespaces the leaderboards' keys; it may not contain '{'
	// or '}' (each board's season is a hash tag after it).
	RedisPrefix string `yaml:"redis_prefix"`
	// Trusted are the services that may call the server paths (over TLS:
	// the holders of a service:<name> certificate of one of them; admins
	// may too).
	Trusted []string `yaml:"trusted"`
	// Currencies are the wallet's currencies.
	Currencies []CurrencyOptions `yaml:"currencies"`
	// Items are the item catalogue.
	Items []ItemOptions `yaml:"items"`
	// Boards are the leaderboards.
	Boards []BoardOptions `yaml:"boards"`
	// MaxMetadataBytes bounds each of a profile's metadata objects, in
	// bytes.
	MaxMetadataBytes int `yaml:"max_metadata_bytes"`
	// MaxMetadataDepth bounds their nesting (objects and arrays).
	MaxMetadataDepth int `yaml:"max_metadata_depth"`
	// StoreTimeout bounds one store call.
	StoreTimeout time.Duration `yaml:"store_timeout"`
}

// CurrencyOptions is one currency of the wallet.
type CurrencyOptions struct {
	// Name is the currency's name: [a-z0-9][a-z0-9_-]*, at most 32 bytes.
	Name string `yaml:"name"`
	// Max caps a balance of it; 0 means MaxBalance. A grant past it is
	// refused whole.
	Max int64 `yaml:"max"`
}

// ItemOptions is one item of the catalogue.
type ItemOptions struct {
	// ID is the item's id: [a-z0-9][a-z0-9_-]*, at most 32 bytes.
	ID string `yaml:"id"`
	// Stackable items are held as a count up to MaxCount; a player holds at
	// most one of an item that is not.
	Stackable bool `yaml:"stackable"`
	// Consumable items may be used up by their owner (game.ConsumeItem).
	Consumable bool `yaml:"consumable"`
	// MaxCount caps a stackable item's count; 0 means MaxItemCount.
	MaxCount int64 `yaml:"max_count"`
	// Properties are the item's static properties, returned with the
	// inventory (damage, rarity, an asset id).
	Properties map[string]string `yaml:"properties"`
}

// BoardOptions is one leaderboard.
type BoardOptions struct {
	// ID is the board's id: [a-z0-9][a-z0-9_-]*, at most 32 bytes.
	ID string `yaml:"id"`
	// Order is "desc" (default: the highest score first) or "asc".
	Order string `yaml:"order"`
	// Operator is how a submitted score combines with the player's:
	// "best" (default: keep the better by Order), "set" (replace) or
	// "incr" (add).
	Operator string `yaml:"operator"`
	// Reset is when the board starts a new season, in UTC: "never"
	// (default), "daily", "weekly" (Mondays) or "monthly".
	Reset string `yaml:"reset"`
	// ClientSubmit lets players submit their own scores (game.SubmitScore);
	// otherwise only server paths may (game.SubmitScoreFor).
	ClientSubmit bool `yaml:"client_submit"`
}

// NewOptions returns the defaults: the currency "coins" (what the sample
// configs' room rewards grant), no items, and the board "wins" (scores
// added up, the most first, never reset).
func NewOptions() Options {
	return Options{
		PostgresSchema:   DefaultSchema,
		RedisPrefix:      DefaultRedisPrefix,
		Trusted:          append([]string(nil), DefaultTrusted...),
		Currencies:       []CurrencyOptions{{Name: "coins"}},
		Boards:           []BoardOptions{{ID: "wins", Order: gamepb.ORDER_DESC, Operator: gamepb.OPERATOR_INCR, Reset: gamepb.RESET_NEVER}},
		MaxMetadataBytes: DefaultMaxMetadataBytes,
		MaxMetadataDepth: DefaultMaxMetadataDepth,
		StoreTimeout:     DefaultStoreTimeout,
	}
}

// withDefaults returns b with its zero values replaced by the defaults.
func (b BoardOptions) withDefaults() BoardOptions {
	if b.Order == "" {
		b.Order = gamepb.ORDER_DESC
	}
	if b.Operator == "" {
		b.Operator = gamepb.OPERATOR_BEST
	}
	if b.Reset == "" {
		b.Reset = gamepb.RESET_NEVER
	}
	return b
}

// Validate checks the options; errors name the field by its yaml path
// ("items[2].max_count").
func (o Options) Validate() error {
	var errs config.Errors
	if !stores.SchemaName.MatchString(o.PostgresSchema) {
		errs.Addf("postgres_schema", "must match [a-z_][a-z0-9_]{0,62}, got %q", wire.Snippet(o.PostgresSchema))
	}
	if len(o.RedisPrefix) > 64 || strings.ContainsAny(o.RedisPrefix, "{} \t\r\n") {
		errs.Addf("redis_prefix", "at most 64 bytes without '{', '}' or spaces, got %q", wire.Snippet(o.RedisPrefix))
	}
	if len(o.Trusted) > maxTrusted {
		errs.Addf("trusted", "at most %d services, got %d", maxTrusted, len(o.Trusted))
	}
	for i, n := range o.Trusted {
		if err := wire.ValidateName(n); err != nil {
			errs.Addf(fmt.Sprintf("trusted[%d]", i), "%v", err)
		}
	}
	if len(o.Currencies) > maxCurrencies {
		errs.Addf("currencies", "at most %d currencies, got %d", maxCurrencies, len(o.Currencies))
	}
	seen := map[string]bool{}
	for i, c := range o.Currencies {
		f := fmt.Sprintf("currencies[%d]", i)
		if !validName(c.Name) {
			errs.Addf(f+".name", "must match [a-z0-9][a-z0-9_-]{0,31}, got %q", wire.Snippet(c.Name))
		}
		if seen[c.Name] {
			errs.Addf(f+".name", "currency %q is configured twice", wire.Snippet(c.Name))
		}
		seen[c.Name] = true
		if c.Max < 0 || c.Max > MaxBalance {
			errs.Addf(f+".max", "must be in [0, %d] (0: %d), got %d", MaxBalance, MaxBalance, c.Max)
		}
	}
	if len(o.Items) > maxItems {
		errs.Addf("items", "at most %d items, got %d", maxItems, len(o.Items))
	}
	seen = map[string]bool{}
	for i, it := range o.Items {
		f := fmt.Sprintf("items[%d]", i)
		if !validName(it.ID) {
			errs.Addf(f+".id", "must match [a-z0-9][a-z0-9_-]{0,31}, got %q", wire.Snippet(it.ID))
		}
		if seen[it.ID] {
			errs.Addf(f+".id", "item %q is configured twice", wire.Snippet(it.ID))
		}
		seen[it.ID] = true
		if it.MaxCount < 0 || it.MaxCount > MaxItemCount {
			errs.Addf(f+".max_count", "must be in [0, %d] (0: %d), got %d", MaxItemCount, MaxItemCount, it.MaxCount)
		}
		if !it.Stackable && it.MaxCount > 1 {
			errs.Addf(f+".max_count", "an item that is not stackable is held once; max_count must be 0 or 1, got %d", it.MaxCount)
		}
		if len(it.Properties) > maxProperties {
			errs.Addf(f+".properties", "at most %d properties, got %d", maxProperties, len(it.Properties))
		}
		for k, v := range it.Properties {
			if k == "" || len(k) > maxNameLen*2 || len(v) > maxPropertyLen {
				errs.Addf(f+".properties", "property %q: names are 1 to %d bytes, values at most %d", wire.Snippet(k), maxNameLen*2, maxPropertyLen)
			}
		}
	}
	if len(o.Boards) > maxBoards {
		errs.Addf("boards", "at most %d boards, got %d", maxBoards, len(o.Boards))
	}
	seen = map[string]bool{}
	for i, b := range o.Boards {
		f := fmt.Sprintf("boards[%d]", i)
		if !validName(b.ID) {
			errs.Addf(f+".id", "must match [a-z0-9][a-z0-9_-]{0,31}, got %q", wire.Snippet(b.ID))
		}
		if seen[b.ID] {
			errs.Addf(f+".id", "board %q is configured twice", wire.Snippet(b.ID))
		}
		seen[b.ID] = true
		d := b.withDefaults()
		if d.Order != gamepb.ORDER_ASC && d.Order != gamepb.ORDER_DESC {
			errs.Addf(f+".order", "must be %q or %q, got %q", gamepb.ORDER_DESC, gamepb.ORDER_ASC, wire.Snippet(b.Order))
		}
		switch d.Operator {
		case gamepb.OPERATOR_BEST, gamepb.OPERATOR_SET, gamepb.OPERATOR_INCR:
		default:
			errs.Addf(f+".operator", "must be best, set or incr, got %q", wire.Snippet(b.Operator))
		}
		switch d.Reset {
		case gamepb.RESET_NEVER, gamepb.RESET_DAILY, gamepb.RESET_WEEKLY, gamepb.RESET_MONTHLY:
		default:
			errs.Addf(f+".reset", "must be never, daily, weekly or monthly, got %q", wire.Snippet(b.Reset))
		}
	}
	if o.MaxMetadataBytes < 2 || o.MaxMetadataBytes > maxMetadataBytesLimit {
		errs.Addf("max_metadata_bytes", "must be in [2, %d], got %d", maxMetadataBytesLimit, o.MaxMetadataBytes)
	}
	if o.MaxMetadataDepth < 1 || o.MaxMetadataDepth > maxMetadataDepthLimit {
		errs.Addf("max_metadata_depth", "must be in [1, %d], got %d", maxMetadataDepthLimit, o.MaxMetadataDepth)
	}
	if o.StoreTimeout < 10*time.Millisecond || o.StoreTimeout > 10*time.Minute {
		errs.Addf("store_timeout", "must be in [10ms, 10m], got %v", o.StoreTimeout)
	}
	return errs.Err()
}

// validName reports whether s may name a currency, an item, a stat or a
// board: [a-z0-9][a-z0-9_-]*, at most maxNameLen bytes. It never contains
// '{', '}', ':' or a space, so it is a safe Redis key part and log field.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
