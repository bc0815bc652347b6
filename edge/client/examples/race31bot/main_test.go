package main

// The bot against the real thing, as a newcomer runs it: build cmd/noon,
// start `noon dev` (every port 0), read the BrokerList URL from its banner,
// and play.

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
)

// Generous bounds: the machine may be busy, and the test built with -race.
const (
	buildTimeout  = 3 * time.Minute
	bannerTimeout = 60 * time.Second
	gameTimeout   = 60 * time.Second
	stopTimeout   = 40 * time.Second
)

// TestBotPlaysToTheEnd plays race31 on `noon dev` with 2 and 3 bots driven
// by pushes, and with 2 bots polling room.Get alone, in a room one of them
// created or one the matchmaker placed them in: each game has a
// winner, one of the bots, and every bot saw the same final total, the
// target; the winner got the room's reward from the game service.
func TestBotPlaysToTheEnd(t *testing.T) {
	listURL := startDev(t)
	for _, tc := range []struct {
		name     string
		players  int
		noPushes bool
		match    bool
	}{
		{"2 players", 2, false, false},
		{"3 players", 3, false, false},
		{"2 players polling only", 2, true, false},
		{"2 players from the matchmaker", 2, false, true},
		{"3 players from the matchmaker polling only", 3, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), gameTimeout)
			defer cancel()
			res, err := play(ctx, options{
				BrokerList: listURL,
				Players:    tc.players,
				Name:       "t",
				MaxTurns:   100,
				Poll:       100 * time.Millisecond,
				Out:        logWriter{t},
				NoPushes:   tc.noPushes,
				Match:      tc.match,
				Queue:      "race31",
			})
			if err != nil {
				t.Fatalf("play: %v", err)
			}
			if !strings.HasPrefix(res.Winner, "t") || res.Moves < 1 || res.Moves > 31 {
				t.Fatalf("result %+v: want a bot as winner after 1 to 31 moves", res)
			}
			if len(res.Totals) != tc.players {
				t.Fatalf("totals %v for %d players", res.Totals, tc.players)
			}
			for i, total := range res.Totals {
				if total != 31 {
					t.Fatalf("bot %d saw the final total %d, want 31 (every bot: %v)", i+1, total, res.Totals)
				}
			}
			// configs/dev.yaml rewards the winner with 10 coins (one game each).
			if !res.Rewarded || res.Wallet["coins"] != 10 {
				t.Fatalf("the winner's wallet %v (rewarded %v), want the room's reward of 10 coins", res.Wallet, res.Rewarded)
			}
		})
	}
}

