package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// The kinds of requests, for recovery times and the table.
const (
	kindEcho  = "echo"
	kindLogin = "login"
	kindRoom  = "room"
)

// codeHang is the error key of a call with no answer by its deadline + 2 s.
const codeHang = "hang"

// rec is one request: who made it, of what kind, when, and how it ended
// (code "" = success).
type rec struct {
	worker     int
	kind       string
	start, end time.Time
	code       string
	msg        string
}

// ack is an acknowledged room action (seq: the room's event seq in the
// reply): the room's log must hold an act entry of player for it.
type ack struct {
	room   string
	seq    int64
	player string
	at     time.Time
}

// gap is a bot's missing pushes in one room, counted when its game ended.
type gap struct {
	at      time.Time
	bot     string
	room    string
	missing int
	first   int64 // the first missing seq
	base    int64 // the bot's last event seq in its create/join reply
	last    int64 // the room's last event seq when the game ended
}

// replay is one catch-up of a bot: a room.Get since_seq after
// _client.Resumed, a gap in its pushes, or at a game's end.
type replay struct {
	at     time.Time
	bot    string
	room   string
	why    string // resumed, gap or end (of the game)
	since  int64  // the since_seq asked
	first  int64  // the first event it brought that was not pushed
	events int    // events got by it and not pushed
	resync bool   // the room no longer kept them: the state covers them
}

// stats collects every request, acknowledged action, push gap and replay.
type stats struct {
	mu      sync.Mutex
	recs    []rec
	acks    []ack
	gaps    []gap
	replays []replay
	resumes []time.Time // each _client.Resumed a bot got
}

func (s *stats) add(r rec) { s.mu.Lock(); s.recs = append(s.recs, r); s.mu.Unlock() }
func (s *stats) addAck(a ack) {
	s.mu.Lock()
	s.acks = append(s.acks, a)
	s.mu.Unlock()
}
func (s *stats) addGap(g gap) { s.mu.Lock(); s.gaps = append(s.gaps, g); s.mu.Unlock() }
func (s *stats) addResume(t time.Time) {
	s.mu.Lock()
	s.resumes = append(s.resumes, t)
	s.mu.Unlock()
}
func (s *stats) addReplay(r replay) {
	s.mu.Lock()
	s.replays = append(s.replays, r)
	s.mu.Unlock()
}

// load runs the bots and callers against the brokers.
type load struct {
	brokers  []string
	deadline time.Duration // the brokers' request deadline
	grace    time.Duration // a call unanswered by deadline + grace hangs
	target   int           // race31's target (max_add 1: target moves a game)
	pace     time.Duration // pause between a worker's requests
	actPace  time.Duration // pause between two moves of a pair (room's member_rate)
	st       *stats
	run      string // unique prefix of user names
}

// codeOf is the table key of a failed call's error.
func codeOf(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.WireCode()
	}
	return "conn" // the connection was lost or no broker took it
}

// call runs fn with the hang deadline and records it; when the run is
// stopping (ctx done), a failure is not recorded.
func (l *load) call(ctx context.Context, worker int, kind string, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, l.deadline+l.grace)
	start := time.Now()
	err := fn(cctx)
	end := time.Now()
	cancel()
	if err != nil && ctx.Err() != nil {
		return err
	}
	r := rec{worker: worker, kind: kind, start: start, end: end}
	if err != nil {
		r.code, r.msg = codeOf(err), err.Error()
		if errors.Is(err, context.DeadlineExceeded) || end.Sub(start) >= l.deadline+l.grace {
			r.code = codeHang
		}
	}
	l.st.add(r)
	return err
}

// session connects a Session (pushes on) whose broker list starts at
// broker i.
func (l *load) session(ctx context.Context, i int) (*client.Session, error) {
	bs := append(append([]string{}, l.brokers[i%len(l.brokers):]...), l.brokers[:i%len(l.brokers)]...)
	opts := client.DefaultOptions()
	opts.Push = true
	opts.DialTimeout = 3 * time.Second
	opts.ClientName = "noonchaos"
	cctx, cancel := context.WithTimeout(ctx, l.deadline)
	defer cancel()
	return client.Connect(cctx, client.SessionOptions{Brokers: bs, Options: opts})
}

