package room

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
		"matchmakers[1]": func(o *Options) { o.Matchmakers = []string{"match", "Not A Name"} },
		"matchmakers":    func(o *Options) { o.Matchmakers = make([]string, maxMatchmakers+1) },
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

// matchedBody encodes a CreateMatchedRequest as a matched entry's body,
// normalized as the handler stores it.
func matchedBody(t *testing.T, games *game.Registry, req *roompb.CreateMatchedRequest) []byte {
	t.Helper()
	norm, err := normalizeMatched(req, games)
	if err != nil {
		t.Fatalf("normalizeMatched: %v", err)
	}
	b, err := thriftx.Marshal(norm)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMatchedEntry: a matched entry creates the room with its members
// seated in order, none ready, the first the host, with the events of a
// create and of each join; the same members again is a no-op (in any
// order), others a conflict, also after a replay or from a snapshot; the
// room then plays as any other.
func TestMatchedEntry(t *testing.T) {
	games := testGames(0)
	body := matchedBody(t, games, &roompb.CreateMatchedRequest{RoomID: "rm1", Members: []string{"a", "b"}, Game: race31.Name, MaxPlayers: 3})
	l := &liveRoom{t: t, games: games, r: newRoomState("rm1"), at: 1_700_000_000_000}
	next := l.r.clone()
	evs, noop, err := next.apply(Entry{Seq: 1, Kind: KindMatched, Body: body, At: 1}, games)
	if err != nil || noop {
		t.Fatalf("matched: %v %v", noop, err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%d %s %s", e.ev.Seq, e.ev.Type, e.ev.Player))
	}
	if want := []string{"1 room.created a", "2 room.joined b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	l.must(KindMatched, "", body)
	st := protoOf(t, l.r)
	if st.Host != "a" || st.Status != StatusOpen || st.MaxPlayers != 3 || st.Game != race31.Name || st.Name != "match" ||
		len(st.Players) != 2 || st.Players[0].ID != "a" || st.Players[1].ID != "b" || st.Players[0].Ready || st.Players[1].Ready {
		t.Fatalf("matched room %+v", st)
	}
	again := func(l *liveRoom, members ...string) error {
		seq := l.r.seq
		err := l.do(KindMatched, "", matchedBody(t, games, &roompb.CreateMatchedRequest{RoomID: "rm1", Members: members}))
		if err == nil && l.r.seq != seq {
			t.Fatalf("matched again with %v was logged", members)
		}
		return err
	}
	if err := again(l, "b", "a"); err != nil {
		t.Fatalf("the same members again: %v", err)
	}
	if err := again(l, "a", "c"); !errors.Is(err, &wire.Error{Code: wire.CodeConflict}) {
		t.Fatalf("other members: %v, want conflict", err)
	}
	l.must(KindJoin, "c", nil)
	for _, p := range []string{"a", "b", "c"} {
		l.must(KindReady, p, nil)
	}
	l.must(KindStart, "b", nil)
	want := protoOf(t, l.r)
	// Replayed, and from a snapshot: the same room, the same members.
	r, err := rebuild("rm1", nil, l.log, games)
	if err != nil {
		t.Fatal(err)
	}
	if p := protoOf(t, r); !reflect.DeepEqual(p, want) {
		t.Fatalf("rebuilt:\n%+v\nwant\n%+v", p, want)
	}
	snap, err := r.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := rebuild("rm1", &snap, nil, games)
	if err != nil {
		t.Fatal(err)
	}
	if p := protoOf(t, restored); !reflect.DeepEqual(p, want) {
		t.Fatalf("from the snapshot:\n%+v\nwant\n%+v", p, want)
	}
	fromSnap := &liveRoom{t: t, games: games, r: restored, at: l.at}
	if err := again(fromSnap, "a", "b"); err != nil {
		t.Fatalf("the same members, after a snapshot: %v", err)
	}
	if err := again(fromSnap, "a"); !errors.Is(err, &wire.Error{Code: wire.CodeConflict}) {
		t.Fatalf("other members after a snapshot: %v, want conflict", err)
	}
	// A room made by room.Create is no matched room.
	create, _ := thriftx.Marshal(&roompb.CreateRequest{Name: "x"})
	c := &liveRoom{t: t, games: games, r: newRoomState("rm1"), at: 1}
	c.must(KindCreate, "a", create)
	if err := again(c, "a"); !errors.Is(err, &wire.Error{Code: wire.CodeConflict}) {
		t.Fatalf("matched over a created room: %v, want conflict", err)
	}
}

// TestCheckMatched: what a CreateMatchedRequest may hold.
func TestCheckMatched(t *testing.T) {
	games := testGames(0)
	ok := func() *roompb.CreateMatchedRequest {
		return &roompb.CreateMatchedRequest{RoomID: "m-1_x", Members: []string{"a", "b"}, Game: race31.Name}
	}
	norm, err := normalizeMatched(ok(), games)
	if err != nil || norm.Name != "match" || norm.MaxPlayers != 4 || norm.Game != race31.Name {
		t.Fatalf("normalized %+v, %v", norm, err)
	}
	if norm, err := normalizeMatched(&roompb.CreateMatchedRequest{RoomID: "m", Members: []string{"a"}}, games); err != nil || norm.Game != games.Default() {
		t.Fatalf("default game: %+v, %v", norm, err)
	}
	for _, tc := range []struct {
		mod  func(*roompb.CreateMatchedRequest)
		want string
	}{
		{func(r *roompb.CreateMatchedRequest) { r.RoomID = "" }, `bad_request: room_id must be 1 to 64 bytes of [A-Za-z0-9_-], got ""`},
		{func(r *roompb.CreateMatchedRequest) { r.RoomID = "r/1" }, `bad_request: room_id must be 1 to 64 bytes of [A-Za-z0-9_-], got "r/1"`},
		{func(r *roompb.CreateMatchedRequest) { r.Members = nil }, "bad_request: members: 1 to 4 (max_players), got 0"},
		{func(r *roompb.CreateMatchedRequest) { r.Members = []string{"a", "b", "c"}; r.MaxPlayers = 2 }, "bad_request: members: 1 to 2 (max_players), got 3"},
		{func(r *roompb.CreateMatchedRequest) { r.Members = []string{"a", "b", "c", "d", "e"} }, "bad_request: members: 1 to 4 (max_players), got 5"},
		{func(r *roompb.CreateMatchedRequest) { r.Members = []string{"a", "b", "a"} }, `bad_request: members[2]: "a" is listed twice`},
		{func(r *roompb.CreateMatchedRequest) { r.Members = []string{"a", ""} }, `bad_request: members[1]: a user id is 1 to 128 bytes of UTF-8 with no control characters, got ""`},
		{func(r *roompb.CreateMatchedRequest) { r.Members = []string{"a\nb"} }, `bad_request: members[0]: a user id is 1 to 128 bytes of UTF-8 with no control characters, got "a\nb"`},
		{func(r *roompb.CreateMatchedRequest) { r.Members = []string{"\xff"} }, `bad_request: members[0]: a user id is 1 to 128 bytes of UTF-8 with no control characters, got "\xff"`},
		{func(r *roompb.CreateMatchedRequest) { r.Members = []string{strings.Repeat("u", 129)} }, "bad_request: members[0]: a user id is 1 to 128 bytes of UTF-8 with no control characters, got \"" + strings.Repeat("u", 64) + "...\""},
		{func(r *roompb.CreateMatchedRequest) { r.Game = "chess" }, `bad_request: no game "chess" (games: [race31 counter secret tally])`},
		{func(r *roompb.CreateMatchedRequest) { r.MaxPlayers = 9 }, "bad_request: max_players: race31 takes 2 to 4 players, got 9"},
		{func(r *roompb.CreateMatchedRequest) { r.Name = strings.Repeat("n", 65) }, "bad_request: name must be 1 to 64 bytes, got 65"},
	} {
		req := ok()
		tc.mod(req)
		_, err := normalizeMatched(req, games)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %s", req, err, tc.want)
		}
	}
	if !validUserID(strings.Repeat("u", maxUserIDLen)) || !validUserID("Zoë-42") || validUserID("a\u0085") {
		t.Error("validUserID")
	}
}