// TestBotJoinsARoom: with -room, 2 bots join a room another player (a bot
// of the test's own, as a browser player would) created; the host starts
// the game once all three are ready and plays its turns; the game ends
// with the same winner for all.
func TestBotJoinsARoom(t *testing.T) {
	listURL := startDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), gameTimeout)
	defer cancel()
	o := options{BrokerList: listURL, Players: 2, Name: "j", MaxTurns: 100, Poll: 100 * time.Millisecond, Out: logWriter{t}}
	host, err := newBot(ctx, o, "host_"+randomHex(3), &printer{w: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer host.s.Close()
	st, err := host.rooms.Create(ctx, &roompb.CreateRequest{Name: "host's table", Game: gameName, MaxPlayers: 3})
	if err != nil {
		t.Fatal(err)
	}
	host.room, o.Room = st.ID, st.ID
	type outcome struct {
		res result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := play(ctx, o)
		done <- outcome{res, err}
	}()
	if _, err := host.rooms.Ready(ctx, &roompb.ReadyRequest{Ready: true}); err != nil {
		t.Fatal(err)
	}
	for ready := 0; ready < 3; {
		select {
		case r := <-done:
			t.Fatalf("play ended before the start: %+v", r)
		case <-time.After(100 * time.Millisecond):
		}
		if st, err = host.rooms.Get(ctx, &roompb.GetRequest{RoomID: &host.room}); err != nil {
			t.Fatal(err)
		}
		ready = 0
		for _, p := range st.Players {
			if p.Ready {
				ready++
			}
		}
	}
	if _, err := host.rooms.Start(ctx, &roompb.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := host.play(ctx, &sync.Once{}); err != nil {
		t.Fatalf("host: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("play: %v", r.err)
	}
	// The bots name a winner of theirs by username, anyone else by id.
	hostWon := host.winner == host.id
	if r.res.Room != st.ID || host.winner == "" || hostWon && r.res.Winner != host.id || !hostWon && !strings.HasPrefix(r.res.Winner, "j") {
		t.Fatalf("result %+v, the host saw %s win", r.res, host.winner)
	}
	for _, total := range append(r.res.Totals, int(host.game.Total)) {
		if total != 31 {
			t.Fatalf("final totals %v and the host's %d, want 31", r.res.Totals, host.game.Total)
		}
	}
}

// TestPlayChecksOptions: bad options fail before any connection.
func TestPlayChecksOptions(t *testing.T) {
	for _, o := range []options{
		{BrokerList: "http://127.0.0.1:1/brokerlist", Players: 1, Name: "bot"},
		{BrokerList: "http://127.0.0.1:1/brokerlist", Players: 5, Name: "bot"},
		{BrokerList: "http://127.0.0.1:1/brokerlist", Players: 2, Name: ""},
		{BrokerList: "http://127.0.0.1:1/brokerlist", Players: 2, Name: strings.Repeat("x", 21)},
		{BrokerList: "http://127.0.0.1:1/brokerlist", Players: 0, Name: "bot", Room: "r1"},
		{BrokerList: "http://127.0.0.1:1/brokerlist", Players: 1, Name: "bot", Room: "r1", Match: true},
	} {
		if _, err := play(context.Background(), o); err == nil {
			t.Errorf("play(%+v) succeeded", o)
		}
	}
}

// TestStrategyIsLegal: from every total the strategy adds 1..max_add
// without passing the target, and reaches it exactly when it can.
func TestStrategyIsLegal(t *testing.T) {
	for _, maxAdd := range []int32{1, 2, 3, 5} {
		for total := int32(0); total < 31; total++ {
			g := &roompb.Race31State{Total: total, Target: 31, MaxAdd: maxAdd}
			add := strategy(g)
			if add < 1 || add > maxAdd || total+add > 31 {
				t.Fatalf("max_add %d, total %d: adds %d", maxAdd, total, add)
			}
			if 31-total <= maxAdd && total+add != 31 {
				t.Fatalf("max_add %d, total %d: adds %d, missing the win", maxAdd, total, add)
			}
		}
	}
}

// startDev builds cmd/noon, starts `noon dev` on free ports and returns
// its BrokerList URL. The process is stopped (SIGINT, then killed) when the
// test ends.
func startDev(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts noon dev: skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "noon")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/noonhq/noon/cmd/noon").CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/noon: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "dev", "-config", "../../../../configs/dev.yaml",
		"-admin", "127.0.0.1:0",
		"-set", "yellow.router_addr=tcp://127.0.0.1:0", "-set", "yellow.pub_addr=tcp://127.0.0.1:0",
		"-set", "broker.edge.tcp_addr=127.0.0.1:0", "-set", "broker.edge.ws_addr=127.0.0.1:0",
		"-set", "brokerlist.addr=127.0.0.1:0", "-set", "services.login.http_addr=127.0.0.1:0",
		// Cheap password hashes: the test registers a user per bot.
		"-set", "services.login.argon2.memory_kib=1024", "-set", "services.login.argon2.time=1",
		// Each bot registers and logs in: more than login's 30 a minute
		// per address in all.
		"-set", "services.login.throttle.per_address.max=1000")
	out := &lines{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start noon dev: %v", err)
	}
	done := make(chan struct{})
	go out.collect(pr)
	go func() { _ = cmd.Wait(); _ = pw.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(stopTimeout):
			t.Errorf("noon dev did not stop within %v of SIGINT", stopTimeout)
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- output of noon dev:\n%s", out)
		}
	})

	deadline := time.Now().Add(bannerTimeout)
	for out.find("Ctrl-C stops everything") == "" {
		select {
		case <-done:
			t.Fatalf("noon dev exited before its banner:\n%s", out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner from noon dev within %v:\n%s", bannerTimeout, out)
		}
	}
	// "  BrokerList   http://127.0.0.1:PORT/brokerlist"
	fields := strings.Fields(out.find("  BrokerList "))
	if len(fields) != 2 || !strings.HasPrefix(fields[1], "http://") {
		t.Fatalf("no BrokerList URL in the banner:\n%s", out)
	}
	return fields[1]
}

// lines collects a process's output.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (b *lines) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b.mu.Lock()
		b.l = append(b.l, sc.Text())
		b.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line over the limit: keep the pipe flowing
}

// find returns the first line containing s, or "".
func (b *lines) find(s string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.l {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func (b *lines) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.l, "\n")
}

// logWriter sends the bot's play-by-play to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