// pause waits the pace or until ctx ends.
func (l *load) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// echoCaller logs in, then calls echo.Echo in a loop and checks each
// reply.
func (l *load) echoCaller(ctx context.Context, worker int) {
	b := &bot{l: l, worker: worker, name: fmt.Sprintf("%se%d", l.run, worker)}
	for ctx.Err() == nil {
		if b.sess == nil || b.lost.Load() {
			if err := b.connect(ctx); err != nil {
				l.pause(ctx, 100*time.Millisecond)
				continue
			}
		}
		payload := make([]byte, 32)
		_, _ = rand.Read(payload)
		s := b.sess
		err := l.call(ctx, worker, kindEcho, func(ctx context.Context) error {
			out, err := s.Call(ctx, "echo.Echo", payload)
			if err == nil && !bytes.Equal(out, payload) {
				return &wire.Error{Code: "corrupt", Message: "echo reply differs from the request"}
			}
			return err
		})
		if wire.CodeOf(err) == wire.CodeUnauthenticated && ctx.Err() == nil {
			b.close()
		}
		l.pause(ctx, l.pace)
	}
	b.close()
}

// loginCaller logs in again and again with its own account.
func (l *load) loginCaller(ctx context.Context, worker int) {
	b := &bot{l: l, worker: worker, name: fmt.Sprintf("%sl%d", l.run, worker)}
	for ctx.Err() == nil {
		if b.sess == nil || b.lost.Load() {
			if err := b.connect(ctx); err != nil {
				l.pause(ctx, 100*time.Millisecond)
				continue
			}
		}
		_ = l.call(ctx, worker, kindLogin, func(ctx context.Context) error {
			_, err := b.sess.Login(ctx, b.name, b.pass())
			return err
		})
		l.pause(ctx, 10*l.pace)
	}
	b.close()
}

// bot is a player: its session, and the room events pushed to it or
// replayed.
//
// The Session reconnects by itself when its broker is lost (in the
// background, resuming the login session on another broker, which
// restores the room binding and subscriptions) and pushes
// _client.Resumed; the bot then catches up on the pushes it missed with
// room.Get since_seq, as it does when it sees a gap in the seqs pushed.
// Only when the resume is refused (_client.ResumeFailed, @edge.LoggedOut,
// or an unauthenticated answer) does the bot make a new session and log in
// again.
type bot struct {
	l      *load
	worker int
	name   string
	sess   *client.Session
	user   string
	stop   chan struct{} // ends the current session's push reader
	lost   atomic.Bool   // the session's login is gone: log in again
	kick   chan struct{} // asks the current session's catch-up for a room.Get since_seq

	mu       sync.Mutex
	seen     map[string]map[int64]bool // room -> event seqs pushed
	replayed map[string]map[int64]bool // room -> event seqs got by room.Get since_seq only
	resynced map[string]int64          // room -> the seq a resync's state covers up to
	room     string                    // the room the bot plays in ("": none)
	base     int64                     // its seq in the create/join reply of room
	why      string                    // why the pending catch-up was asked for
}

func (b *bot) pass() string { return "pw-" + b.name }

// connect makes a new session, registers (once; a taken name is fine) and
// logs in, and starts reading its pushes.
func (b *bot) connect(ctx context.Context) error {
	b.close()
	s, err := b.l.session(ctx, b.worker)
	if err != nil {
		b.l.st.add(rec{worker: b.worker, kind: kindLogin, start: time.Now(), end: time.Now(), code: "conn", msg: err.Error()})
		return err
	}
	err = b.l.call(ctx, b.worker, kindLogin, func(ctx context.Context) error {
		return register(ctx, s, b.name, b.pass())
	})
	if err == nil {
		err = b.l.call(ctx, b.worker, kindLogin, func(ctx context.Context) error {
			rep, err := s.Login(ctx, b.name, b.pass())
			if err == nil {
				b.user = rep.GetUserID()
			}
			return err
		})
	}
	if err != nil {
		s.Close()
		return err
	}
	b.sess = s
	b.lost.Store(false)
	b.stop = make(chan struct{})
	b.kick = make(chan struct{}, 1)
	go b.readPushes(s, b.stop, b.kick)
	go b.catchUps(s, b.stop, b.kick)
	return nil
}

