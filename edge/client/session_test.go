package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
)

// sessionWait bounds every wait for something that takes milliseconds.
const sessionWait = 15 * time.Second

// TestSessionReconnects: a Session logged in with a plain Call (login.Login
// over Call keeps the token) and in a room on broker 1 reconnects on its
// own, when broker 1 dies, to broker 2 and resumes the session there: it
// pushes EventResumed with no call of the game's, and it is in its room
// again (room.Get without a room id), with the room's pushes.
func TestSessionReconnects(t *testing.T) {
	opts := platformtest.Options(t, login.Module, room.Module)
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = "127.0.0.1:0"
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	p := platformtest.Start(t, opts)
	b2 := platformtest.StartBroker(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), sessionWait)
	defer cancel()

	o := client.DefaultOptions()
	o.Push = true
	b1Addr, b2Addr := p.Broker.TCPAddr().String(), b2.TCPAddr().String()
	s, err := client.Connect(ctx, client.SessionOptions{Brokers: []string{b1Addr, b2Addr}, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Broker() != b1Addr {
		t.Fatalf("connected to %s, want the first broker %s", s.Broker(), b1Addr)
	}
	user := "sess" + testenv.UniqueID(t)[:8]
	if err := s.CallThrift(ctx, loginrpc.MethodRegister, &loginpb.RegisterRequest{Username: user, Password: "password1"}, nil); err != nil {
		t.Fatal(err)
	}
	req, err := thriftx.Marshal(&loginpb.LoginRequest{Username: user, Password: "password1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Call(ctx, loginrpc.MethodLogin, req); err != nil {
		t.Fatal(err)
	}
	if s.Token() == "" || s.UserID() == "" {
		t.Fatal("a login made with Call left the session without its token")
	}
	var st roompb.RoomState
	if err := s.CallThrift(ctx, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "reconnect"}, &st); err != nil {
		t.Fatal(err)
	}
	// Broker 1 must have saved the room binding before it dies.
	testenv.CheckFor(t, sessionWait, "broker 1 saved the session's state", func() bool {
		return p.Broker.PendingStateSaves() == 0
	})

	killed := time.Now()
	p.Broker.Exit()
	for resumed := false; !resumed; {
		select {
		case push := <-s.Pushes():
			if push.Type == client.EventResumed {
				if string(push.Payload) != b2Addr {
					t.Fatalf("resumed on %q, want %s", push.Payload, b2Addr)
				}
				resumed = true
			}
		case <-ctx.Done():
			t.Fatal("no EventResumed after broker 1 died")
		}
	}
	t.Logf("resumed on broker 2 %v after broker 1's exit", time.Since(killed).Round(time.Microsecond))
	if s.Broker() != b2Addr {
		t.Fatalf("on %s after the resume, want %s", s.Broker(), b2Addr)
	}
	var got roompb.RoomState
	if err := s.CallThrift(ctx, roomrpc.MethodGet, &roompb.GetRequest{}, &got); err != nil || got.ID != st.ID {
		t.Fatalf("room.Get without a room id after the resume: %q, %v; want room %s", got.ID, err, st.ID)
	}

	// Resume with the token alone: logged in as the user, in the room.
	r, err := client.Resume(ctx, client.SessionOptions{Brokers: []string{b2Addr}, Options: o}, s.Token())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.UserID() != s.UserID() || r.Token() != s.Token() {
		t.Fatalf("Resume: user %q token %q, want %q %q", r.UserID(), r.Token(), s.UserID(), s.Token())
	}
	got = roompb.RoomState{}
	if err := r.CallThrift(ctx, roomrpc.MethodGet, &roompb.GetRequest{}, &got); err != nil || got.ID != st.ID {
		t.Fatalf("room.Get on a Resume: %q, %v; want room %s", got.ID, err, st.ID)
	}
	// A token that is not live: Resume fails.
	if _, err := client.Resume(ctx, client.SessionOptions{Brokers: []string{b2Addr}, Options: o}, "no-such-token"); err == nil ||
		err.Error() != "unauthenticated: session token refused on resume" {
		t.Fatalf("Resume with a dead token: %v", err)
	}
}

// TestSessionCallWaitsForABroker: a Call whose connection is gone, when no
// broker of the list answers (the list still names the one that left: a
// rolling restart), tries again with backoff and takes the broker the list
// names next, instead of failing at once.
func TestSessionCallWaitsForABroker(t *testing.T) {
	a, aAddr, _ := mustStart(t, nil)
	_, bAddr, _ := mustStart(t, nil)
	var (
		mu      sync.Mutex
		gone    bool // a has left
		fetched int  // fetches since a left
	)
	list := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		addr := aAddr
		if gone {
			fetched++
			if fetched > 1 { // the first fetch after a left still lists it
				addr = bAddr
			}
		}
		mu.Unlock()
		fmt.Fprintf(w, `{"version":"0.1.0","brokerList":{%q:0.1}}`, addr)
	}))
	defer list.Close()
	ctx, cancel := context.WithTimeout(context.Background(), sessionWait)
	defer cancel()
	s, err := client.Connect(ctx, client.SessionOptions{BrokerList: list.URL, NoBackgroundReconnect: true, Options: client.DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Call(ctx, "echo", []byte("a")); err != nil || string(got) != "a" || s.Broker() != aAddr {
		t.Fatalf("echo on a: %q, %v (broker %s)", got, err, s.Broker())
	}
	mu.Lock()
	gone = true
	mu.Unlock()
	a.Exit()
	got, err := s.Call(ctx, "echo", []byte("b"))
	if err != nil && strings.Contains(err.Error(), "connection lost") {
		// Sent on the old connection before the session saw it end.
		got, err = s.Call(ctx, "echo", []byte("b"))
	}
	if err != nil || string(got) != "b" {
		t.Fatalf("echo after a left: %q, %v", got, err)
	}
	if s.Broker() != bAddr {
		t.Fatalf("on %s, want b %s", s.Broker(), bAddr)
	}
	mu.Lock()
	defer mu.Unlock()
	if fetched < 2 {
		t.Fatalf("the list was fetched %d times after a left, want a retry", fetched)
	}
}
