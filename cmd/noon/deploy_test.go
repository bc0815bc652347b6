package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/client"
	echopb "github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/idl/gen/login"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/testenv"
)

// loadRate is the calls a second of each load loop.
const loadRate = 50

// load is traffic through the brokers while the cluster changes: callers
// of echo.Sleep, a player toggling ready in a room, logins. Every failure
// is kept.
type load struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	calls    atomic.Int64
	mu       sync.Mutex
	failed   int
	fails    []string // the first 20
	readies  int64    // room events acknowledged (ready toggles)
	firstSeq int64    // the room's seq before the first toggle
}

func (l *load) fail(what string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed++
	if len(l.fails) < 20 {
		l.fails = append(l.fails, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), what, err))
	}
}

// session connects a logged-in session (pushes on: it moves off a
// draining broker).
func clusterSession(ctx context.Context, t *testing.T, listURL, user string) *client.Session {
	t.Helper()
	opts := client.SessionOptions{BrokerList: listURL}
	opts.Options = client.DefaultOptions()
	opts.Options.Push = true
	s, err := client.Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.CallThrift(ctx, "login.Register", &login.RegisterRequest{Username: user, Password: "correct-horse"}, &login.RegisterReply{}); err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	if _, err := s.Login(ctx, user, "correct-horse"); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return s
}

// startLoad starts the traffic: 4 echo callers, one room player toggling
// ready in a room another player joined, one login loop.
func startLoad(ctx context.Context, t *testing.T, listURL string) *load {
	t.Helper()
	l := &load{stop: make(chan struct{})}
	id := strings.ReplaceAll(testenv.UniqueID(t), "t", "")[:10]
	host := clusterSession(ctx, t, listURL, "dh"+id)
	guest := clusterSession(ctx, t, listURL, "dg"+id)
	var cr roompb.RoomState
	if err := host.CallThrift(ctx, "room.Create", &roompb.CreateRequest{Name: "deploy", Game: "race31", MaxPlayers: 2}, &cr); err != nil {
		t.Fatalf("room.Create: %v", err)
	}
	room := cr.GetID()
	if err := guest.CallThrift(ctx, "room.Join", &roompb.JoinRequest{RoomID: room}, &roompb.RoomState{}); err != nil {
		t.Fatalf("room.Join: %v", err)
	}
	call := func(what string, f func(context.Context) error) bool {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.calls.Add(1)
		if err := f(cctx); err != nil {
			l.fail(what, err)
			return false
		}
		return true
	}
	// Each loop runs at most loadRate calls a second: under the broker's
	// per-connection rate limit (broker.edge.rate), which would answer
	// rate_limited.
	loop := func(f func(i int)) {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(time.Second / loadRate)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				f(i)
			}
		}()
	}
	for range 4 {
		s := clusterSession(ctx, t, listURL, fmt.Sprintf("de%d%s", l.calls.Add(1), id))
		loop(func(int) {
			call("echo.Sleep", func(ctx context.Context) error {
				return s.CallThrift(ctx, "echo.Sleep", &echopb.SleepRequest{Ms: 5}, &echopb.SleepReply{})
			})
		})
	}
	// The host toggles ready: each acknowledged toggle is one room event,
	// whose seq must follow the last acknowledged one's.
	var jst roompb.RoomState
	if err := host.CallThrift(ctx, "room.Get", &roompb.GetRequest{}, &jst); err != nil {
		t.Fatalf("room.Get: %v", err)
	}
	ready, seq := false, jst.GetSeq()
	l.firstSeq = seq
	loop(func(int) {
		var st roompb.RoomState
		if call("room.Ready", func(ctx context.Context) error {
			return host.CallThrift(ctx, "room.Ready", &roompb.ReadyRequest{Ready: !ready}, &st)
		}) {
			if st.GetSeq() != seq+1 {
				l.fail("room.Ready", fmt.Errorf("acknowledged with seq %d after seq %d", st.GetSeq(), seq))
			}
			ready, seq = !ready, st.GetSeq()
			atomic.AddInt64(&l.readies, 1)
		}
	})
	logins := clusterSession(ctx, t, listURL, "dl"+id)
	loop(func(int) {
		call("login.Login", func(ctx context.Context) error {
			var lr login.LoginReply
			return logins.CallThrift(ctx, "login.Login", &login.LoginRequest{Username: "dl" + id, Password: "correct-horse"}, &lr)
		})
	})
	t.Cleanup(func() {
		// The room's log has every acknowledged toggle: its last seq is
		// the one before the toggles plus one event per toggle.
		select {
		case <-l.stop:
		default:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var gr roompb.RoomState
		if err := host.CallThrift(ctx, "room.Get", &roompb.GetRequest{}, &gr); err != nil {
			t.Errorf("room.Get after the load: %v", err)
			return
		}
		if got, want := gr.GetSeq(), l.firstSeq+atomic.LoadInt64(&l.readies); got != want {
			t.Errorf("room %s: last seq %d after %d acknowledged events (want %d): events lost or doubled", room, got, atomic.LoadInt64(&l.readies), want)
		}
	})
	return l
}