func (b *bot) close() {
	if b.sess != nil {
		b.sess.Close()
		close(b.stop)
		b.sess = nil
	}
}

// readPushes records the seq of every @room.Event of s, and asks for a
// catch-up on _client.Resumed or a gap in the seqs of the bot's room.
func (b *bot) readPushes(s *client.Session, stop, kick chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case p := <-s.Pushes():
			switch p.Type {
			case client.EventResumed:
				b.l.st.addResume(time.Now())
				b.mu.Lock()
				b.why = "resumed"
				b.mu.Unlock()
				b.poke(kick)
				continue
			case client.EventResumeFailed, wire.EventLoggedOut:
				b.lost.Store(true)
				continue
			case "room.Event":
			default:
				continue
			}
			var ev roompb.Event
			if err := thriftx.Unmarshal(p.Payload, &ev); err != nil {
				continue
			}
			b.mu.Lock()
			mark(&b.seen, ev.RoomID, ev.Seq)
			gap := ev.RoomID == b.room && ev.Seq > b.contiguous()+1
			if gap && b.why == "" {
				b.why = fmt.Sprintf("gap (pushed %d)", ev.Seq)
			}
			b.mu.Unlock()
			if gap {
				b.poke(kick)
			}
		}
	}
}

// mark sets seq of room in *m.
func mark(m *map[string]map[int64]bool, room string, seq int64) {
	if *m == nil {
		*m = map[string]map[int64]bool{}
	}
	r := (*m)[room]
	if r == nil {
		r = map[int64]bool{}
		(*m)[room] = r
	}
	r[seq] = true
}

// poke asks for a catch-up (one pending at most).
func (b *bot) poke(kick chan struct{}) {
	select {
	case kick <- struct{}{}:
	default:
	}
}

// has reports whether b got seq of room, pushed, replayed or covered by a
// resync. The caller holds b.mu.
func (b *bot) has(room string, seq int64) bool {
	return b.seen[room][seq] || b.replayed[room][seq] || seq <= b.resynced[room]
}

// contiguous is the last seq of b's room it has with none missing before
// it (from its create/join reply). The caller holds b.mu.
func (b *bot) contiguous() int64 {
	s := b.base
	for b.has(b.room, s+1) {
		s++
	}
	return s
}

// setRoom sets the room b plays in and its seq in the create/join reply
// ("" when it left).
func (b *bot) setRoom(room string, base int64) {
	b.mu.Lock()
	b.room, b.base = room, base
	b.mu.Unlock()
}

// catchUps runs a catch-up each time one is asked for, until stop.
func (b *bot) catchUps(s *client.Session, stop, kick chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-stop; cancel() }()
	for {
		select {
		case <-stop:
			return
		case <-kick:
			b.mu.Lock()
			why := b.why
			b.why = ""
			b.mu.Unlock()
			b.catchUp(ctx, s, "", why)
		}
	}
}

