package match

import (
	"fmt"
	"math"
	"strings"
	"time"

	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/wire"
)

// Defaults of Options.
const (
	// DefaultRedisPrefix namespaces the matchmaker's keys; each queue's keys
	// then carry the queue's hash tag ("noon:match:{duel}:Servers").
	DefaultRedisPrefix = "noon:match:"
	// DefaultTickInterval: each instance runs every queue's tick (timeouts,
	// min-players-after-wait, merges, disconnections, stale claims) five
	// times a second; an idle tick is a dozen O(1) Redis reads in one
	// script, and 200 ms is well under what a player notices.
	DefaultTickInterval = 200 * time.Millisecond
	// DefaultClaimTTL is how long a placement claim keeps other instances
	// off a ready session: well past PlaceTimeout, so a live claimer always
	// finishes first, and short enough that a dead claimer's sessions wait
	// ten seconds at most.
	DefaultClaimTTL = 10 * time.Second
	// DefaultPlaceTimeout bounds one room.CreateMatched call.
	DefaultPlaceTimeout = 3 * time.Second
	// DefaultTicketRetention is how long an ended ticket stays readable by
	// match.Status: long enough for a client that was offline to poll.
	DefaultTicketRetention = 10 * time.Minute
	// DefaultBrokerGrace is how long the tickets held by connections of a
	// broker that left yellow wait for their players to resume elsewhere
	// before they are cancelled ("disconnected"): a broker's own resume
	// grace is of this order.
	DefaultBrokerGrace = 30 * time.Second
	// DefaultScaleOutAfter: ready sessions that waited this long for
	// capacity raise the scale-out signal. One second is five ticks: a
	// session that waits that long is not waiting for a free room but for
	// an instance.
	DefaultScaleOutAfter = time.Second
	// DefaultPlaceWorkers is how many placements one instance runs at
	// once: each is one room.CreateMatched call and two scripts.
	DefaultPlaceWorkers = 8
	// DefaultTimeLimit is a ticket's time limit when its queue sets none.
	DefaultTimeLimit = 10 * time.Minute
	// DefaultServerIdentity is the service identity dedicated game servers
	// call match.RegisterServer and friends with.
	DefaultServerIdentity = "gameserver"
)

// Bounds checked by Validate, and limits of client requests.
const (
	// maxQueues bounds the configured queues: every instance ticks each.
	maxQueues = 64
	// maxQueueNameLen bounds a queue name: it is in every key, ticket id
	// and metric label of the queue.
	maxQueueNameLen = 32
	// maxPlayers bounds a queue's max_players: the members of a session are
	// read and rewritten in one script; 256 covers a battle royale.
	maxPlayers = 256
	// maxEqualProps bounds a queue's equality properties.
	maxEqualProps = 8
	// maxGameLen is the room service's bound on a game name.
	maxGameLen = 32
	// maxStrings and maxNumbers bound a ticket's properties; maxPropKey and
	// maxPropValue their sizes: matchmaking properties are a region, a
	// mode, a skill, not documents.
	maxStrings   = 16
	maxNumbers   = 16
	maxPropKey   = 64
	maxPropValue = 256
	// maxPrefixLen bounds redis_prefix.
	maxPrefixLen = 64
	// maxServerIDLen and maxAddrLen bound a dedicated server's id and
	// address.
	maxServerIDLen = 64
	maxAddrLen     = 255
	// maxTicketIDLen bounds a ticket id a client sends: a queue name, a dot
	// and 16 characters.
	maxTicketIDLen = maxQueueNameLen + 1 + idLen
	// defaultTicketsLimit and maxTicketsLimit bound match.Tickets.
	defaultTicketsLimit = 100
	maxTicketsLimit     = 1000
)

// Options configures the match service (services.match in the config
// files, beside the instance's services.Options).
type Options struct {
	// RedisPrefix namespaces the keys; it may not contain '{' or '}' (each
	// queue's keys carry the queue's hash tag after it).
	RedisPrefix string `yaml:"redis_prefix"`
	// Queues are the queues players may start tickets in.
	Queues []QueueOptions `yaml:"queues"`
	// ServerIdentities are the service identities (service:<name>)
	// allowed to call RegisterServer, ServerAvailable and LeaveServer.
	ServerIdentities []string `yaml:"server_identities"`
	// TickInterval is how often each instance runs each queue's tick.
	TickInterval time.Duration `yaml:"tick_interval"`
	// ClaimTTL is how long a placement claim holds a ready session.
	ClaimTTL time.Duration `yaml:"claim_ttl"`
	// PlaceTimeout bounds one room.CreateMatched call; at most half of
	// ClaimTTL.
	PlaceTimeout time.Duration `yaml:"place_timeout"`
	// TicketRetention is how long an ended ticket answers match.Status.
	TicketRetention time.Duration `yaml:"ticket_retention"`
	// BrokerGrace is how long tickets held on a broker that left yellow
	// wait before they are cancelled as disconnected.
	BrokerGrace time.Duration `yaml:"broker_grace"`
	// ScaleOutAfter is how long ready sessions wait for capacity before
	// the scale-out signal rises.
	ScaleOutAfter time.Duration `yaml:"scale_out_after"`
	// PlaceWorkers is how many placements run at once on an instance.
	PlaceWorkers int `yaml:"place_workers"`
}

