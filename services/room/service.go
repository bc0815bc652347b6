package room

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/room/game"
	"github.com/noonhq/noon/services/room/games/race31"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// BindingKey is the session binding the room service sets (room = <id>)
// and the broker routes room.* requests by.
const BindingKey = "room"

// EventType is the type of the pushes the room service publishes: clients
// receive them as "@room.Event" frames carrying an Event.
const EventType = "room.Event"

// Topic returns the push topic of room id: "room/<id>".
func Topic(id string) string { return BindingKey + "/" + id }

// UserTopic returns the push topic of user id, "user/<id>": the events of
// a game with hidden information go to each member on theirs.
func UserTopic(id string) string { return wire.KeyUser + "/" + id }

// MetaRoomsFree is the meta label in which a room instance publishes its
// free capacity in its yellow record: MaxRooms minus the rooms active on
// it, as a decimal number, refreshed with every heartbeat that changes it.
// A matchmaker places a match on an instance with rooms free (RoomsFree).
const MetaRoomsFree = "rooms_free"

// RoomsFree returns the free capacity a room instance publishes in its
// yellow record (MetaRoomsFree); ok is false when the record carries none
// or not a number >= 0.
func RoomsFree(inst *platformpb.Instance) (n int, ok bool) {
	v, found := inst.GetMeta()[MetaRoomsFree]
	if !found {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// Deps are what a Service runs on.
type Deps struct {
	// Store keeps the rooms (NewPostgresStore, or NewMemoryStore for `noon dev`).
	Store Store
	// Redis holds the rooms' leases.
	Redis redis.UniversalClient
	// Watcher is the yellow view the service places rooms by; when nil,
	// New watches Yellows itself (and Close stops it).
	Watcher *yellow.Watcher
	// Yellows are the yellow ROUTER endpoints to watch when Watcher is nil.
	Yellows []string
	// Heartbeat is the yellow heartbeat of the watcher New makes (default
	// 1 s).
	Heartbeat time.Duration
	// TLS are the credentials of the watcher New makes (the instance's);
	// nil: plain links.
	TLS *pki.Credentials
	// Games are the games offered; nil offers race31 with Options.Race31.
	Games *game.Registry
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Rewards grants the rewards of Options.Rewards (the game service's
	// game.Grant); nil grants none.
	Rewards Rewarder
}

// Service is the room service of one instance: the switch that hands each
// room's events to the room's controller, the controllers, and the leases
// that make this instance the rooms' single writer.
//
// Lock order: Service.mu is a leaf; nothing blocking happens under it
// (queue sends never block: they fail overloaded when full).
type Service struct {
	opts       Options
	store      Store
	rdb        redis.UniversalClient
	watcher    *yellow.Watcher
	ownWatcher bool
	games      *game.Registry
	rewards    Rewarder
	log        *slog.Logger

	att atomic.Pointer[attachment]

	mu      sync.Mutex                 // guards rooms, exiting, moving, closed
	rooms   map[string]*controller     // active controllers by room id
	exiting map[string]<-chan struct{} // done of controllers winding down
	// moving holds the done of controllers handing their room over to
	// another instance (rebalance): requests wait for it, then go there.
	moving map[string]<-chan struct{}
	closed bool

	draining     atomic.Bool
	pauseRenewal atomic.Bool // tests: a paused owner stops renewing
	ctx          context.Context
	cancel       context.CancelFunc
	wg           sync.WaitGroup // controllers and the renewer
	attachOnce   sync.Once
	st           counters
}

// attachment is what the service learns when attached to its server.
type attachment struct {
	self    string // this instance's id
	service string // the service's name in yellow
	leases  *placement.Leases
	publish func(topic, eventType string, payload []byte) error
	srv     *services.Server // nil in unit tests
}

type counters struct {
	loads, loadErrors, appends, entries, appendErrors, fenced, moved, overloaded,
	evicted, snapshots, published, publishErrors, leaseLost, rewards, rewardErrors,
	epochRepairs, rateLimited, quotaRefused, closedEvicted, pruned, rebalanced atomic.Uint64
}

// Stats are a service's counters since New.
type Stats struct {
	// Rooms is the number of rooms active (in memory) now.
	Rooms int
	// Loads counts rooms loaded from the store; LoadErrors those that
	// failed.
	Loads, LoadErrors uint64
	// Appends counts writes to the store, Entries the entries they stored,
	// AppendErrors the writes that failed, Fenced those refused because a
	// newer owner claimed the room.
	Appends, Entries, AppendErrors, Fenced uint64
	// Moved counts requests answered moved; Overloaded those refused with a
	// full room queue or MaxRooms reached.
	Moved, Overloaded uint64
	// Evicted counts idle rooms evicted; Snapshots snapshots written.
	Evicted, Snapshots uint64
	// Published counts events published; PublishErrors those the PUB
	// socket refused (its queue full, or closed).
	Published, PublishErrors uint64
	// LeaseLost counts rooms dropped because their lease was lost.
	LeaseLost uint64
	// Rewards counts winners rewarded (Options.Rewards); RewardErrors
	// rewards that failed after their retries.
	Rewards, RewardErrors uint64
	// EpochRepairs counts leases moved past the store's epoch because the
	// lease store had lost its epochs (placement.Leases.Advance).
	EpochRepairs uint64
	// RateLimited counts member events refused by member_rate;
	// QuotaRefused room creations refused by the per-user quotas.
	RateLimited, QuotaRefused uint64
	// ClosedEvicted counts closed rooms evicted from memory at once;
	// Pruned rooms deleted or archived by the retention policy.
	ClosedEvicted, Pruned uint64
	// Rebalanced counts rooms handed over to the instance that owns them
	// now (Options.RebalanceRate).
	Rebalanced uint64
}

// New returns a room service with opts over deps; Attach (or NewServer)
// connects it to its services.Server before it serves.
func New(opts Options, deps Deps) (*Service, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("room: deps: Store is nil")
	}
	if deps.Redis == nil {
		return nil, errors.New("room: deps: Redis is nil")
	}
	if deps.Watcher == nil && len(deps.Yellows) == 0 {
		return nil, errors.New("room: deps: need a Watcher or Yellows")
	}
	games := deps.Games
	if games == nil {
		g, err := race31.New(opts.Race31)
		if err != nil {
			return nil, fmt.Errorf("room: %w", err)
		}
		if games, err = game.NewRegistry(g); err != nil {
			return nil, fmt.Errorf("room: %w", err)
		}
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		opts:    opts,
		store:   deps.Store,
		rdb:     deps.Redis,
		watcher: deps.Watcher,
		games:   games,
		rewards: deps.Rewards,
		log:     log.With("service", Name),
		rooms:   make(map[string]*controller),
		exiting: make(map[string]<-chan struct{}),
		moving:  make(map[string]<-chan struct{}),
	}
	if s.watcher == nil {
		s.watcher = yellow.Watch(yellow.ClientOptions{Yellows: deps.Yellows, Heartbeat: deps.Heartbeat, TLS: deps.TLS, Logger: log})
		s.ownWatcher = true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// NewService is New with the dependencies spelled out: the store, the
// Redis of the leases, the yellow watcher, and a logger.
func NewService(opts Options, store Store, rdb redis.UniversalClient, watcher *yellow.Watcher, log *slog.Logger) (*Service, error) {
	return New(opts, Deps{Store: store, Redis: rdb, Watcher: watcher, Logger: log})
}

// Options returns the options the service runs with.
func (s *Service) Options() Options { return s.opts }

// Games returns the games the service offers.
func (s *Service) Games() *game.Registry { return s.games }

// Attach connects the service to the server that serves its Handlers: the
// service learns its instance id (leases are taken in its name) and
// publishes room events on the server's PUB socket. Call it once, before
// the server's Main; handlers answer unavailable until then.
func (s *Service) Attach(srv *services.Server) {
	s.attach(srv.InstanceID(), srv.Options().Name, srv.Publish, srv)
}

func (s *Service) attach(self, service string, publish func(string, string, []byte) error, srv *services.Server) {
	s.attachOnce.Do(func() {
		a := &attachment{
			self:    self,
			service: service,
			leases:  placement.NewLeases(s.rdb, s.opts.RedisPrefix, service, self, s.opts.LeaseTTL),
			publish: publish,
			srv:     srv,
		}
		s.log = s.log.With("instance", self)
		s.att.Store(a)
		s.wg.Add(3)
		go s.renewLoop(a)
		go s.sweepLoop(a)
		go s.rebalanceLoop(a)
	})
}

// NewServer builds the services.Server of the room service (stateful,
// named "room" unless opts names it, with a PUB socket) serving Handlers
// and publishing Meta, and attaches the service to it. The caller runs its Main, and stops it
// with Service.Drain (which drains the server too) or Exit.
func (s *Service) NewServer(opts services.Options, log *slog.Logger) (*services.Server, error) {
	if opts.Name == "" {
		opts.Name = Name
	}
	opts.Kind = services.KindStateful
	if opts.PubBind == "" {
		return nil, errors.New("room: pub_bind is empty: the room service publishes room events")
	}
	srv, err := services.NewServer(opts, s.Handlers(), log)
	if err != nil {
		return nil, err
	}
	srv.SetMeta(s.Meta)
	s.Attach(srv)
	return srv, nil
}

// Meta returns the labels the instance publishes in its yellow record
// (services.Impl.Meta): MetaRoomsFree, MaxRooms minus the rooms active.
func (s *Service) Meta() map[string]string {
	s.mu.Lock()
	n := len(s.rooms)
	s.mu.Unlock()
	return map[string]string{MetaRoomsFree: strconv.Itoa(max(s.opts.MaxRooms-n, 0))}
}

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	n := len(s.rooms)
	s.mu.Unlock()
	c := &s.st
	return Stats{
		Rooms: n, Loads: c.loads.Load(), LoadErrors: c.loadErrors.Load(),
		Appends: c.appends.Load(), Entries: c.entries.Load(), AppendErrors: c.appendErrors.Load(),
		Fenced: c.fenced.Load(), Moved: c.moved.Load(), Overloaded: c.overloaded.Load(),
		Evicted: c.evicted.Load(), Snapshots: c.snapshots.Load(),
		Published: c.published.Load(), PublishErrors: c.publishErrors.Load(), LeaseLost: c.leaseLost.Load(),
		Rewards: c.rewards.Load(), RewardErrors: c.rewardErrors.Load(),
		EpochRepairs: c.epochRepairs.Load(), RateLimited: c.rateLimited.Load(), QuotaRefused: c.quotaRefused.Load(),
		ClosedEvicted: c.closedEvicted.Load(), Pruned: c.pruned.Load(), Rebalanced: c.rebalanced.Load(),
	}
}

// RegisterMetrics exports the service's counters to m, read at scrape
// time, under names prefixed "room_".
func (s *Service) RegisterMetrics(m metrics.Sink) {
	counter := func(name, help string, f func(Stats) uint64) {
		m.CounterFunc(name, help, func() float64 { return float64(f(s.Stats())) })
	}
	m.GaugeFunc("room_active", "Rooms in memory on this instance.", func() float64 { return float64(s.Stats().Rooms) })
	counter("room_loads_total", "Rooms loaded from the store.", func(st Stats) uint64 { return st.Loads })
	counter("room_load_errors_total", "Room loads that failed.", func(st Stats) uint64 { return st.LoadErrors })
	counter("room_appends_total", "Writes of room entries to the store.", func(st Stats) uint64 { return st.Appends })
	counter("room_entries_total", "Room entries stored.", func(st Stats) uint64 { return st.Entries })
	counter("room_append_errors_total", "Writes to the store that failed.", func(st Stats) uint64 { return st.AppendErrors })
	counter("room_fenced_total", "Writes refused because a newer owner claimed the room.", func(st Stats) uint64 { return st.Fenced })
	counter("room_moved_total", "Requests answered moved.", func(st Stats) uint64 { return st.Moved })
	counter("room_overloaded_total", "Requests refused: room queue full or max_rooms reached.", func(st Stats) uint64 { return st.Overloaded })
	counter("room_evicted_total", "Idle rooms evicted from memory.", func(st Stats) uint64 { return st.Evicted })
	counter("room_snapshots_total", "Room snapshots written.", func(st Stats) uint64 { return st.Snapshots })
	counter("room_published_total", "Room events published.", func(st Stats) uint64 { return st.Published })
	counter("room_publish_errors_total", "Room events the PUB socket refused.", func(st Stats) uint64 { return st.PublishErrors })
	counter("room_lease_lost_total", "Rooms dropped because their lease was lost.", func(st Stats) uint64 { return st.LeaseLost })
	counter("room_rewards_total", "Winners rewarded through the game service.", func(st Stats) uint64 { return st.Rewards })
	counter("room_reward_errors_total", "Rewards that failed after their retries.", func(st Stats) uint64 { return st.RewardErrors })
	counter("room_epoch_repairs_total", "Leases moved past the store's epoch after the lease store lost its epochs.", func(st Stats) uint64 { return st.EpochRepairs })
	counter("room_rate_limited_total", "Member events refused by member_rate.", func(st Stats) uint64 { return st.RateLimited })
	counter("room_quota_refused_total", "Room creations refused by max_rooms_per_user or max_creates_per_user.", func(st Stats) uint64 { return st.QuotaRefused })
	counter("room_closed_evicted_total", "Closed rooms evicted from memory at once.", func(st Stats) uint64 { return st.ClosedEvicted })
	counter("room_rebalanced_total", "Rooms handed over to the instance that owns them now (a room instance joined).", func(st Stats) uint64 { return st.Rebalanced })
	counter("room_pruned_total", "Closed rooms deleted or archived by the retention policy.", func(st Stats) uint64 { return st.Pruned })
}

// Close stops the service at once: queued events are answered
// unavailable, leases released (best effort), the renewals stopped. Drain
// is the graceful way; Close after Drain only stops the watcher. Close is
// idempotent.
func (s *Service) Close() { s.stop(stopClose) }

// stop stops every controller with mode and waits for them.
func (s *Service) stop(mode stopMode) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	list := s.controllersLocked()
	s.mu.Unlock()
	for _, c := range list {
		c.signal(mode)
	}
	s.cancel()
	s.wg.Wait()
	if s.ownWatcher {
		s.watcher.Close()
	}
}

// controllersLocked lists the active controllers. Caller holds mu.
func (s *Service) controllersLocked() []*controller {
	list := make([]*controller, 0, len(s.rooms))
	for _, c := range s.rooms {
		list = append(list, c)
	}
	return list
}