// catchUp asks room (b's room if "") for the events after the last one b
// has in order (room.Get since_seq, a recorded room call) and keeps them
// as replayed; on resync the state covers them. It returns the room's seq
// (0 on failure).
func (b *bot) catchUp(ctx context.Context, s *client.Session, room, why string) int64 {
	b.mu.Lock()
	if room == "" {
		room = b.room
	}
	if room == "" || room != b.room {
		b.mu.Unlock()
		return 0
	}
	since := b.contiguous()
	b.mu.Unlock()
	var st *roompb.RoomState
	err := b.l.call(ctx, b.worker, kindRoom, func(ctx context.Context) (err error) {
		st, err = roomrpc.NewClient(s.CallThrift).Get(ctx, &roompb.GetRequest{RoomID: &room, SinceSeq: &since})
		return err
	})
	if err != nil || st.PublicView {
		return 0
	}
	r := replay{at: time.Now(), bot: b.name, room: room, why: why, since: since, resync: st.Resync}
	b.mu.Lock()
	if st.Resync {
		if b.resynced == nil {
			b.resynced = map[string]int64{}
		}
		r.events = int(max(st.Seq-since, 0))
		b.resynced[room] = max(b.resynced[room], st.Seq)
	}
	for _, ev := range st.Events {
		if ev.Seq > since && !b.seen[room][ev.Seq] && !b.replayed[room][ev.Seq] {
			mark(&b.replayed, room, ev.Seq)
			if r.events == 0 {
				r.first = ev.Seq
			}
			r.events++
		}
	}
	b.mu.Unlock()
	if r.events > 0 || r.resync {
		b.l.st.addReplay(r)
	}
	return st.Seq
}

