package room

import (
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services/room/game"
	"github.com/noonhq/noon/services/room/games/race31"
	"github.com/noonhq/noon/wire"
)

// liveRoom applies entries the way a controller does (on a clone, kept
// only when accepted) and records the log.
type liveRoom struct {
	t     *testing.T
	games *game.Registry
	r     *roomState
	log   []Entry
	at    int64
}

func (l *liveRoom) do(kind, player string, body []byte) error {
	next := l.r.clone()
	l.at += 1000
	e := Entry{Seq: next.seq + 1, Kind: kind, Player: player, Body: body, At: l.at}
	if kind == KindStart {
		e.Body = binary.BigEndian.AppendUint64(nil, 12345)
	}
	_, noop, err := next.apply(e, l.games)
	if err != nil || noop {
		return err
	}
	l.r = next
	l.log = append(l.log, e)
	return nil
}

func (l *liveRoom) must(kind, player string, body []byte) {
	l.t.Helper()
	if err := l.do(kind, player, body); err != nil {
		l.t.Fatalf("%s by %s: %v", kind, player, err)
	}
}

func protoOf(t *testing.T, r *roomState) *roompb.RoomState {
	t.Helper()
	p, err := r.proto()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplayRebuildsTheSameRoom: a race31 game with joins, a leave in the
// middle of play, turn timeouts and moves; rebuilding it from the log, or
// from any snapshot and the entries after it, gives the same room.
func TestReplayRebuildsTheSameRoom(t *testing.T) {
	games := testGames(5 * time.Second)
	create, _ := thriftx.Marshal(&roompb.CreateRequest{Name: "replay", MaxPlayers: 3})
	l := &liveRoom{t: t, games: games, r: newRoomState("rreplay"), at: 1_700_000_000_000}
	l.must(KindCreate, "a", create)
	l.must(KindJoin, "b", nil)
	l.must(KindJoin, "c", nil)
	if err := l.do(KindJoin, "d", nil); !errors.Is(err, &wire.Error{Code: wire.CodeConflict}) {
		t.Fatalf("fourth join = %v, want conflict", err)
	}
	for _, p := range []string{"a", "b", "c"} {
		l.must(KindReady, p, nil)
	}
	l.must(KindUnready, "c", nil)
	if err := l.do(KindStart, "a", nil); !errors.Is(err, &wire.Error{Code: wire.CodeConflict}) {
		t.Fatalf("start with c not ready = %v", err)
	}
	l.must(KindReady, "c", nil)
	l.must(KindStart, "b", nil)
	g := l.r.st.(*race31.State)
	for i := 0; l.r.status == StatusPlaying; i++ {
		s := g.Race31()
		cur := s.Order[s.Turn]
		switch {
		case i == 2:
			l.must(KindLeave, cur, nil) // the player to move leaves
		case i%3 == 1:
			l.at += 10_000 // too slow: the turn times out
			l.must(KindTick, "", nil)
		default:
			b, _ := thriftx.Marshal(&roompb.Race31Action{Add: min(3, s.Target-s.Total)})
			l.must(KindAct, cur, b)
		}
		g = l.r.st.(*race31.State)
	}
	want := protoOf(t, l.r)
	if want.Status != StatusFinished || want.Winner == "" || len(want.Players) != 2 {
		t.Fatalf("final room: %+v", want)
	}
	got, err := rebuild(l.r.id, nil, l.log, games)
	if err != nil {
		t.Fatal(err)
	}
	if p := protoOf(t, got); !reflect.DeepEqual(p, want) {
		t.Fatalf("rebuilt from the log:\n%+v\nwant\n%+v", p, want)
	}
	// From a snapshot at every point.
	r := newRoomState(l.r.id)
	for k, e := range l.log {
		if _, _, err := r.apply(e, games); err != nil {
			t.Fatal(err)
		}
		snap, err := r.snapshot()
		if err != nil {
			t.Fatal(err)
		}
		got, err := rebuild(l.r.id, &snap, l.log[k+1:], games)
		if err != nil {
			t.Fatalf("rebuild from snapshot at %d: %v", snap.Seq, err)
		}
		if p := protoOf(t, got); !reflect.DeepEqual(p, want) {
			t.Fatalf("rebuilt from the snapshot at %d: %+v", snap.Seq, p)
		}
	}
}

func TestRebuildRejects(t *testing.T) {
	games := testGames(0)
	create, _ := thriftx.Marshal(&roompb.CreateRequest{Name: "x"})
	log := []Entry{{Seq: 1, Kind: KindCreate, Player: "a", Body: create, At: 1}}
	if _, err := rebuild("rx", nil, append(log, Entry{Seq: 3, Kind: KindJoin, Player: "b"}), games); err == nil {
		t.Error("a gap in the log rebuilt")
	}
	if _, err := rebuild("rx", nil, append(log, Entry{Seq: 2, Kind: "dance", Player: "b"}), games); err == nil {
		t.Error("an unknown kind rebuilt")
	}
	if _, err := rebuild("rx", nil, append(log, Entry{Seq: 2, Kind: KindJoin, Player: "a"}), games); err == nil {
		t.Error("an entry that changes nothing rebuilt")
	}
	if _, err := rebuild("rx", &Snapshot{Seq: 1, State: []byte(`{"v":99}`)}, nil, games); err == nil {
		t.Error("a snapshot of another version rebuilt")
	}
	if _, err := rebuild("rx", &Snapshot{Seq: 1, State: []byte(`{"v":1,"id":"ry","seq":1,"game":"race31"}`)}, nil, games); err == nil {
		t.Error("another room's snapshot rebuilt")
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := NewOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	for field, mod := range map[string]func(*Options){
		"snapshot_every": func(o *Options) { o.SnapshotEvery = 0 },
		"lease_ttl":      func(o *Options) { o.LeaseTTL = time.Millisecond },
		"queue_size":     func(o *Options) { o.QueueSize = 0 },
		"idle_evict":     func(o *Options) { o.IdleEvict = 0 },
		"max_rooms":      func(o *Options) { o.MaxRooms = -1 },
		"append_batch":   func(o *Options) { o.AppendBatch = 5000 },
		"load_timeout":   func(o *Options) { o.LoadTimeout = 0 },
		"store_timeout":  func(o *Options) { o.StoreTimeout = 0 },
		"redis_prefix":   func(o *Options) { o.RedisPrefix = strings.Repeat("x", 65) },
		"race31":         func(o *Options) { o.Race31.Target = 0 },
	} {
		o := NewOptions()
		mod(&o)
		err := o.Validate()
		var fe config.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: Validate = %v", field, err)
		}
	}
	if o := NewOptions(); o.LeaseTTL != placement.DefaultLeaseTTL {
		t.Errorf("default lease_ttl %v", o.LeaseTTL)
	}
}

func TestGameRegistry(t *testing.T) {
	if _, err := game.NewRegistry(); err == nil {
		t.Error("empty registry")
	}
	if _, err := game.NewRegistry(race31.Default(), race31.Default()); err == nil {
		t.Error("duplicate game")
	}
	r, err := game.NewRegistry(tally{}, race31.Default())
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := r.Get(""); !ok || g.Name() != tallyName || r.Default() != tallyName {
		t.Errorf("default game = %v", g)
	}
	if names := r.Names(); !reflect.DeepEqual(names, []string{tallyName, race31.Name}) {
		t.Errorf("Names = %v", names)
	}
}

func TestNewRejectsBadDeps(t *testing.T) {
	if _, err := New(NewOptions(), Deps{}); err == nil {
		t.Error("New without a store")
	}
	if _, err := New(NewOptions(), Deps{Store: NewMemoryStore()}); err == nil {
		t.Error("New without Redis")
	}
	o := NewOptions()
	o.QueueSize = 0
	if _, err := New(o, Deps{Store: NewMemoryStore()}); err == nil {
		t.Error("New with bad options")
	}
	_ = context.Background()
}