// QueueOptions configures one queue (an item of services.match.queues).
// Zero values take the defaults documented on each field.
type QueueOptions struct {
	// Name is the queue's name, [a-z0-9][a-z0-9_-]*, at most 32 bytes:
	// clients name it in match.Start, and it is the hash tag of its keys.
	Name string `yaml:"name"`
	// Placement is "room" (default: a room on a room instance with free
	// capacity) or "server" (a dedicated server from ServersAvailable).
	Placement string `yaml:"placement"`
	// Game is the room's game (placement "room"); "" is the room service's
	// default.
	Game string `yaml:"game"`
	// MinPlayers is the fewest players a session may start with once it is
	// AcceptMinAfter old; 0 means MaxPlayers.
	MinPlayers int `yaml:"min_players"`
	// MaxPlayers is a full session: it is ready at once.
	MaxPlayers int `yaml:"max_players"`
	// Equal are the string properties whose values make the bucket: only
	// tickets with equal values are matched together. A ticket must set
	// each.
	Equal []string `yaml:"equal"`
	// Range, when set, matches the numeric property it names (a skill)
	// within a window that widens with a session's age.
	Range *RangeOptions `yaml:"range"`
	// AcceptMinAfter is the age at which a session of at least MinPlayers
	// (and fewer than MaxPlayers) is ready; 0 means at once.
	AcceptMinAfter time.Duration `yaml:"accept_min_after"`
	// TimeLimit is how long a ticket searches before it times out; 0 means
	// 10m.
	TimeLimit time.Duration `yaml:"time_limit"`
}

// RangeOptions is a queue's range property: a session founded by a ticket
// of value v accepts tickets within v ± min(Max, Initial +
// WidenPerSecond × its age in seconds).
type RangeOptions struct {
	// Property is the numeric property matched (a ticket must set it).
	Property string `yaml:"property"`
	// Initial is the window's half-width when the session is new.
	Initial float64 `yaml:"initial"`
	// WidenPerSecond is how much the half-width grows per second of age.
	WidenPerSecond float64 `yaml:"widen_per_second"`
	// Max caps the half-width.
	Max float64 `yaml:"max"`
}

// NewOptions returns the defaults: one queue, race31, for the sample game
// (two to four players, two accepted after five seconds).
func NewOptions() Options {
	return Options{
		RedisPrefix: DefaultRedisPrefix,
		Queues: []QueueOptions{{
			Name: "race31", Placement: matchpb.PLACEMENT_ROOM, Game: "race31",
			MinPlayers: 2, MaxPlayers: 4, AcceptMinAfter: 5 * time.Second, TimeLimit: DefaultTimeLimit,
		}},
		ServerIdentities: []string{DefaultServerIdentity},
		TickInterval:     DefaultTickInterval,
		ClaimTTL:         DefaultClaimTTL,
		PlaceTimeout:     DefaultPlaceTimeout,
		TicketRetention:  DefaultTicketRetention,
		BrokerGrace:      DefaultBrokerGrace,
		ScaleOutAfter:    DefaultScaleOutAfter,
		PlaceWorkers:     DefaultPlaceWorkers,
	}
}

// withDefaults returns q with its zero values replaced by the defaults.
func (q QueueOptions) withDefaults() QueueOptions {
	if q.Placement == "" {
		q.Placement = matchpb.PLACEMENT_ROOM
	}
	if q.MinPlayers == 0 {
		q.MinPlayers = q.MaxPlayers
	}
	if q.TimeLimit == 0 {
		q.TimeLimit = DefaultTimeLimit
	}
	return q
}