// missing counts the seqs in (base, last] not pushed to b in room, waiting
// up to wait for late pushes.
func (b *bot) missing(room string, base, last int64, wait time.Duration) (int, int64) {
	deadline := time.Now().Add(wait)
	for {
		b.mu.Lock()
		n, first := 0, int64(0)
		for s := base + 1; s <= last; s++ {
			if !b.has(room, s) {
				if n == 0 {
					first = s
				}
				n++
			}
		}
		b.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return n, first
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rooms is the room client of b's session.
func (b *bot) rooms() *roomrpc.Client {
	s := b.sess
	return roomrpc.NewClient(func(ctx context.Context, method string, req, resp thrift.TStruct) error {
		return s.CallThrift(ctx, method, req, resp)
	})
}

// roomCall is a recorded room call by b; an unauthenticated answer (the
// session was not resumed) makes b log in again on a new session.
func (b *bot) roomCall(ctx context.Context, fn func(ctx context.Context, rc *roomrpc.Client) error) error {
	if b.sess == nil || b.lost.Load() {
		if err := b.connect(ctx); err != nil {
			return err
		}
	}
	rc := b.rooms()
	err := b.l.call(ctx, b.worker, kindRoom, func(ctx context.Context) error { return fn(ctx, rc) })
	if wire.CodeOf(err) == wire.CodeUnauthenticated && ctx.Err() == nil {
		_ = b.connect(ctx)
	}
	return err
}

// game is the state of one race31 game a pair plays.
type game struct {
	room       string
	base       [2]int64 // each bot's last event seq in its create/join reply
	order      []string // user ids in turn order
	turn       int
	total      int
	finished   bool
	actsAcked  int
	actsFailed int
}

// pair is two bots playing race31 games one after another: a creates the
// room, b joins, both ready, a starts, and they move in turn (room.Act
// with no room id: the session's binding routes it), each acknowledged
// move's seq recorded. After an error the pair reads the room (room.Get
// by id) before moving again; a bot told it is not in a room joins again.
func (l *load) pair(ctx context.Context, worker int) {
	bots := [2]*bot{
		{l: l, worker: worker, name: fmt.Sprintf("%sa%d", l.run, worker)},
		{l: l, worker: worker + 1, name: fmt.Sprintf("%sb%d", l.run, worker)},
	}
	defer func() {
		for _, b := range bots {
			b.close()
		}
	}()
	for ctx.Err() == nil {
		g, err := l.setup(ctx, bots)
		if err != nil {
			if g != nil {
				// Both are in the room: start again from a new one.
				for _, b := range bots {
					l.leave(ctx, b, g.room)
				}
			}
			l.pause(ctx, 100*time.Millisecond)
			continue
		}
		l.play(ctx, bots, g)
		l.account(bots, g)
		for _, b := range bots {
			if b.sess != nil {
				l.leave(ctx, b, g.room)
			}
		}
	}
}

// leave leaves room, trying again for up to 20 s (longer than any
// outage the suite injects): a failed leave keeps the session bound to
// the room, and the bot's next create or join would be refused.
func (l *load) leave(ctx context.Context, b *bot, room string) {
	b.mu.Lock()
	if b.room == room {
		b.room, b.base = "", 0
	}
	b.mu.Unlock()
	until := time.Now().Add(20 * time.Second)
	for ctx.Err() == nil && time.Now().Before(until) {
		err := b.roomCall(ctx, func(ctx context.Context, rc *roomrpc.Client) error {
			_, err := rc.Leave(ctx, &roompb.LeaveRequest{RoomID: &room})
			return err
		})
		if code := wire.CodeOf(err); code == "" || code == wire.CodeBadRequest || code == wire.CodeNotFound {
			return
		}
		l.pause(ctx, 100*time.Millisecond)
	}
}

// leaveOld leaves the room a create or join was refused for ("already in
// room <id>: leave it first": an earlier leave failed).
func (l *load) leaveOld(ctx context.Context, b *bot, err error) {
	const p = "already in room "
	msg := err.Error()
	i := strings.Index(msg, p)
	if wire.CodeOf(err) != wire.CodeConflict || i < 0 {
		return
	}
	id, _, _ := strings.Cut(msg[i+len(p):], ":")
	l.leave(ctx, b, id)
}

// setup creates and starts a game; errors are recorded by the calls.
func (l *load) setup(ctx context.Context, bots [2]*bot) (*game, error) {
	for _, b := range bots {
		if b.sess == nil {
			if err := b.connect(ctx); err != nil {
				return nil, err
			}
		}
	}
	g := &game{}
	var st *roompb.RoomState
	err := bots[0].roomCall(ctx, func(ctx context.Context, rc *roomrpc.Client) (err error) {
		st, err = rc.Create(ctx, &roompb.CreateRequest{Name: "chaos", Game: "race31", MaxPlayers: 2})
		return err
	})
	if err != nil {
		l.leaveOld(ctx, bots[0], err)
		return nil, err
	}
	g.room, g.base[0] = st.ID, st.Seq
	bots[0].setRoom(g.room, st.Seq)
	err = bots[1].roomCall(ctx, func(ctx context.Context, rc *roomrpc.Client) (err error) {
		st, err = rc.Join(ctx, &roompb.JoinRequest{RoomID: g.room})
		return err
	})
	if err != nil {
		l.leaveOld(ctx, bots[1], err)
		l.leave(ctx, bots[0], g.room)
		return nil, err
	}
	g.base[1] = st.Seq
	bots[1].setRoom(g.room, st.Seq)
	for _, b := range bots {
		if err := b.roomCall(ctx, func(ctx context.Context, rc *roomrpc.Client) error {
			_, err := rc.Ready(ctx, &roompb.ReadyRequest{Ready: true, RoomID: &g.room})
			return err
		}); err != nil {
			return g, err
		}
	}
	err = bots[0].roomCall(ctx, func(ctx context.Context, rc *roomrpc.Client) (err error) {
		st, err = rc.Start(ctx, &roompb.StartRequest{RoomID: &g.room})
		return err
	})
	if err != nil {
		return g, err
	}
	return g, g.sync(st)
}

// sync sets the game from a room state.
func (g *game) sync(st *roompb.RoomState) error {
	if st.Status == roompb.STATUS_FINISHED || st.Status == roompb.STATUS_CLOSED || st.Winner != "" {
		g.finished = true
		return nil
	}
	if st.Status != roompb.STATUS_PLAYING {
		return fmt.Errorf("room %s is %s", st.ID, st.Status)
	}
	var rs roompb.Race31State
	if err := thriftx.Unmarshal(st.GameState, &rs); err != nil {
		return err
	}
	if len(rs.Order) == 0 {
		return fmt.Errorf("room %s: no players in order", st.ID)
	}
	g.order, g.turn, g.total = rs.Order, int(rs.Turn), int(rs.Total)
	g.finished = rs.Winner != ""
	return nil
}

// play moves until the game is won or ctx ends.
func (l *load) play(ctx context.Context, bots [2]*bot, g *game) {
	byUser := func(u string) *bot {
		for _, b := range bots {
			if b.user == u {
				return b
			}
		}
		return nil
	}
	action, _ := thriftx.Marshal(&roompb.Race31Action{Add: 1})
	for ctx.Err() == nil && !g.finished {
		b := byUser(g.order[g.turn%len(g.order)])
		if b == nil {
			// A bot logged in again under a new user id? Ids are per
			// account, so this is a harness bug: stop this game.
			return
		}
		var seq int64
		err := b.roomCall(ctx, func(ctx context.Context, rc *roomrpc.Client) error {
			rep, err := rc.Act(ctx, &roompb.ActionRequest{Action: action})
			if err == nil {
				seq = rep.Seq
			}
			return err
		})
		if err == nil {
			l.st.addAck(ack{room: g.room, seq: seq, player: b.user, at: time.Now()})
			g.actsAcked++
			g.turn = (g.turn + 1) % len(g.order)
			g.total++
			if g.total >= l.target {
				g.finished = true
			}
			l.pause(ctx, max(l.pace, l.actPace))
			continue
		}
		g.actsFailed++
		if ctx.Err() != nil {
			return
		}
		if strings.Contains(err.Error(), "not in a room") {
			// The session lost its binding: join again (a no-op for a
			// member, which binds the room on the session).
			_ = b.roomCall(ctx, func(ctx context.Context, rc *roomrpc.Client) error {
				_, err := rc.Join(ctx, &roompb.JoinRequest{RoomID: g.room})
				return err
			})
		}
		// Read the room before moving again: the failed move may have
		// been applied.
		for ctx.Err() == nil {
			l.pause(ctx, 50*time.Millisecond)
			var st *roompb.RoomState
			err := b.roomCall(ctx, func(ctx context.Context, rc *roomrpc.Client) (err error) {
				st, err = rc.Get(ctx, &roompb.GetRequest{RoomID: &g.room})
				return err
			})
			if err == nil && g.sync(st) == nil {
				break
			}
		}
	}
}

// account counts each bot's missing pushes of g, from the room's last
// event seq (read with a fresh deadline, not recorded: the run may be
// stopping). Events still missing a while after the game are asked for
// once more (room.Get since_seq): a gap is what even that did not bring.
func (l *load) account(bots [2]*bot, g *game) {
	if g.room == "" {
		return
	}
	var last int64
	for _, b := range bots {
		if b.sess == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.deadline)
		st, err := b.rooms().Get(ctx, &roompb.GetRequest{RoomID: &g.room})
		cancel()
		if err == nil {
			last = st.Seq
			break
		}
	}
	if last == 0 {
		return
	}
	for i, b := range bots {
		n, first := b.missing(g.room, g.base[i], last, 2*time.Second)
		// The catch-up itself may meet a fault: a few tries.
		for try := 0; n > 0 && b.sess != nil && try < 3; try++ {
			if try > 0 {
				time.Sleep(500 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), l.deadline+l.grace)
			ok := b.catchUp(ctx, b.sess, g.room, "end") > 0
			cancel()
			n, first = b.missing(g.room, g.base[i], last, 0)
			if ok {
				break
			}
		}
		if n > 0 {
			l.st.addGap(gap{at: time.Now(), bot: b.name, room: g.room, missing: n, first: first, base: g.base[i], last: last})
		}
	}
}

// register registers user; a name already taken (by this run) is fine.
func register(ctx context.Context, s *client.Session, user, pass string) error {
	_, err := loginrpc.NewClient(s.CallThrift).Register(ctx, &loginpb.RegisterRequest{Username: user, Password: pass})
	if wire.CodeOf(err) == wire.CodeConflict {
		return nil
	}
	return err
}

// registerLogin registers user and logs the session in.
func registerLogin(ctx context.Context, s *client.Session, user, pass string) error {
	if err := register(ctx, s, user, pass); err != nil {
		return err
	}
	_, err := s.Login(ctx, user, pass)
	return err
}
