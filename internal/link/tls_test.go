package link

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
)

// Identities of the TLS tests.
var (
	brokerID = pki.Identity{Role: pki.RoleBroker, Name: "b1"}
	loginID  = pki.Identity{Role: pki.RoleService, Name: "login"}
	roomID   = pki.Identity{Role: pki.RoleService, Name: "room"}
)

// otherCA is a second CA, which the test binary's (testenv.PKI) does not
// trust.
var otherCA = sync.OnceValues(pki.NewEphemeral)

// creds returns the credentials of id from the test CA (or, with other,
// from otherCA).
func creds(t testing.TB, id pki.Identity, other bool) *pki.Credentials {
	t.Helper()
	if !other {
		return testenv.Credentials(t, id)
	}
	ca, err := otherCA()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Credentials(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// callerRecorder is a Handler that records CallerFrom of every request and
// echoes.
type callerRecorder struct {
	mu      sync.Mutex
	callers []string
	calls   atomic.Int32
}

func (r *callerRecorder) handle(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
	r.calls.Add(1)
	id, ok := CallerFrom(ctx)
	r.mu.Lock()
	if ok {
		r.callers = append(r.callers, id.String())
	} else {
		r.callers = append(r.callers, "-")
	}
	r.mu.Unlock()
	echo(ctx, req, reply)
}

func (r *callerRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.callers...)
}

func TestTLSCallerIdentity(t *testing.T) {
	var rec callerRecorder
	s := mustListen(t, "", ServerOptions{TLS: creds(t, loginID, false)}, rec.handle)
	opts := fastPeerOptions(t)
	opts.TLS, opts.ExpectIdentity = creds(t, brokerID, false), pki.Identity{Role: pki.RoleService, Name: "login"}
	p := mustDial(t, s.Endpoint(), opts, true)
	rep, err := p.Call(context.Background(), &platformpb.Envelope{Payload: []byte("hi")})
	if err != nil || string(rep.GetPayload()) != "hi" {
		t.Fatalf("Call over TLS: %v %v", rep, err)
	}
	if got := rec.seen(); len(got) != 1 || got[0] != "broker:b1" {
		t.Fatalf("CallerFrom saw %q, want [broker:b1]", got)
	}
	if st := s.Stats(); st.Guard.Rejected != 0 || st.Unauthenticated != 0 {
		t.Fatalf("server stats %+v", st)
	}

	// On a plain server CallerFrom reports nobody.
	var plain callerRecorder
	ps := mustListen(t, "", ServerOptions{}, plain.handle)
	pp := mustDial(t, ps.Endpoint(), fastPeerOptions(t), true)
	if _, err := pp.Call(context.Background(), &platformpb.Envelope{}); err != nil {
		t.Fatal(err)
	}
	if got := plain.seen(); len(got) != 1 || got[0] != "-" {
		t.Fatalf("plain server: CallerFrom saw %q, want nothing", got)
	}
}

// TestTLSRefusesWithoutCertificate: a plain zmq4 DEALER, or a TLS client
// without a certificate, gets nothing from a TLS ROUTER: its connection is
// closed, counted, and no Handler runs.
func TestTLSRefusesWithoutCertificate(t *testing.T) {
	var rec callerRecorder
	s := mustListen(t, "", ServerOptions{TLS: creds(t, loginID, false)}, rec.handle)
	addr := strings.TrimPrefix(s.Endpoint(), "tcp://")
	request := zmtpRequest(t, "raw-1")

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(request) // a plain DEALER's greeting, READY and request
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("plain connection not closed: %v (read %d bytes)", err, n)
	}

	pool := testenv.PKI(t).CA().Pool()
	tc := tls.Client(dialTCP(t, addr), &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err == nil { // TLS 1.3: the server's verdict comes with the first read
		tc.Write(request)
		if _, err := io.Copy(io.Discard, tc); err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Fatalf("TLS client without a certificate: %v, want certificate required", err)
		}
	}
	checkFor(t, 5*time.Second, "both connections counted", func() bool { return s.Stats().Guard.Rejected >= 2 })
	if n := rec.calls.Load(); n != 0 {
		t.Fatalf("the Handler ran %d times", n)
	}
}

