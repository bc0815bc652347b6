package pay

import (
	"fmt"
	"net"
	"time"

	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
)

// Defaults of Options.
const (
	// DefaultSchema is the Postgres schema the pay service owns.
	DefaultSchema = "pay"
	// DefaultHTTPAddr is where the webhooks are served.
	DefaultHTTPAddr = "127.0.0.1:8090"
	// DefaultKeyTTL is how long a client idempotency key is kept (Stripe
	// keeps them 24 h).
	DefaultKeyTTL = 24 * time.Hour
	// DefaultMaxPayload bounds a signed purchase and a webhook body.
	DefaultMaxPayload = 64 << 10
	// DefaultRetryInterval is how often the outbox worker looks for rows
	// still to deliver (new rows are delivered at once; this retries).
	DefaultRetryInterval = time.Second
	// DefaultGameService is the service the goods are granted through.
	DefaultGameService = "game"
	// DefaultTolerance is a webhook timestamp's tolerance (Stripe's).
	DefaultTolerance = 300 * time.Second
)

// Bounds of the options.
const (
	maxProducts   = 1000
	maxGoods      = 16
	maxNameLen    = 64
	maxPayloadCap = 1 << 20
)

// Product maps a store's product id to the goods of the game service one
// purchase gives (times its quantity).
type Product struct {
	// ID is the store's product id.
	ID string `yaml:"id"`
	// Currencies are amounts (> 0) by currency of the game service.
	Currencies map[string]int64 `yaml:"currencies"`
	// Items are counts (> 0) by item of the game service.
	Items map[string]int64 `yaml:"items"`
}

// TestProviderOptions configure the deterministic "test" provider.
type TestProviderOptions struct {
	// Enabled registers the provider. Never in production: anyone with
	// the secret mints purchases.
	Enabled bool `yaml:"enabled"`
	// Secret is the HMAC-SHA256 key of its purchases and webhooks.
	Secret string `yaml:"secret"`
}

// AppleOptions configure the App Store (StoreKit 2) provider
// (services/pay/apple); it is registered when Roots is set.
type AppleOptions struct {
	// Roots are PEM or DER files of the root certificates a signed
	// transaction's x5c chain must end in: Apple Root CA - G3 in
	// production.
	Roots []string `yaml:"roots"`
	// BundleID is the app's bundle id; a transaction of another app is
	// refused.
	BundleID string `yaml:"bundle_id"`
	// Environment is "Production", "Sandbox" or "" (either).
	Environment string `yaml:"environment"`
}

// Options are the pay service's own options (services.pay).
type Options struct {
	// PostgresSchema is the schema of the Postgres store.
	PostgresSchema string `yaml:"postgres_schema"`
	// HTTPAddr is where POST /webhooks/<provider> is served; "" serves
	// no webhooks.
	HTTPAddr string `yaml:"http_addr"`
	// Products map store product ids to goods.
	Products []Product `yaml:"products"`
	// TestProvider is the deterministic "test" provider.
	TestProvider TestProviderOptions `yaml:"test_provider"`
	// Apple is the App Store provider, off unless its roots are set.
	Apple AppleOptions `yaml:"apple"`
	// KeyTTL is how long client idempotency keys are kept (at least 24 h).
	KeyTTL time.Duration `yaml:"key_ttl"`
	// MaxPayload bounds a signed purchase and a webhook body, in bytes.
	MaxPayload int `yaml:"max_payload"`
	// RetryInterval is how often pending outbox rows are retried.
	RetryInterval time.Duration `yaml:"retry_interval"`
	// GameService is the service granting the goods.
	GameService string `yaml:"game_service"`
	// WebhookTolerance bounds the age of a webhook's timestamp.
	WebhookTolerance time.Duration `yaml:"webhook_tolerance"`
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		PostgresSchema:   DefaultSchema,
		HTTPAddr:         DefaultHTTPAddr,
		KeyTTL:           DefaultKeyTTL,
		MaxPayload:       DefaultMaxPayload,
		RetryInterval:    DefaultRetryInterval,
		GameService:      DefaultGameService,
		WebhookTolerance: DefaultTolerance,
	}
}

// Validate checks the options; errors name the field by its yaml key.
func (o Options) Validate() error {
	var errs config.Errors
	if !stores.SchemaName.MatchString(o.PostgresSchema) {
		errs.Addf("postgres_schema", "must match [a-z_][a-z0-9_]{0,62}, got %q", wire.Snippet(o.PostgresSchema))
	}
	if o.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
			errs.Addf("http_addr", "must be host:port, got %q", wire.Snippet(o.HTTPAddr))
		}
	}
	if len(o.Products) > maxProducts {
		errs.Addf("products", "at most %d products, got %d", maxProducts, len(o.Products))
	}
	seen := map[string]bool{}
	for i, p := range o.Products {
		f := fmt.Sprintf("products[%d]", i)
		if p.ID == "" || len(p.ID) > maxNameLen*2 {
			errs.Addf(f+".id", "must be 1 to %d bytes, got %q", maxNameLen*2, wire.Snippet(p.ID))
		}
		if seen[p.ID] {
			errs.Addf(f+".id", "product %q is configured twice", wire.Snippet(p.ID))
		}
		seen[p.ID] = true
		if len(p.Currencies)+len(p.Items) == 0 || len(p.Currencies) > maxGoods || len(p.Items) > maxGoods {
			errs.Addf(f, "must grant 1 to %d currencies and items", maxGoods)
		}
		for k, v := range p.Currencies {
			if k == "" || len(k) > maxNameLen || v <= 0 {
				errs.Addf(f+".currencies", "%q: a name and an amount > 0", wire.Snippet(k))
			}
		}
		for k, v := range p.Items {
			if k == "" || len(k) > maxNameLen || v <= 0 {
				errs.Addf(f+".items", "%q: a name and a count > 0", wire.Snippet(k))
			}
		}
	}
	if len(o.Apple.Roots) > 0 && o.Apple.BundleID == "" {
		errs.Addf("apple.bundle_id", "must be set with apple.roots")
	}
	if o.TestProvider.Enabled && len(o.TestProvider.Secret) < 16 {
		errs.Addf("test_provider.secret", "must be at least 16 bytes when the test provider is enabled")
	}
	errs.Add(config.Range("key_ttl", o.KeyTTL, 24*time.Hour, 90*24*time.Hour))
	errs.Add(config.Range("max_payload", o.MaxPayload, 256, maxPayloadCap))
	errs.Add(config.Range("retry_interval", o.RetryInterval, 10*time.Millisecond, time.Hour))
	errs.Add(config.Range("webhook_tolerance", o.WebhookTolerance, time.Second, time.Hour))
	if o.GameService == "" {
		errs.Addf("game_service", "is required")
	}
	return errs.Err()
}