// Validate checks the options; errors name the field by its yaml path
// ("queues[1].max_players").
func (o Options) Validate() error {
	var errs config.Errors
	durIn := func(field string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			errs.Addf(field, "must be in [%v, %v], got %v", lo, hi, v)
		}
	}
	if len(o.RedisPrefix) > maxPrefixLen {
		errs.Addf("redis_prefix", "at most %d bytes, got %d", maxPrefixLen, len(o.RedisPrefix))
	}
	if strings.ContainsAny(o.RedisPrefix, "{}") {
		errs.Addf("redis_prefix", "may not contain '{' or '}' (each queue's keys carry its hash tag), got %q", wire.Snippet(o.RedisPrefix))
	}
	if len(o.Queues) > maxQueues {
		errs.Addf("queues", "at most %d queues, got %d", maxQueues, len(o.Queues))
	}
	seen := map[string]bool{}
	for i, q := range o.Queues {
		errs.Add(config.Nested(fmt.Sprintf("queues[%d]", i), q.Validate()))
		if seen[q.Name] {
			errs.Addf(fmt.Sprintf("queues[%d].name", i), "queue %q is configured twice", wire.Snippet(q.Name))
		}
		seen[q.Name] = true
	}
	for i, id := range o.ServerIdentities {
		if err := wire.ValidateName(id); err != nil {
			errs.Addf(fmt.Sprintf("server_identities[%d]", i), "a service name: %v", err)
		}
	}
	durIn("tick_interval", o.TickInterval, 10*time.Millisecond, 10*time.Second)
	durIn("claim_ttl", o.ClaimTTL, time.Second, 10*time.Minute)
	durIn("place_timeout", o.PlaceTimeout, 10*time.Millisecond, max(o.ClaimTTL/2, 10*time.Millisecond))
	durIn("ticket_retention", o.TicketRetention, time.Second, 24*time.Hour)
	durIn("broker_grace", o.BrokerGrace, 0, time.Hour)
	durIn("scale_out_after", o.ScaleOutAfter, 0, time.Hour)
	if o.PlaceWorkers < 1 || o.PlaceWorkers > 256 {
		errs.Addf("place_workers", "must be in [1, 256], got %d", o.PlaceWorkers)
	}
	return errs.Err()
}

// Validate checks one queue; the zero values that have defaults pass.
func (q QueueOptions) Validate() error {
	var errs config.Errors
	if !validQueueName(q.Name) {
		errs.Addf("name", "must match [a-z0-9][a-z0-9_-]{0,%d}, got %q", maxQueueNameLen-1, wire.Snippet(q.Name))
	}
	d := q.withDefaults()
	if d.Placement != matchpb.PLACEMENT_ROOM && d.Placement != matchpb.PLACEMENT_SERVER {
		errs.Addf("placement", "must be %q or %q, got %q", matchpb.PLACEMENT_ROOM, matchpb.PLACEMENT_SERVER, wire.Snippet(q.Placement))
	}
	if len(q.Game) > maxGameLen {
		errs.Addf("game", "at most %d bytes, got %d", maxGameLen, len(q.Game))
	}
	if q.MaxPlayers < 1 || q.MaxPlayers > maxPlayers {
		errs.Addf("max_players", "must be in [1, %d], got %d", maxPlayers, q.MaxPlayers)
	}
	if q.MinPlayers < 0 || q.MinPlayers > max(q.MaxPlayers, 1) {
		errs.Addf("min_players", "must be in [1, max_players] (0: max_players), got %d", q.MinPlayers)
	}
	if len(q.Equal) > maxEqualProps {
		errs.Addf("equal", "at most %d properties, got %d", maxEqualProps, len(q.Equal))
	}
	seen := map[string]bool{}
	for i, p := range q.Equal {
		if p == "" || len(p) > maxPropKey {
			errs.Addf(fmt.Sprintf("equal[%d]", i), "a property name of 1 to %d bytes, got %q", maxPropKey, wire.Snippet(p))
		}
		if seen[p] {
			errs.Addf(fmt.Sprintf("equal[%d]", i), "%q is listed twice", wire.Snippet(p))
		}
		seen[p] = true
	}
	if r := q.Range; r != nil {
		errs.Add(config.Nested("range", r.Validate()))
	}
	if q.TimeLimit != 0 && (q.TimeLimit < time.Second || q.TimeLimit > 24*time.Hour) {
		errs.Addf("time_limit", "must be in [1s, 24h] (0: %v), got %v", DefaultTimeLimit, q.TimeLimit)
	}
	if q.AcceptMinAfter < 0 || q.AcceptMinAfter > d.TimeLimit {
		errs.Addf("accept_min_after", "must be in [0, time_limit], got %v", q.AcceptMinAfter)
	}
	return errs.Err()
}

// Validate checks a range property.
func (r RangeOptions) Validate() error {
	var errs config.Errors
	if r.Property == "" || len(r.Property) > maxPropKey {
		errs.Addf("property", "a property name of 1 to %d bytes, got %q", maxPropKey, wire.Snippet(r.Property))
	}
	finite := func(field string, v float64) bool {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			errs.Addf(field, "must be a finite number >= 0, got %v", v)
			return false
		}
		return true
	}
	okInitial := finite("initial", r.Initial)
	finite("widen_per_second", r.WidenPerSecond)
	if finite("max", r.Max) && okInitial && r.Max < r.Initial {
		errs.Addf("max", "must be >= initial (%v), got %v", r.Initial, r.Max)
	}
	return errs.Err()
}

// validQueueName reports whether s may name a queue: [a-z0-9][a-z0-9_-]*,
// at most maxQueueNameLen bytes. It never contains '{', '}' or '.', so it
// is a safe hash tag and splits off a ticket id at the first dot.
func validQueueName(s string) bool {
	if s == "" || len(s) > maxQueueNameLen {
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