// zmtpRequest is what a plain DEALER with identity id sends: greeting,
// READY, and one REQUEST.
func zmtpRequest(t testing.TB, id string) []byte {
	body := mustMarshal(t, &platformpb.Envelope{Kind: platformpb.Kind_KIND_REQUEST, RequestId: 1,
		DeadlineUnixNano: time.Now().Add(time.Minute).UnixNano()})
	b := append(zmtpGreeting(), readyCommand("Socket-Type", "DEALER", "Identity", id)...)
	return append(append(b, 0, byte(len(body))), body...)
}

func dialTCP(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTLSWrongCAOrIdentity: a Peer of another CA is refused by the server;
// a Peer expecting another identity than the server's refuses the server.
func TestTLSWrongCAOrIdentity(t *testing.T) {
	var rec callerRecorder
	s := mustListen(t, "", ServerOptions{TLS: creds(t, loginID, false)}, rec.handle)

	stranger := fastPeerOptions(t)
	stranger.TLS = creds(t, brokerID, true)
	p := mustDial(t, s.Endpoint(), stranger, false)
	checkFor(t, 5*time.Second, "stranger refused", func() bool {
		return s.Stats().Guard.Rejected >= 1 && p.Stats().DialErrors >= 1
	})

	wrong := fastPeerOptions(t)
	wrong.TLS, wrong.ExpectIdentity = creds(t, brokerID, false), roomID
	q := mustDial(t, s.Endpoint(), wrong, false)
	checkFor(t, 5*time.Second, "server with the wrong identity refused", func() bool { return q.Stats().DialErrors >= 1 })

	if p.Alive() || q.Alive() || p.Stats().Connects != 0 || q.Stats().Connects != 0 {
		t.Fatalf("a refused peer connected: %+v / %+v", p.Stats(), q.Stats())
	}
	if n := rec.calls.Load(); n != 0 {
		t.Fatalf("the Handler ran %d times", n)
	}
	// The right expectation works with the same certificate.
	right := fastPeerOptions(t)
	right.TLS, right.ExpectIdentity = creds(t, brokerID, false), pki.Identity{Role: pki.RoleService}
	mustDial(t, s.Endpoint(), right, true)
}

// tlsDealer is a zmq4 DEALER with a chosen identity over the guarded
// transport with TLS: what an attacker holding a certificate could run.
func tlsDealer(t *testing.T, ep string, c *pki.Credentials, id string) zmq4.Socket {
	t.Helper()
	zep, err := zmtpEndpoint(ep)
	if err != nil {
		t.Fatal(err)
	}
	gcfg := &guardConfig{maxMessage: DefaultMaxMessage, handshake: 5 * time.Second, writeTimeout: time.Second,
		tls: c.ClientConfig(pki.Identity{}), stats: new(guardStats), log: testLogger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	d := zmq4.NewDealer(withGuard(ctx, gcfg), zmq4.WithID(zmq4.SocketIdentity(id)), zmq4.WithDialerMaxRetries(0))
	t.Cleanup(func() { d.Close(); cancel() })
	if err := d.Dial(zep); err != nil {
		t.Fatal(err)
	}
	return d
}

// roundTrip sends a REQUEST on d and returns the reply.
func roundTrip(t *testing.T, d zmq4.Socket, id uint64) *platformpb.Envelope {
	t.Helper()
	req := mustMarshal(t, &platformpb.Envelope{Kind: platformpb.Kind_KIND_REQUEST, RequestId: id,
		DeadlineUnixNano: time.Now().Add(time.Minute).UnixNano()})
	if err := d.Send(zmq4.NewMsg(req)); err != nil {
		t.Fatal(err)
	}
	return recvEnvelope(t, d)
}

// TestTLSDuplicateRoutingIdentity: a connection whose READY names a
// routing identity that a live connection of another certificate holds is
// refused (it would receive the other's replies and pass for it); once the
// holder is gone the identity is free again.
func TestTLSDuplicateRoutingIdentity(t *testing.T) {
	var rec callerRecorder
	s := mustListen(t, "", ServerOptions{TLS: creds(t, loginID, false)}, rec.handle)
	victim := tlsDealer(t, s.Endpoint(), creds(t, brokerID, false), "shared-id")
	if rep := roundTrip(t, victim, 1); rep.GetRequestId() != 1 || rep.GetErrorCode() != "" {
		t.Fatalf("victim's reply %v", rep)
	}
	rejected := s.Stats().Guard.Rejected
	impostor := tlsDealer(t, s.Endpoint(), creds(t, roomID, false), "shared-id")
	checkFor(t, 5*time.Second, "impostor refused", func() bool { return s.Stats().Guard.Rejected == rejected+1 })
	// The impostor's socket has no connection left: its send goes nowhere.
	_ = impostor.Send(zmq4.NewMsg(mustMarshal(t, &platformpb.Envelope{Kind: platformpb.Kind_KIND_REQUEST, RequestId: 9})))
	if rep := roundTrip(t, victim, 2); rep.GetRequestId() != 2 {
		t.Fatalf("victim's reply %v", rep)
	}
	if got := rec.seen(); len(got) != 2 || got[0] != "broker:b1" || got[1] != "broker:b1" {
		t.Fatalf("callers %q, want the victim's twice", got)
	}

	// The holder leaves: its identity is forgotten and may be taken.
	victim.Close()
	checkFor(t, 5*time.Second, "identity released", func() bool {
		_, held := s.callers.lookup([]byte("shared-id"))
		return !held
	})
	next := tlsDealer(t, s.Endpoint(), creds(t, roomID, false), "shared-id")
	if rep := roundTrip(t, next, 3); rep.GetRequestId() != 3 {
		t.Fatalf("reply %v", rep)
	}
	if got := rec.seen(); got[len(got)-1] != "service:room" {
		t.Fatalf("callers %q, want service:room last", got)
	}
}

// TestTLSReadyWithoutIdentity: a certified client whose READY carries no
// usable routing identity is refused before zmq4 sees it.
func TestTLSReadyWithoutIdentity(t *testing.T) {
	var rec callerRecorder
	s := mustListen(t, "", ServerOptions{TLS: creds(t, loginID, false)}, rec.handle)
	addr := strings.TrimPrefix(s.Endpoint(), "tcp://")
	for _, ready := range [][]byte{
		readyCommand("Socket-Type", "DEALER"),
		readyCommand("Socket-Type", "DEALER", "Identity", ""),
		readyCommand("Socket-Type", "DEALER", "IDENTITY", "x"),
		readyCommand("Socket-Type", "DEALER", "Identity", "x", "identity", "y"),
		readyCommand("Socket-Type", "DEALER", "\xc4\xb1dentity", "y"),
	} {
		tc := tls.Client(dialTCP(t, addr), creds(t, brokerID, false).ClientConfig(pki.Identity{}))
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		tc.Write(append(zmtpGreeting(), ready...))
		if _, err := io.Copy(io.Discard, tc); err != nil {
			t.Fatalf("READY %q: connection not closed: %v", ready, err)
		}
		tc.Close()
	}
	if st := s.Stats(); st.Guard.Rejected != 5 || rec.calls.Load() != 0 {
		t.Fatalf("stats %+v, calls %d", st, rec.calls.Load())
	}
}

func TestCallerTable(t *testing.T) {
	tab := newCallerTable()
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	if err := tab.bind("x", brokerID, a); err != nil {
		t.Fatal(err)
	}
	if err := tab.bind("x", brokerID, a); err != nil {
		t.Fatalf("same certificate, second connection: %v", err)
	}
	if err := tab.bind("x", roomID, b); err == nil || !strings.Contains(err.Error(), "broker:b1") {
		t.Fatalf("another certificate: %v", err)
	}
	tab.release("x")
	if id, ok := tab.lookup([]byte("x")); !ok || id != brokerID {
		t.Fatalf("after one release: %v %v", id, ok)
	}
	tab.release("x")
	if _, ok := tab.lookup([]byte("x")); ok {
		t.Fatal("still bound after the last release")
	}
}

// TestTLSPublisherAdmitsBrokersOnly: with TLS a PUB socket admits only
// brokers by default; another role is refused at connect and never
// receives an event.
func TestTLSPublisherAdmitsBrokersOnly(t *testing.T) {
	pub := mustPublisher(t, "", PubOptions{TLS: creds(t, roomID, false)})
	var fromBroker, fromService received
	bs := mustSubscriber(t, pub.Endpoint(), SubOptions{TLS: creds(t, brokerID, false), ExpectIdentity: roomID}, fromBroker.deliver)
	ss := mustSubscriber(t, pub.Endpoint(), SubOptions{TLS: creds(t, loginID, false)}, fromService.deliver)
	for _, s := range []*Subscriber{bs, ss} {
		if err := s.Subscribe("room/1"); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, "service subscriber refused", func() bool {
		return ss.Stats().DialErrors >= 1 && pub.Stats().Guard.Rejected >= 1
	})
	publishUntil(t, pub, "room/1", "e", func() bool { return fromBroker.has("room/1 e") })
	if got := fromService.snapshot(); len(got) != 0 || ss.Stats().Connects != 0 {
		t.Fatalf("a service subscriber received %q (%+v)", got, ss.Stats())
	}

	// SubscriberRoles widens it (yellow's PUB admits everyone).
	open := mustPublisher(t, "", PubOptions{TLS: creds(t, roomID, false), SubscriberRoles: pki.Roles})
	var got received
	s := mustSubscriber(t, open.Endpoint(), SubOptions{TLS: creds(t, loginID, false)}, got.deliver)
	s.Subscribe("room/2")
	publishUntil(t, open, "room/2", "e", func() bool { return got.has("room/2 e") })
}

// TestHostileConnectionsTLS: the guard's protections hold over TLS, where
// it parses the plaintext: a certified peer sending what crashes or stalls
// zmq4 is closed, and a connection that never starts TLS is closed at the
// handshake timeout without holding up others.
func TestHostileConnectionsTLS(t *testing.T) {
	s := mustListen(t, "", ServerOptions{HandshakeTimeout: time.Second, TLS: creds(t, loginID, false)}, echo)
	addr := strings.TrimPrefix(s.Endpoint(), "tcp://")
	for _, tc := range hostileInputs() {
		t.Run(tc.name, func(t *testing.T) {
			c := tls.Client(dialTCP(t, addr), creds(t, brokerID, false).ClientConfig(pki.Identity{}))
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if err := c.Handshake(); err != nil {
				t.Fatal(err)
			}
			c.Write(tc.send)
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatalf("connection not closed by the server: %v", err)
			}
		})
	}
	if st := s.Stats(); st.Guard.Rejected < uint64(len(hostileInputs())) {
		t.Fatalf("Guard.Rejected = %d, want >= %d", st.Guard.Rejected, len(hostileInputs()))
	}
	silent := dialTCP(t, addr) // never sends a ClientHello
	defer silent.Close()
	opts := fastPeerOptions(t)
	opts.TLS = creds(t, brokerID, false)
	p := mustDial(t, s.Endpoint(), opts, true)
	silent.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.Copy(io.Discard, silent); err != nil {
		t.Fatalf("silent connection not closed: %v", err)
	}
	if rep, err := p.Call(context.Background(), &platformpb.Envelope{Payload: []byte("ok")}); err != nil || string(rep.GetPayload()) != "ok" {
		t.Fatalf("Call: %v %v", rep, err)
	}
}

// TestTLSIdleConnectionClosed: the idle timeout holds over TLS too.
func TestTLSIdleConnectionClosed(t *testing.T) {
	s := mustListen(t, "", ServerOptions{IdleTimeout: 400 * time.Millisecond, TLS: creds(t, loginID, false)}, echo)
	tlsDealer(t, s.Endpoint(), creds(t, brokerID, false), "quiet") // sends nothing after the handshake
	checkFor(t, 3*time.Second, "idle TLS connection closed", func() bool { return s.Stats().Guard.Idle == 1 })
	// The guard counts the idle close, then closes: the routing identity is
	// released a moment after the count.
	checkFor(t, 3*time.Second, "the closed connection's routing identity released", func() bool {
		_, held := s.callers.lookup([]byte("quiet"))
		return !held
	})
}