// finish stops the load and fails the test on any failed request.
func (l *load) finish(t *testing.T, what string) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed > 0 {
		t.Errorf("%s: %d requests failed, e.g.:\n%s", what, l.failed, strings.Join(l.fails, "\n"))
	}
	t.Logf("%s: %d requests, %d failed", what, l.calls.Load(), l.failed)
}

// servedBy returns the requests each echo instance of the cluster served,
// by instance name, from their admin endpoints (their addresses from the
// cluster's log).
func servedBy(t *testing.T, c *proc, service string) map[string]int {
	t.Helper()
	re := regexp.MustCompile(`^(` + service + `-\d+) +\| .*"admin listening".*"addr":"([0-9.:]+)"`)
	addrs := map[string]string{}
	c.out.mu.Lock()
	for _, l := range c.out.lines {
		if m := re.FindStringSubmatch(l); m != nil {
			addrs[m[1]] = m[2] // the last start of a name wins
		}
	}
	c.out.mu.Unlock()
	out := map[string]int{}
	for name, addr := range addrs {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue // drained
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "noon_service_served_total") {
				f := strings.Fields(sc.Text())
				n, _ := strconv.ParseFloat(f[len(f)-1], 64)
				out[name] += int(n)
			}
		}
		resp.Body.Close()
	}
	return out
}

// TestClusterScaleAndDeploy: under load (echo callers, a room player,
// logins), noonctl scales echo 1 -> 4 -> 1, each new instance serving
// within a second of being listed, then rolls every pool and the brokers
// to a new process one at a time: no request fails and no room event is
// lost.
func TestClusterScaleAndDeploy(t *testing.T) {
	c, listURL, list := startCluster(t,
		"-set", "broker.drain_grace=2s",
		// The room player toggles as fast as it is answered.
		"-set", "services.room.member_rate.events=0")
	tlsDir := field(strings.SplitN(c.waitLine(t, "ephemeral CA in", time.Second), "ephemeral CA in", 2)[1], "")
	tlsDir = strings.TrimSuffix(tlsDir, ";")
	ctlURL := field(strings.SplitN(c.waitLine(t, "control:", time.Second), "control:", 2)[1], "")
	clusterChecks(t, listURL, list, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ctl := func(args ...string) string {
		t.Helper()
		out, err := noonctl(t, append([]string{"-cluster", ctlURL, "-tls", tlsDir}, args...)...)
		if err != nil {
			t.Fatalf("noonctl %v: %v\n%s", args, err, out)
		}
		return out
	}
	if out, err := noonctl(t, "-cluster", ctlURL, "scale", "echo", "2"); err == nil {
		t.Fatalf("scale without the admin certificate succeeded:\n%s", out)
	}

	l := startLoad(ctx, t, listURL)
	out := ctl("scale", "echo", "4")
	scaled := time.Now()
	t.Logf("scale echo 4:\n%s", out)
	var took time.Duration
	testenv.CheckFor(t, 20*time.Second, "all 4 echo instances serving", func() bool {
		n := 0
		for _, served := range servedBy(t, c, "echo") {
			if served > 0 {
				n++
			}
		}
		took = time.Since(scaled)
		return n >= 4
	})
	t.Logf("every new echo instance served within %v of the scale returning", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("new instances took %v to take traffic", took)
	}
	t.Logf("scale echo 1:\n%s", ctl("scale", "echo", "1"))
	l.finish(t, "scale 1 -> 4 -> 1")

	l = startLoad(ctx, t, listURL)
	t.Logf("deploy:\n%s", ctl("deploy"))
	l.finish(t, "rolling deploy")
}
