// Command race31bot is the Go client's example bot: N bots play race31, the
// room service's sample game, against a running noon, end to end over the
// client wire, the way a game client does.
//
//	make run                                      # or: go run ./cmd/noon dev
//	go run ./edge/client/examples/race31bot -players 3
//
// What it does, in order (each step is a few lines of play and bot below):
//
//  1. Each bot opens its own client.Session from the BrokerList, asking for
//     pushes, registers a user (login.Register) and logs in (Session.Login).
//  2. Bot 1 creates a race31 room (room.Create); the others join it by the
//     id in the reply (room.Join). Creating or joining binds the session to
//     the room, so the broker routes its later room.* calls to the room's
//     owner and pushes it the room's events as "@room.Event".
//  3. Everyone gets ready (room.Ready), then bot 1 starts the game
//     (room.Start).
//  4. Each bot waits for its turn, driven by the @room.Event pushes; when
//     no push comes for a while (they start only once the broker's
//     subscription has reached the room's instance) it asks room.Get. On
//     its turn it adds to the total (room.Act). The first bot to move also
//     tries one illegal move, to show the server's bad_request answer.
//  5. When someone reaches the target the room pushes room.finished: the
//     bot prints the winner and exits 0. It never hangs: -timeout bounds
//     the whole run and -max-turns the game.
//  6. The winner asks the game service for its wallet (game.GetWallet),
//     once the room's reward (services.room.rewards: coins and a "wins"
//     stat, granted by the room through game.Grant with the key
//     room:<id>:win) is in its ledger (game.ListLedger), and prints it.
//     Without a game service, or rewards, it says so and still exits 0.
//
// With -match the game starts from the matchmaker instead of step 2: every
// bot queues (match.Start in -queue, default "race31"), and when the
// matchmaker has placed them it pushes "@match.Matched" with the room and
// its players and binds each bot's connection to the room; no bot creates
// or joins anything. A bot that saw no push for a while asks match.Status,
// the polling fallback. The bots of one run share a "party" property,
// which the dev config's queues bucket by, so they are matched together.
//
// With -room <id> the bots join a room someone else created (a player in
// the browser, say: README, Play in the browser), get ready and wait for a
// member to start the game; -players may then be 1.
//
// Each bot registers and logs in, which login throttles per address
// (login.throttle.per_address: 30 a minute by default); a run of 4 bots
// uses 8, so many runs in a row get rate_limited for a minute.
//
// The race31 messages (Race31State, Race31Action, Race31Added) are Thrift
// structs of idl/room.thrift, carried as bytes inside the room's own
// messages; encode and decode below (de)serialize them with Thrift's
// compact protocol, as the wire does.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/edge/client"
	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
)

// What the bot speaks beside the methods (the generated stubs of
// loginrpc and roomrpc): the push type and event types of the room service
// (idl/room.thrift), and the error codes it acts on.
const (
	pushRoomEvent = "room.Event" // arrives as an "@room.Event" frame
	pushMatched   = "match.Matched"

	eventStarted  = "room.started"  // body: Race31State
	eventFinished = "room.finished" // player: the winner
	eventAdded    = "game.added"    // body: Race31Added
	eventTimeout  = "game.timeout"  // body: Race31Added (the server moved for a slow player)

	gameName = "race31"

	codeBadRequest  = "bad_request"
	codeUnavailable = "unavailable"
)

// options are play's settings (the command's flags).
type options struct {
	// BrokerList is the URL of the platform's BrokerList.
	BrokerList string
	// Players is how many bots play, 2..4.
	Players int
	// Name prefixes the bots' usernames: <name><n>_<random>.
	Name string
	// MaxTurns stops a game that runs longer than this many moves.
	MaxTurns int
	// Poll is how long a bot waits for a push before it asks room.Get.
	Poll time.Duration
	// Out receives the play-by-play (nil: discarded).
	Out io.Writer
	// NoPushes plays without asking for pushes, by polling room.Get alone
	// (for tests of the fallback).
	NoPushes bool
	// Match starts the game from the matchmaker's Queue instead of
	// room.Create and room.Join.
	Match bool
	// Queue is the matchmaker's queue with Match.
	Queue string
	// Room, when set, is a room to join (someone else created it and
	// starts the game) instead of creating one.
	Room string
}

