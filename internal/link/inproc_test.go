package link

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
)

// inprocHandler echoes, records the caller's identity, and for "block"
// waits for its context to end and records why.
type inprocHandler struct {
	callerRecorder
	blocked atomic.Int32
	ended   chan error
}

func newInprocHandler() *inprocHandler { return &inprocHandler{ended: make(chan error, 16)} }

func (h *inprocHandler) handle(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
	if req.GetMethod() == "block" {
		h.blocked.Add(1)
		<-ctx.Done()
		h.ended <- ctx.Err()
		reply(&platformpb.Envelope{})
		return
	}
	h.callerRecorder.handle(ctx, req, reply)
}

// TestInProcessLink: a Peer of the process of a Server with InProcess
// links without a socket, with the handshake's checks (a certificate of
// another CA, a server of another identity, a plain peer to a TLS server
// are refused), the caller's identity, Call and Start, deadlines with
// CANCEL, the in-flight bound, inline handlers and the server's message
// limit; a Server's Close fails its calls unavailable.
func TestInProcessLink(t *testing.T) {
	h := newInprocHandler()
	s := mustListen(t, "", ServerOptions{
		InProcess: true, TLS: creds(t, loginID, false), MaxInFlight: 2, MaxMessage: 64 << 10,
		Inline: func(m string) bool { return m == "inline" },
	}, h.handle)
	opts := fastPeerOptions(t)
	opts.TLS, opts.ExpectIdentity = creds(t, brokerID, false), pki.Identity{Role: pki.RoleService, Name: "login"}
	p := mustDial(t, s.Endpoint(), opts, true)
	if ps, ss := p.Stats(), s.Stats(); ps.InProcess != 1 || ps.Connects != 1 || ss.InProcess != 1 {
		t.Fatalf("not an in-process link: peer %+v, server %+v", ps, ss)
	}
	if _, err := echoCall(p, "m", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got := h.seen(); len(got) != 1 || got[0] != "broker:b1" {
		t.Fatalf("CallerFrom saw %q, want [broker:b1]", got)
	}
	if _, err := echoCall(p, "inline", []byte("on the caller's goroutine")); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Inline != 1 {
		t.Fatalf("inline runs %d, want 1", st.Inline)
	}
	// Start: the reply reaches fn (here before Start returns: the handler
	// ran inline).
	got := make(chan string, 1)
	err := p.Start(&platformpb.Envelope{Method: "inline", Payload: []byte("started")}, time.Now().Add(5*time.Second),
		func(rep *platformpb.Envelope, err error) { got <- fmt.Sprintf("%s %v", rep.GetPayload(), err) })
	if err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "started <nil>" {
		t.Fatalf("Start: %s", g)
	}

	// A canceled call: the caller returns, the CANCEL ends the handler's
	// context.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Call(ctx, &platformpb.Envelope{Method: "block"})
		errc <- err
	}()
	checkFor(t, 5*time.Second, "blocked", func() bool { return h.blocked.Load() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled call: %v", err)
	}
	if e := <-h.ended; !errors.Is(e, context.Canceled) {
		t.Fatalf("the handler's context ended with %v, want canceled", e)
	}
	// The in-flight bound: two blocked (until their deadlines), the third
	// is refused. While one is blocked, an inline method still runs
	// inline: on its caller's goroutine it holds up nobody else.
	block := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = p.Call(ctx, &platformpb.Envelope{Method: "block"})
	}
	go block()
	checkFor(t, 5*time.Second, "one blocked", func() bool { return h.blocked.Load() == 2 })
	if _, err := echoCall(p, "inline", []byte("beside a blocked one")); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Inline != 3 {
		t.Fatalf("inline runs %d, want 3", st.Inline)
	}
	go block()
	checkFor(t, 5*time.Second, "two blocked", func() bool { return h.blocked.Load() == 3 })
	rep, err := echoCall(p, "m", nil)
	if err != nil || rep.GetErrorCode() != "overloaded" {
		t.Fatalf("third call: %v %v, want overloaded", rep, err)
	}
	for range 2 {
		<-h.ended
	}
	// Over the server's message limit: refused, and the link dies as a
	// connection would.
	if _, err := echoCall(p, "m", make([]byte, 65<<10)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("an oversized request: %v, want unavailable", err)
	}
	if st := s.Stats(); st.Guard.Rejected != 1 {
		t.Fatalf("server rejected %d, want 1", st.Guard.Rejected)
	}
	checkFor(t, 5*time.Second, "relinked", func() bool { return p.Alive() && p.Stats().InProcess == 2 })

	// Close: a blocked call fails unavailable, and the peer's redial (now
	// over TCP, to a closed port) fails.
	done := make(chan error, 1)
	go func() {
		_, err := p.Call(context.Background(), &platformpb.Envelope{Method: "block"})
		done <- err
	}()
	checkFor(t, 5*time.Second, "blocked again", func() bool { return h.blocked.Load() == 4 })
	s.Close()
	if err := <-done; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("call across Close: %v, want unavailable", err)
	}
	checkFor(t, 5*time.Second, "redial fails", func() bool { return p.Stats().DialErrors >= 1 })
	if st := p.Stats(); st.InProcess != 2 {
		t.Fatalf("in-process links %d after Close, want 2", st.InProcess)
	}
}

