package broker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/noonhq/noon/broker"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// fakeStates is the fake login's store of session states: it keeps the
// last save of each session, and can hold saves at a gate.
type fakeStates struct {
	mu      sync.Mutex
	saved   map[string][]byte // by session id
	holders map[string]string // by session id
	saves   int
	entered chan struct{} // gets a value as a save starts, if it has room
	gate    chan struct{} // a save waits for it to close, when set
}

// handlers are the fake login's handlers with a state store:
// login.SaveSessionState, and login.Validate that returns the state to a
// resume_holder.
func (f *fakeStates) handlers() map[string]services.HandlerFunc {
	h := loginHandlers()
	h["login.SaveSessionState"] = wire.Typed(loginpb.NewSaveSessionStateRequest, func(_ context.Context, s *services.Session, req *loginpb.SaveSessionStateRequest) (*loginpb.SaveSessionStateReply, error) {
		if s.ID() != "" {
			return nil, wire.NewError(wire.CodeUnauthenticated, "an internal request")
		}
		f.mu.Lock()
		gate := f.gate
		f.mu.Unlock()
		select {
		case f.entered <- struct{}{}:
		default:
		}
		if gate != nil {
			<-gate
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.saves++
		if h := f.holders[req.SessionID]; h != "" && h != req.Holder {
			return &loginpb.SaveSessionStateReply{Result_: loginpb.SAVE_STATE_STALE}, nil
		}
		f.saved[req.SessionID] = req.State
		f.holders[req.SessionID] = req.Holder
		return &loginpb.SaveSessionStateReply{Result_: loginpb.SAVE_STATE_SAVED}, nil
	})
	h["login.Validate"] = wire.Typed(loginpb.NewValidateRequest, func(_ context.Context, s *services.Session, req *loginpb.ValidateRequest) (*loginpb.ValidateReply, error) {
		user, ok := strings.CutPrefix(req.SessionToken, "tok-")
		rep := &loginpb.ValidateReply{Valid: ok && user != "", UserID: user}
		if req.IsSetResumeHolder() && rep.Valid {
			if s.ID() != "" {
				return nil, wire.NewError(wire.CodeUnauthenticated, "an internal request")
			}
			f.mu.Lock()
			id := wire.SessionID(req.SessionToken)
			rep.State = f.saved[id]
			f.holders[id] = req.GetResumeHolder()
			f.mu.Unlock()
		}
		return rep, nil
	})
	return h
}

// stateOf returns the last saved state of the session with id, and the
// number of saves.
func (f *fakeStates) stateOf(id string) ([]byte, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.saved[id], f.saves
}

// state returns the last saved state of the session of token, and the
// number of saves.
func (f *fakeStates) state(t *testing.T, token string) (*loginpb.SessionState, int) {
	t.Helper()
	raw, saves := f.stateOf(wire.SessionID(token))
	if raw == nil {
		return nil, saves
	}
	var st loginpb.SessionState
	if err := thriftx.Unmarshal(raw, &st); err != nil {
		t.Fatalf("saved state: %v", err)
	}
	return &st, saves
}

// TestStateSavesCoalesce: while a session's save is in flight, its further
// changes make one more save, of the latest state, not one each; the
// saved state holds the bindings and the extra topics only; a resume on
// another broker restores them, and the old broker's later saves are
// stale.
func TestStateSavesCoalesce(t *testing.T) {
	y := mustStartYellow(t)
	f := &fakeStates{saved: map[string][]byte{}, holders: map[string]string{}, entered: make(chan struct{}, 1)}
	mustStartService(t, "login", f.handlers(), y, nil)
	mustStartService(t, "game", gameHandlers(), y, nil)
	b1 := mustStartBroker(t, y, nil)
	b2 := mustStartBroker(t, y, nil)
	for _, b := range []*testBroker{b1, b2} {
		waitRoutable(t, b, "login.Validate", encode(t, &loginpb.ValidateRequest{}))
		c := dial(t, b, transportTCP)
		c.callOK("login.Login", loginPayload(t, "probe", "pw"))
		checkFor(t, waitLong, "the broker routes game", func() bool { return c.call("game.Whoami", nil).first == "" })
		c.close()
	}

	c := dial(t, b1, transportTCP)
	c.hello(true, "")
	c.callOK("login.Login", loginPayload(t, "u1", "pw"))
	if st, n := f.state(t, "tok-u1"); st != nil || n != 0 {
		t.Fatalf("a login alone saved %+v (%d saves)", st, n)
	}

	// The first change's save is held in flight; ten more changes wait
	// behind it as one.
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	c.callOK("game.Sub", []byte("t/0"))
	<-f.entered
	for i := 1; i < 10; i++ {
		c.callOK("game.Sub", fmt.Appendf(nil, "t/%d", i))
	}
	c.callOK("game.Unsub", []byte("t/9"))
	close(gate)
	checkFor(t, waitLong, "the saves are done", func() bool { return broker.PendingStates(b1.Broker) == 0 })
	st, n := f.state(t, "tok-u1")
	if n != 2 {
		t.Fatalf("%d saves of 11 changes made while one was in flight, want 2", n)
	}
	want := []string{"t/0", "t/1", "t/2", "t/3", "t/4", "t/5", "t/6", "t/7", "t/8"}
	if st.GetUserID() != "u1" || len(st.GetBindings()) != 0 || !slices.Equal(st.GetTopics(), want) {
		t.Fatalf("saved %+v, want u1's topics %v", st, want)
	}
	if got := b1.counterWith(t, "broker_session_state_saves_total", "result", loginpb.SAVE_STATE_SAVED); got != 2 {
		t.Fatalf("broker_session_state_saves_total{result=saved} = %v, want 2", got)
	}

	// Resumed on broker 2 (the first connection still open): the topics
	// are back, with the user's.
	c2 := dial(t, b2, transportTCP)
	rep := c2.hello(true, "tok-u1")
	_, topics, ok := broker.SessionState(b2.Broker, rep.GetSessionID())
	if !ok || !slices.Equal(topics, append(slices.Clone(want), "user/u1")) {
		t.Fatalf("resumed topics %v (%v), want %v and user/u1", topics, ok, want)
	}
	if got := b2.counterWith(t, "broker_session_state_restores_total", "result", "restored"); got != 1 {
		t.Fatalf("broker_session_state_restores_total{result=restored} = %v, want 1", got)
	}
	// Broker 1's session changes on: its save is stale now, broker 2
	// holds the state.
	c.callOK("game.Sub", []byte("t/late"))
	checkFor(t, waitLong, "broker 1's stale save", func() bool {
		return b1.counterWith(t, "broker_session_state_saves_total", "result", loginpb.SAVE_STATE_STALE) == 1
	})
	c2.callOK("game.Sub", []byte("t/new"))
	checkFor(t, waitLong, "broker 2's save", func() bool {
		st, _ := f.state(t, "tok-u1")
		return slices.Contains(st.GetTopics(), "t/new") && !slices.Contains(st.GetTopics(), "t/late")
	})
}

// BenchmarkStateSaving measures what saving session states costs the
// requests that change them: game.Sub and game.Unsub in turn on one
// logged-in connection (each a change, so each marks a save), with
// saving on (the default) and off (state_save_method ""). Compare the
// two as a ratio.
func BenchmarkStateSaving(b *testing.B) {
	for _, on := range []bool{true, false} {
		name := "on"
		if !on {
			name = "off"
		}
		b.Run(name, func(b *testing.B) {
			y := mustStartYellow(b)
			f := &fakeStates{saved: map[string][]byte{}, holders: map[string]string{}, entered: make(chan struct{}, 1)}
			mustStartService(b, "login", f.handlers(), y, nil)
			mustStartService(b, "game", gameHandlers(), y, nil)
			tb := mustStartBroker(b, y, func(o *broker.Options) {
				if !on {
					o.StateSaveMethod = ""
				}
			})
			waitRoutable(b, tb, "login.Validate", encode(b, &loginpb.ValidateRequest{}))
			c := dial(b, tb, transportTCP)
			c.callOK("login.Login", loginPayload(b, "u1", "pw"))
			checkFor(b, waitLong, "the broker routes game", func() bool { return c.call("game.Whoami", nil).first == "" })
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					c.callOK("game.Sub", []byte("t/bench"))
				} else {
					c.callOK("game.Unsub", []byte("t/bench"))
				}
			}
			b.StopTimer()
			checkFor(b, waitLong, "the saves are done", func() bool { return broker.PendingStates(tb.Broker) == 0 })
			_, saves := f.stateOf(wire.SessionID("tok-u1"))
			b.ReportMetric(float64(saves)/float64(b.N), "saves/op")
		})
	}
}