// result is how a game ended.
type result struct {
	// Room is the room's id.
	Room string
	// Winner is the winning bot's username.
	Winner string
	// Moves is how many moves the game took.
	Moves int
	// Totals are the final total as each bot saw it (all the same).
	Totals []int
	// Wallet is the winner's wallet after the game (nil when the game
	// service did not answer); Rewarded says whether the room's reward was
	// in the winner's ledger.
	Wallet   map[string]int64
	Rewarded bool
}

func main() {
	os.Exit(run())
}

func run() int {
	o := options{Out: os.Stdout, Poll: 500 * time.Millisecond}
	flag.StringVar(&o.BrokerList, "brokerlist", "http://127.0.0.1:1050/brokerlist", "BrokerList `URL` of the platform")
	flag.IntVar(&o.Players, "players", 2, "number of bots in the room, 2 to 4")
	flag.StringVar(&o.Name, "name", "bot", "username `prefix` of the bots (a number and a random suffix are added)")
	flag.IntVar(&o.MaxTurns, "max-turns", 200, "give up when the game has not ended after this many moves")
	flag.BoolVar(&o.Match, "match", false, "start the game from the matchmaker (match.Start) instead of room.Create")
	flag.StringVar(&o.Queue, "queue", "race31", "the matchmaker's `queue` with -match")
	flag.StringVar(&o.Room, "room", "", "join this room `id` (created by someone else, who starts the game) instead of creating one")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	res, err := play(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "race31bot:", err)
		return 1
	}
	fmt.Fprintf(os.Stdout, "winner: %s after %d moves (room %s)\n", res.Winner, res.Moves, res.Room)
	if res.Wallet != nil {
		fmt.Fprintf(os.Stdout, "winner's coins: %d\n", res.Wallet["coins"])
	}
	return 0
}

// play runs one game from registration to the win and reports how it
// ended.
func play(ctx context.Context, o options) (result, error) {
	minBots := 2
	if o.Room != "" {
		minBots = 1 // the room has other players already
	}
	if o.Players < minBots || o.Players > 4 {
		return result{}, fmt.Errorf("race31 is for 2 to 4 players, not %d bots", o.Players)
	}
	if o.Room != "" && o.Match {
		return result{}, errors.New("-room and -match exclude each other")
	}
	if len(o.Name) == 0 || len(o.Name) > 20 {
		return result{}, fmt.Errorf("name prefix must be 1 to 20 characters, got %q", o.Name)
	}
	if o.MaxTurns <= 0 {
		o.MaxTurns = 200
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	out := &printer{w: o.Out}

	// 1. One session per bot: register, log in.
	suffix := randomHex(3)
	bots := make([]*bot, o.Players)
	defer func() {
		for _, b := range bots {
			if b != nil {
				_ = b.s.Close()
			}
		}
	}()
	for i := range bots {
		b, err := newBot(ctx, o, fmt.Sprintf("%s%d_%s", o.Name, i+1, suffix), out)
		if err != nil {
			return result{}, err
		}
		bots[i] = b
		out.printf("%s registered and logged in (user %s) on broker %s", b.name, b.id, b.s.Broker())
	}

	// 2. Bot 1 creates the room and the others join it, or the matchmaker
	// puts them in one.
	var (
		host *bot
		err  error
	)
	switch {
	case o.Match:
		host, err = matchmake(ctx, o, bots, suffix, out)
	case o.Room != "":
		host, err = joinRoom(ctx, o, bots, out)
	default:
		host, err = createAndJoin(ctx, o, bots, out)
	}
	if err != nil {
		return result{}, err
	}
	roomID := host.room

	// 3. Everyone ready, then the host starts (in someone else's room,
	// a member who is not a bot does).
	for _, b := range bots {
		if _, err := b.rooms.Ready(ctx, &roompb.ReadyRequest{Ready: true}); err != nil {
			return result{}, fmt.Errorf("%s: %s: %w", b.name, roomrpc.MethodReady, err)
		}
	}
	if o.Room != "" {
		out.printf("%d bot(s) ready in room %s: waiting for a member to start the game", len(bots), roomID)
	} else {
		st, err := host.rooms.Start(ctx, &roompb.StartRequest{})
		if err != nil {
			return result{}, fmt.Errorf("%s: %s: %w", host.name, roomrpc.MethodStart, err)
		}
		var g roompb.Race31State
		if err := decode(st.GameState, &g); err != nil || int(g.Turn) >= len(g.Order) {
			return result{}, fmt.Errorf("%s: bad game state %v: %v", roomrpc.MethodStart, &g, err)
		}
		out.printf("%s started the game: reach %d, add 1 to %d per move, %s moves first",
			host.name, g.Target, g.MaxAdd, nameOf(bots, g.Order[g.Turn]))
	}

	// 4. Each bot plays in its own goroutine; the first failure stops all.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		demo sync.Once // the illegal move, tried once per game
		wg   sync.WaitGroup
		errs = make([]error, len(bots))
	)
	for i, b := range bots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = b.play(ctx, &demo); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		return result{}, err
	}

	// 5. Everyone saw the end.
	res := result{Room: roomID, Winner: nameOf(bots, host.winner), Moves: int(host.game.Moves)}
	for _, b := range bots {
		res.Totals = append(res.Totals, int(b.game.Total))
	}
	if host.winner == "" {
		return res, fmt.Errorf("room %s ended (%s) without a winner", roomID, host.status)
	}
	for _, b := range bots {
		out.printf("%s saw the total end at %d (%d events from pushes, %d room.Get)", b.name, b.game.Total, b.pushes, b.gets)
	}
	out.printf("%s won: the total reached %d in %d moves", res.Winner, host.game.Total, res.Moves)

	// 6. The winner's reward, from the game service.
	for _, b := range bots {
		if b.id == host.winner {
			res.Wallet, res.Rewarded = b.reward(ctx, roomID)
		}
	}
	return res, nil
}