// TestInProcessRefused: the handshake's refusals hold in-process.
func TestInProcessRefused(t *testing.T) {
	var rec callerRecorder
	s := mustListen(t, "", ServerOptions{InProcess: true, TLS: creds(t, loginID, false)}, rec.handle)
	refused := func(name string, opts PeerOptions) {
		t.Helper()
		p := mustDial(t, s.Endpoint(), opts, false)
		checkFor(t, 5*time.Second, name+" refused", func() bool { return p.Stats().DialErrors >= 2 })
		if st := p.Stats(); p.Alive() || st.Connects != 0 || st.InProcess != 0 {
			t.Fatalf("%s connected: %+v", name, st)
		}
		p.Close()
	}
	stranger := fastPeerOptions(t)
	stranger.TLS = creds(t, brokerID, true)
	refused("a certificate of another CA", stranger)
	wrong := fastPeerOptions(t)
	wrong.TLS, wrong.ExpectIdentity = creds(t, brokerID, false), roomID
	refused("a server of another identity", wrong)
	refused("a peer without a certificate", fastPeerOptions(t))
	if n := rec.calls.Load(); n != 0 {
		t.Fatalf("the Handler ran %d times", n)
	}
	if st := s.Stats(); st.InProcess != 0 || st.Guard.Rejected < 2 {
		t.Fatalf("server stats %+v", st)
	}

	// A plain server: a plain peer links in-process, a peer that requires
	// TLS does not.
	plain := mustListen(t, "", ServerOptions{InProcess: true}, rec.handle)
	p := mustDial(t, plain.Endpoint(), fastPeerOptions(t), true)
	if _, err := echoCall(p, "m", []byte("plain")); err != nil || p.Stats().InProcess != 1 {
		t.Fatalf("plain in-process: %v %+v", err, p.Stats())
	}
	tlsPeer := fastPeerOptions(t)
	tlsPeer.TLS = creds(t, brokerID, false)
	q := mustDial(t, plain.Endpoint(), tlsPeer, false)
	checkFor(t, 5*time.Second, "TLS peer refused", func() bool { return q.Stats().DialErrors >= 2 })
	if q.Alive() || q.Stats().InProcess != 0 {
		t.Fatalf("a TLS peer linked to a plain server: %+v", q.Stats())
	}

	// Without InProcess, the same process links over TCP.
	tcp := mustListen(t, "", ServerOptions{}, rec.handle)
	r := mustDial(t, tcp.Endpoint(), fastPeerOptions(t), true)
	if _, err := echoCall(r, "m", []byte("tcp")); err != nil || r.Stats().InProcess != 0 {
		t.Fatalf("over TCP: %v %+v", err, r.Stats())
	}
}

// TestInProcessConcurrent: many callers, inline and not, through one
// in-process link, with Start and Call mixed.
func TestInProcessConcurrent(t *testing.T) {
	s := mustListen(t, "", ServerOptions{InProcess: true, TLS: creds(t, loginID, false), Inline: func(m string) bool { return m == "inline" }}, echo)
	opts := fastPeerOptions(t)
	opts.TLS = creds(t, brokerID, false)
	p := mustDial(t, s.Endpoint(), opts, true)
	runCallers(t, 16, 200, func(caller, i int) error {
		method := "m"
		if i%2 == 0 {
			method = "inline"
		}
		payload := fmt.Appendf(nil, "%d/%d", caller, i)
		if caller%2 == 0 {
			_, err := echoCall(p, method, payload)
			return err
		}
		got := make(chan error, 1)
		if err := p.Start(&platformpb.Envelope{Method: method, Payload: payload}, time.Now().Add(10*time.Second), func(rep *platformpb.Envelope, err error) {
			if err == nil && string(rep.GetPayload()) != string(payload) {
				err = fmt.Errorf("reply %q to %q", rep.GetPayload(), payload)
			}
			got <- err
		}); err != nil {
			return err
		}
		return <-got
	})
	if st := s.Stats(); st.Requests != 16*200 {
		t.Fatalf("server requests %d", st.Requests)
	}
}
