package broker

import (
	"strings"
	"testing"
	"time"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// stateBytes encodes a session state.
func stateBytes(tb testing.TB, st *loginpb.SessionState) []byte {
	tb.Helper()
	b, err := thriftx.Marshal(st)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// bindingOf is the binding key = value.
func bindingOf(key, value string) *platformpb.Binding {
	return &platformpb.Binding{Key: key, Value: value}
}

// checkRestored fails unless s, after restores, is still logged in as
// fuzzUser with bounded bindings of keys some route may bind and no topic
// of another user or of the platform.
func checkRestored(t *testing.T, b *Broker, s *session) {
	t.Helper()
	user, _, closed := s.current()
	if closed {
		return
	}
	if user != fuzzUser {
		t.Fatalf("the connection's user is %q, want %q", user, fuzzUser)
	}
	bindings, topics := s.snapshot()
	if len(bindings) > maxBindings || len(topics) > maxTopics {
		t.Fatalf("%d bindings, %d topics", len(bindings), len(topics))
	}
	for k, v := range bindings {
		if k == wire.KeyUser || !b.anyMayBind(k) || checkBindingValue(k, v) != "" {
			t.Fatalf("binding %q = %q restored", k, v)
		}
	}
	for _, tp := range topics {
		if !validTopic(tp) || strings.HasPrefix(tp, wire.KeyUser+"/") && tp != userTopic(fuzzUser) {
			t.Fatalf("topic %q restored", tp)
		}
	}
}

// FuzzDecodeState feeds arbitrary saved states to the decoder and to the
// restore of a logged-in connection: nothing panics, what decodes is
// within the bounds, and what is restored is what a reply could have
// made. Each input is also fed in two halves.
func FuzzDecodeState(f *testing.F) {
	b, s := startFuzzBroker(f)
	f.Add(stateBytes(f, &loginpb.SessionState{UserID: fuzzUser, Bindings: map[string]string{"room": "r1"}, Topics: []string{"news/all"}}))
	f.Add(stateBytes(f, &loginpb.SessionState{UserID: fuzzUser, Bindings: map[string]string{"user": "evil", "nope": "x", "kv": ""},
		Topics: []string{"user/u2", "_noon/revoked", "", "ok\x00"}}))
	f.Add(stateBytes(f, &loginpb.SessionState{UserID: "u2", Bindings: map[string]string{"room": "r2"}}))
	f.Add(stateBytes(f, &loginpb.SessionState{UserID: fuzzUser, Bindings: map[string]string{"kv": strings.Repeat("v", 300)}}))
	f.Add([]byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a map announcing more entries than bytes
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, in := range [][]byte{raw, raw[:len(raw)/2], raw[len(raw)/2:]} {
			st, err := decodeState(in)
			if err == nil && (len(st.GetBindings()) > loginpb.MAX_SESSION_STATE_BINDINGS || len(st.GetTopics()) > loginpb.MAX_SESSION_STATE_TOPICS) {
				t.Fatalf("decoded %d bindings, %d topics", len(st.GetBindings()), len(st.GetTopics()))
			}
			_, gen, _ := s.current()
			b.restoreState(s, gen, fuzzUser, in)
			checkRestored(t, b, s)
		}
	})
}

// TestDecodeStateLimits: a state over the byte bound, or with more
// bindings or topics than the bounds, is refused; at the bounds it
// decodes.
func TestDecodeStateLimits(t *testing.T) {
	full := &loginpb.SessionState{UserID: fuzzUser, Bindings: map[string]string{}}
	for i := range loginpb.MAX_SESSION_STATE_BINDINGS {
		full.Bindings[strings.Repeat("k", i+1)] = "v"
	}
	for i := range loginpb.MAX_SESSION_STATE_TOPICS {
		full.Topics = append(full.Topics, "t/"+strings.Repeat("x", i+1))
	}
	if _, err := decodeState(stateBytes(t, full)); err != nil {
		t.Fatalf("at the bounds: %v", err)
	}
	over := *full
	over.Topics = append(over.Topics, "t/more")
	if _, err := decodeState(stateBytes(t, &over)); err == nil || !strings.Contains(err.Error(), "65 topics, limit 64") {
		t.Fatalf("one topic too many: %v", err)
	}
	over = *full
	over.Bindings = map[string]string{"extra": "v"}
	for k, v := range full.Bindings {
		over.Bindings[k] = v
	}
	if _, err := decodeState(stateBytes(t, &over)); err == nil || !strings.Contains(err.Error(), "33 bindings, limit 32") {
		t.Fatalf("one binding too many: %v", err)
	}
	big := stateBytes(t, &loginpb.SessionState{UserID: strings.Repeat("u", loginpb.MAX_SESSION_STATE_BYTES)})
	if _, err := decodeState(big); err == nil || !strings.Contains(err.Error(), "exceeds 16384") {
		t.Fatalf("%d bytes: %v", len(big), err)
	}
	if _, err := decodeState([]byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Fatal("a truncated state decoded")
	}
}

// TestStateSnapshotAndRestore: a session's saved state holds its bindings
// and only the topics that follow from neither the user nor a binding;
// restoring it on another connection of the user makes the same bindings
// and topics, while every binding and topic a reply could not make is
// left out.
func TestStateSnapshotAndRestore(t *testing.T) {
	b, s := startFuzzBroker(t)
	_, gen, _ := s.current()
	if why := b.setBinding(s, gen, bindingOf("room", "r42")); why != "" {
		t.Fatal(why)
	}
	s.subscribe(b.hub, gen, "news/all")
	if _, _, ok := s.stateSnapshot(); ok {
		t.Fatal("a snapshot of a connection with no login session")
	}
	s.mu.Lock()
	s.login = "sid"
	s.mu.Unlock()
	id, st, ok := s.stateSnapshot()
	if !ok || id != "sid" || st.GetUserID() != fuzzUser || len(st.GetBindings()) != 1 || st.GetBindings()["room"] != "r42" ||
		len(st.GetTopics()) != 1 || st.GetTopics()[0] != "news/all" {
		t.Fatalf("snapshot %q %+v %v", id, st, ok)
	}

	// Restore on a fresh login of the same user (the bindings were
	// dropped with the change of user).
	b.authenticate(s, "someone-else", "", time.Time{})
	gen = b.authenticate(s, fuzzUser, "", time.Time{})
	if bd, _ := s.snapshot(); len(bd) != 0 {
		t.Fatalf("bindings after a change of user: %v", bd)
	}
	st.Bindings["user"] = "evil"
	st.Bindings["nope"] = "x"
	st.Bindings["kv"] = strings.Repeat("v", maxBindingValue+1)
	st.Topics = append(st.Topics, "user/u2", wire.ReservedTopicPrefix+"x", "")
	b.restoreState(s, gen, fuzzUser, stateBytes(t, st))
	bindings, topics := s.snapshot()
	if len(bindings) != 1 || bindings["room"] != "r42" {
		t.Fatalf("restored bindings %v, want room = r42 only", bindings)
	}
	want := []string{"news/all", "room/r42", userTopic(fuzzUser)}
	if strings.Join(topics, " ") != strings.Join(want, " ") {
		t.Fatalf("restored topics %v, want %v", topics, want)
	}

	// Another user's state restores nothing.
	b.authenticate(s, "u3", "", time.Time{})
	_, gen, _ = s.current()
	b.restoreState(s, gen, "u3", stateBytes(t, st))
	if bd, _ := s.snapshot(); len(bd) != 0 {
		t.Fatalf("u3 got %v from %s's state", bd, fuzzUser)
	}
}

// TestBindingValueNUL: a binding value with a NUL is refused on every path
// (a reply's binding, a directive, a restored state), since the link would
// refuse its topic (found by FuzzDecodeState on the restore path).
func TestBindingValueNUL(t *testing.T) {
	for _, v := range []string{"a\x00b", "\x00", "room\x00"} {
		if checkBindingValue("room", v) == "" {
			t.Errorf("checkBindingValue(room, %q) accepted", v)
		}
	}
	if why := checkBindingValue("room", "r-1"); why != "" {
		t.Errorf("checkBindingValue(room, r-1) = %q", why)
	}
}