// rewardWait bounds the wait for the room's reward: the room grants it
// asynchronously, within milliseconds.
const rewardWait = 3 * time.Second

// reward waits (up to rewardWait) for the room's reward for room in the
// bot's ledger, then prints and returns its wallet; nil when the game
// service does not answer.
func (b *bot) reward(ctx context.Context, room string) (map[string]int64, bool) {
	gc := gamerpc.NewClient(b.s.CallThrift)
	key := "room:" + room + ":win" // the room's idempotency key for the win
	rewarded := false
	deadline := time.Now().Add(rewardWait)
	for !rewarded && time.Now().Before(deadline) {
		led, err := gc.ListLedger(ctx, &gamepb.ListLedgerRequest{Limit: 10})
		if err != nil {
			b.out.printf("%s: no wallet: the game service answered %v", b.name, err)
			return nil, false
		}
		for _, e := range led.Entries {
			rewarded = rewarded || e.IdempotencyKey == key
		}
		if !rewarded {
			select {
			case <-ctx.Done():
				return nil, false
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	w, err := gc.GetWallet(ctx, &gamepb.GetWalletRequest{})
	if err != nil {
		b.out.printf("%s: no wallet: the game service answered %v", b.name, err)
		return nil, false
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(w.Balances)) {
		parts = append(parts, fmt.Sprintf("%s %d", c, w.Balances[c]))
	}
	note := "the room's reward is in the ledger"
	if !rewarded {
		note = "no reward from the room (services.room.rewards unset?)"
	}
	b.out.printf("%s's wallet: %s (%s)", b.name, strings.Join(parts, ", "), note)
	return w.Balances, rewarded
}

// createAndJoin has the first bot create a race31 room and the others join
// it by the id in the reply; it returns the host.
func createAndJoin(ctx context.Context, o options, bots []*bot, out *printer) (*bot, error) {
	host := bots[0]
	var st *roompb.RoomState
	err := retry(ctx, func() error {
		var err error
		st, err = host.rooms.Create(ctx, &roompb.CreateRequest{
			Name: o.Name + "'s table", Game: gameName, MaxPlayers: int32(o.Players),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", host.name, roomrpc.MethodCreate, err)
	}
	out.printf("%s created room %s (%s, up to %d players)", host.name, st.ID, st.Game, st.MaxPlayers)
	for _, b := range bots {
		b.room = st.ID
	}
	for _, b := range bots[1:] {
		if _, err := b.rooms.Join(ctx, &roompb.JoinRequest{RoomID: st.ID}); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", b.name, roomrpc.MethodJoin, err)
		}
		out.printf("%s joined room %s", b.name, st.ID)
	}
	return host, nil
}

// joinRoom has every bot join the room o.Room, which someone else created;
// it returns the first bot.
func joinRoom(ctx context.Context, o options, bots []*bot, out *printer) (*bot, error) {
	for _, b := range bots {
		b.room = o.Room
		err := retry(ctx, func() error {
			_, err := b.rooms.Join(ctx, &roompb.JoinRequest{RoomID: o.Room})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", b.name, roomrpc.MethodJoin, o.Room, err)
		}
		out.printf("%s joined room %s", b.name, o.Room)
	}
	return bots[0], nil
}

// matchmake queues every bot in o.Queue and waits until the matchmaker has
// placed them all in one room; it returns the host (the player the match
// lists first: the oldest ticket).
func matchmake(ctx context.Context, o options, bots []*bot, party string, out *printer) (*bot, error) {
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(bots))
		got  = make([]*matchpb.Match, len(bots))
	)
	for i, b := range bots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = b.matchmake(ctx, o, party)
		}()
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		return nil, err
	}
	m := got[0]
	for i, b := range bots {
		if got[i].GetRoomID() != m.GetRoomID() {
			return nil, fmt.Errorf("%s was matched into room %s, %s into %s: the queue mixed this run with other players (use another -queue)",
				bots[0].name, m.GetRoomID(), b.name, got[i].GetRoomID())
		}
		b.room = m.GetRoomID()
	}
	if len(m.GetPlayers()) != len(bots) {
		return nil, fmt.Errorf("room %s has %d players, this run %d: the queue mixed this run with other players", m.GetRoomID(), len(m.GetPlayers()), len(bots))
	}
	host := bots[0]
	for _, b := range bots {
		if b.id == m.GetPlayers()[0] {
			host = b
		}
	}
	out.printf("the matchmaker placed %d bots in room %s (session %s); %s hosts", len(bots), m.GetRoomID(), m.GetSession(), host.name)
	return host, nil
}

// matchmake queues the bot and waits for its match: the "@match.Matched"
// push, or match.Status when no push came for a while.
func (b *bot) matchmake(ctx context.Context, o options, party string) (*matchpb.Match, error) {
	mc := matchrpc.NewClient(b.s.CallThrift)
	var start *matchpb.StartReply
	err := retry(ctx, func() error {
		var err error
		start, err = mc.Start(ctx, &matchpb.StartRequest{Queue: o.Queue, Strings: map[string]string{"party": party}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", b.name, matchrpc.MethodStart, err)
	}
	ticket := start.GetTicket().GetID()
	b.out.printf("%s queued in %s (ticket %s)", b.name, o.Queue, ticket)
	for {
		var t *matchpb.Ticket
		select {
		case p := <-b.s.Pushes():
			if p.Type != pushMatched {
				b.early = append(b.early, p) // a room event before the match: kept for play
				continue
			}
			var m matchpb.Matched
			if err := decode(p.Payload, &m); err != nil {
				return nil, fmt.Errorf("%s: @%s: %w", b.name, p.Type, err)
			}
			t = m.GetTicket()
		case <-time.After(b.poll):
			rep, err := mc.Status(ctx, &matchpb.StatusRequest{Ticket: ticket})
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", b.name, matchrpc.MethodStatus, err)
			}
			t = rep.GetTicket()
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: waiting for a match: %w", b.name, ctx.Err())
		}
		if t.GetID() != ticket {
			continue
		}
		switch t.GetState() {
		case matchpb.STATE_MATCHED:
			return t.GetMatch(), nil
		case matchpb.STATE_SEARCHING:
		default:
			return nil, fmt.Errorf("%s: ticket %s ended %s (%s)", b.name, ticket, t.GetState(), t.GetReason())
		}
	}
}

// bot is one player: its session and its view of the room.
type bot struct {
	name     string // username
	id       string // user id: the room knows players by it
	s        *client.Session
	rooms    *roomrpc.Client // room.* through s
	room     string
	out      *printer
	poll     time.Duration
	maxTurns int

	// The view, from room.Get and the @room.Event pushes.
	seq    int64  // seq of the last event in the view
	status string // open, playing, finished, closed
	winner string // user id
	game   roompb.Race31State
	acted  int64 // seq of the bot's last move: no other move before the view has it
	tries  int   // moves sent, legal or not
	pushes int   // events the view took from pushes
	gets   int   // room.Get calls (the first, gaps, no push for a while)
	// early are pushes that came while the bot waited for its match.
	early []client.Push
}

// newBot connects a session through the BrokerList (with pushes), registers
// name with a random password and logs in.
func newBot(ctx context.Context, o options, name string, out *printer) (*bot, error) {
	copts := client.DefaultOptions()
	copts.Push = !o.NoPushes // room events come as @room.Event pushes
	copts.ClientName = "race31bot"
	var s *client.Session
	err := retry(ctx, func() error {
		var err error
		s, err = client.Connect(ctx, client.SessionOptions{BrokerList: o.BrokerList, Options: copts})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connect via %s (is `noon dev` running?): %w", o.BrokerList, err)
	}
	password := randomHex(16)
	err = retry(ctx, func() error {
		_, err := loginrpc.NewClient(s.CallThrift).Register(ctx, &loginpb.RegisterRequest{Username: name, Password: password})
		return err
	})
	if err == nil {
		err = retry(ctx, func() error {
			_, err := s.Login(ctx, name, password)
			return err
		})
	}
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &bot{name: name, id: s.UserID(), s: s, rooms: roomrpc.NewClient(s.CallThrift), out: out, poll: o.Poll, maxTurns: o.MaxTurns}, nil
}

// play moves whenever it is the bot's turn until the room's game is over.
func (b *bot) play(ctx context.Context, demo *sync.Once) error {
	if err := b.refresh(ctx); err != nil {
		return err
	}
	for _, p := range b.early {
		if err := b.apply(ctx, p); err != nil {
			return err
		}
	}
	b.early = nil
	for {
		switch {
		case b.status == roompb.STATUS_FINISHED || b.status == roompb.STATUS_CLOSED:
			return nil
		case b.myTurn():
			if int(b.game.Moves) >= b.maxTurns || b.tries > b.maxTurns {
				return fmt.Errorf("%s: no winner after %d moves (-max-turns %d)", b.name, b.game.Moves, b.maxTurns)
			}
			if err := b.move(ctx, demo); err != nil {
				return err
			}
		}
		select {
		case p := <-b.s.Pushes():
			if err := b.apply(ctx, p); err != nil {
				return err
			}
		case <-time.After(b.poll): // no push for a while: ask
			if err := b.refresh(ctx); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for the game: %w", b.name, ctx.Err())
		}
	}
}

// myTurn reports whether the view says the bot is to move, and its last
// move is in the view already.
func (b *bot) myTurn() bool {
	g := &b.game
	return b.status == roompb.STATUS_PLAYING && g.Winner == "" && g.Total < g.Target &&
		b.seq >= b.acted && int(g.Turn) < len(g.Order) && g.Order[g.Turn] == b.id
}

// move plays the bot's turn; the first move of the game starts with an
// illegal one, to show what the server says.
func (b *bot) move(ctx context.Context, demo *sync.Once) error {
	g := &b.game
	var demoErr error
	demo.Do(func() {
		add := g.MaxAdd + 1
		_, err := b.act(ctx, add)
		if !errors.Is(err, &client.Error{Code: codeBadRequest}) {
			demoErr = fmt.Errorf("%s: illegal move (add %d): the server answered %v, want %s", b.name, add, err, codeBadRequest)
			return
		}
		b.out.printf("%s tries to add %d, which is illegal: %v", b.name, add, err)
	})
	if demoErr != nil {
		return demoErr
	}

	// Printed before it is sent: the next player can only move once the
	// server has applied it, so the lines come out in the game's order.
	add := strategy(g)
	b.out.printf("move %2d: %s adds %d, total %d -> %d", g.Moves+1, b.name, add, g.Total, g.Total+add)
	seq, err := b.act(ctx, add)
	if errors.Is(err, &client.Error{Code: codeBadRequest}) {
		// The view was behind (the turn timed out, say): look again.
		b.out.printf("%s: move refused (%v); reloading the room", b.name, err)
		return b.refresh(ctx)
	}
	if err != nil {
		return fmt.Errorf("%s: %s: %w", b.name, roomrpc.MethodAct, err)
	}
	b.acted = seq
	return nil
}

// strategy is the classic winning play: leave the others a multiple of
// max_add+1 short of the target when possible, else add 1.
func strategy(g *roompb.Race31State) int32 {
	left := g.Target - g.Total
	add := left % (g.MaxAdd + 1)
	if add == 0 {
		add = 1
	}
	return add
}

// act sends a Race31Action and returns the seq of the event it caused.
func (b *bot) act(ctx context.Context, add int32) (int64, error) {
	b.tries++
	action, err := encode(&roompb.Race31Action{Add: add})
	if err != nil {
		return 0, err
	}
	rep, err := b.rooms.Act(ctx, &roompb.ActionRequest{Action: action, RoomID: &b.room})
	if err != nil {
		return 0, err
	}
	return rep.Seq, nil
}

// apply updates the view with a pushed event. Each room's events have
// consecutive seqs: an old one is already in the view, and a gap (a push
// lost, or sent before the subscription was up) means asking room.Get.
func (b *bot) apply(ctx context.Context, p client.Push) error {
	if p.Type != pushRoomEvent {
		return nil
	}
	var e roompb.Event
	if err := decode(p.Payload, &e); err != nil {
		return fmt.Errorf("%s: @%s: %w", b.name, p.Type, err)
	}
	if e.RoomID != b.room || e.Seq <= b.seq {
		return nil
	}
	if e.Seq > b.seq+1 {
		return b.refresh(ctx)
	}
	b.seq = e.Seq
	b.pushes++
	switch e.Type {
	case eventStarted:
		b.status, b.game = roompb.STATUS_PLAYING, roompb.Race31State{}
		return decode(e.Body, &b.game)
	case eventAdded, eventTimeout:
		var a roompb.Race31Added
		if err := decode(e.Body, &a); err != nil {
			return fmt.Errorf("%s: %s: %w", b.name, e.Type, err)
		}
		b.game.Total = a.Total
		b.game.Moves++
		if i := slices.Index(b.game.Order, a.NextPlayer); i >= 0 {
			b.game.Turn = int32(i)
		}
		if e.Type == eventTimeout && e.Player == b.id {
			b.out.printf("%s was too slow: the server added %d for it, total %d", b.name, a.Add, a.Total)
		}
	case eventFinished:
		b.status, b.winner, b.game.Winner = roompb.STATUS_FINISHED, e.Player, e.Player
	case "room.ready", "room.unready", "room.joined":
	default: // someone left, the host changed, the room closed: re-read it
		return b.refresh(ctx)
	}
	return nil
}

// refresh replaces the view with the room's state.
func (b *bot) refresh(ctx context.Context) error {
	b.gets++
	st, err := b.rooms.Get(ctx, &roompb.GetRequest{RoomID: &b.room})
	if err != nil {
		return fmt.Errorf("%s: %s: %w", b.name, roomrpc.MethodGet, err)
	}
	b.seq, b.status, b.winner = st.Seq, st.Status, st.Winner
	b.game = roompb.Race31State{}
	if len(st.GameState) > 0 {
		if err := decode(st.GameState, &b.game); err != nil {
			return fmt.Errorf("%s: game state: %w", b.name, err)
		}
	}
	return nil
}

// retry calls f until it succeeds, fails for good, or ctx ends. Right
// after `noon dev` starts, the BrokerList may not list the broker yet
// (client.ErrNoBrokers) and the broker may not know a service yet
// (unavailable): both pass within a heartbeat or two.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || !(errors.Is(err, client.ErrNoBrokers) || errors.Is(err, &client.Error{Code: codeUnavailable})) {
			return err
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
	}
}

// firstError returns the first error that is not a mere cancellation
// (which the first failure caused in the other bots), else the first.
func firstError(errs []error) error {
	var first error
	for _, err := range errs {
		switch {
		case err == nil:
		case !errors.Is(err, context.Canceled):
			return err
		case first == nil:
			first = err
		}
	}
	return first
}

// nameOf returns the username of the bot with user id id.
func nameOf(bots []*bot, id string) string {
	for _, b := range bots {
		if b.id == id {
			return b.name
		}
	}
	return id
}

// encode serializes a Thrift struct with the compact protocol.
func encode(s thrift.TStruct) ([]byte, error) {
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTCompactProtocolConf(buf, nil)
	if err := s.Write(context.Background(), p); err != nil {
		return nil, err
	}
	if err := p.Flush(context.Background()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decode deserializes b, Thrift compact, into s.
func decode(b []byte, s thrift.TStruct) error {
	buf := thrift.NewTMemoryBufferLen(len(b))
	_, _ = buf.Write(b)
	return s.Read(context.Background(), thrift.NewTCompactProtocolConf(buf, nil))
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// printer writes whole lines for several goroutines at once.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}
