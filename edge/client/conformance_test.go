package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/idl/conformance"
	edgeapi "github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/methods"
	"github.com/noonhq/noon/internal/thriftx"
)

// conformanceDir holds the golden vectors (see package conformance).
const conformanceDir = "../../idl/conformance"

func readVectors(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(conformanceDir, name))
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// TestConformanceFrames: every good frame encodes bit for bit and decodes
// (as a stream and as a WebSocket message) to its parts; every bad frame
// is rejected with bad_frame and the Go decoder's exact text.
func TestConformanceFrames(t *testing.T) {
	var f conformance.Frames
	readVectors(t, "frames.json", &f)
	if f.MaxFrame != frame.DefaultMaxFrame || f.MaxMethod != frame.DefaultMaxMethod || f.MaxErr != frame.DefaultMaxErr || f.MinFrame != frame.MinFrame {
		t.Errorf("limits %d/%d/%d/%d do not match the codec's", f.MaxFrame, f.MaxMethod, f.MaxErr, f.MinFrame)
	}
	kinds := map[string]int{}
	for _, v := range f.Vectors {
		kinds[v.Kind]++
		t.Run(v.Name, func(t *testing.T) {
			wireBytes := unhex(t, v.Hex)
			if v.Kind == conformance.KindBad {
				checkBadFrame(t, v, wireBytes)
				return
			}
			payload := unhex(t, *v.PayloadHex)
			var enc []byte
			var first string
			switch v.Kind {
			case conformance.KindRequest:
				first = *v.Method
				enc = frame.AppendRequest(nil, first, payload)
			case conformance.KindReply:
				first = *v.Err
				enc = frame.AppendResponse(nil, first, payload)
			case conformance.KindPush:
				first = "@" + *v.Event
				enc = frame.AppendPush(nil, *v.Event, payload)
			default:
				t.Fatalf("kind %q", v.Kind)
			}
			if *v.First != first {
				t.Errorf("first = %q, want %q", *v.First, first)
			}
			if !bytes.Equal(enc, wireBytes) {
				t.Errorf("encoded % x\nwant    % x", enc, wireBytes)
			}
			r := frame.NewReaderSize(bytes.NewReader(wireBytes), frame.Limits{}, 16)
			read, decode := r.ReadResponse, frame.DecodeResponseFrame
			if v.Kind == conformance.KindRequest {
				read, decode = r.ReadRequest, frame.DecodeRequestFrame
			}
			for how, dec := range map[string]func() ([]byte, []byte, error){
				"stream":  read,
				"message": func() ([]byte, []byte, error) { return decode(wireBytes, frame.Limits{}) },
			} {
				gotFirst, gotPayload, err := dec()
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				if string(gotFirst) != first || !bytes.Equal(gotPayload, payload) {
					t.Errorf("%s: decoded %q, % x", how, gotFirst, gotPayload)
				}
				if frame.IsPush(gotFirst) != (v.Kind == conformance.KindPush) {
					t.Errorf("%s: IsPush(%q) wrong", how, gotFirst)
				}
			}
		})
	}
	for _, k := range []string{conformance.KindRequest, conformance.KindReply, conformance.KindPush, conformance.KindBad} {
		if kinds[k] == 0 {
			t.Errorf("no %s vector", k)
		}
	}
}

func checkBadFrame(t *testing.T, v conformance.Frame, b []byte) {
	t.Helper()
	if v.Code != "bad_frame" {
		t.Errorf("code %q", v.Code)
	}
	check := func(how string, err error) {
		t.Helper()
		if !errors.Is(err, frame.ErrBadFrame) {
			t.Errorf("%s: err = %v, want a bad frame", how, err)
		} else if err.Error() != v.Error {
			t.Errorf("%s: err = %q, want %q", how, err, v.Error)
		}
	}
	decode := frame.DecodeResponseFrame
	if v.Shape == "request" {
		decode = frame.DecodeRequestFrame
	}
	_, _, err := decode(b, frame.Limits{})
	check("message", err)
	switch v.Scope {
	case conformance.ScopeFrame:
		// The client's reader (a fake broker sending b) must reject it too.
		r := frame.NewReader(bytes.NewReader(b), frame.Limits{})
		read := r.ReadResponse
		if v.Shape == "request" {
			read = r.ReadRequest
		}
		_, _, err := read()
		check("stream", err)
	case conformance.ScopeMessage:
	default:
		t.Errorf("scope %q", v.Scope)
	}
}

// TestConformanceThrift: every case of every method decodes to its JSON
// and its JSON encodes to the same bytes; every method of idl/methods has
// cases.
func TestConformanceThrift(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(conformanceDir, "thrift", "*.json"))
	seen := map[string]bool{}
	for _, file := range files {
		var tf conformance.ThriftFile
		readVectors(t, filepath.Join("thrift", filepath.Base(file)), &tf)
		for _, m := range tf.Methods {
			seen[m.Method] = true
			mt, ok := methods.Lookup(m.Method)
			if !ok {
				t.Errorf("%s: not in idl/methods", m.Method)
				continue
			}
			if len(m.Cases) < 2 {
				t.Errorf("%s: %d cases", m.Method, len(m.Cases))
			}
			for _, c := range m.Cases {
				t.Run(m.Method+"/"+c.Name, func(t *testing.T) {
					checkThrift(t, "request", mt.NewReq, c.Request, c.RequestHex)
					checkThrift(t, "reply", mt.NewReply, c.Reply, c.ReplyHex)
				})
			}
		}
	}
	for _, name := range methods.Names() {
		if !seen[name] {
			t.Errorf("%s has no conformance vectors", name)
		}
	}
}

func checkThrift(t *testing.T, what string, newT func() thrift.TStruct, js json.RawMessage, h string) {
	t.Helper()
	b := unhex(t, h)
	if newT == nil { // raw bytes
		var s string
		if err := json.Unmarshal(js, &s); err != nil || s != h {
			t.Errorf("%s: raw JSON %s, want %q", what, js, h)
		}
		return
	}
	dec := newT()
	if err := thriftx.Unmarshal(b, dec); err != nil {
		t.Fatalf("%s: decode: %v", what, err)
	}
	got, err := conformance.ToJSON(dec)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !jsonEqual(got, js) {
		t.Errorf("%s: decoded to %s\nwant %s", what, got, js)
	}
	enc := newT()
	if err := conformance.FromJSON(js, enc); err != nil {
		t.Fatalf("%s: from JSON: %v", what, err)
	}
	out, err := thriftx.Marshal(enc)
	if err != nil {
		t.Fatalf("%s: encode: %v", what, err)
	}
	if !bytes.Equal(out, b) {
		t.Errorf("%s: encoded %x\nwant    %x", what, out, b)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// TestConformanceBrokerList: FetchBrokerList and PickBroker pick what the
// vectors say, a Session tries the brokers in their order (the lost one
// last), and malformed bodies are rejected.
func TestConformanceBrokerList(t *testing.T) {
	var bl conformance.BrokerLists
	readVectors(t, "brokerlist.json", &bl)
	serve := func(t *testing.T, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/brokerlist"
	}
	ctx := context.Background()
	for _, c := range bl.Valid {
		t.Run(c.Name, func(t *testing.T) {
			url := serve(t, c.Body)
			list, err := FetchBrokerList(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			pick, err := PickBroker(list)
			if c.Pick == "" {
				if !errors.Is(err, ErrNoBrokers) {
					t.Errorf("PickBroker = %q, %v; want ErrNoBrokers", pick, err)
				}
			} else if err != nil || pick != c.Pick {
				t.Errorf("PickBroker = %q, %v; want %q", pick, err, c.Pick)
			}
			s := &Session{opts: SessionOptions{BrokerList: url}}
			order, err := s.candidates(ctx, "")
			if len(c.Order) == 0 {
				if !errors.Is(err, ErrNoBrokers) {
					t.Errorf("candidates = %q, %v; want ErrNoBrokers", order, err)
				}
			} else if err != nil || !slices.Equal(order, c.Order) {
				t.Errorf("candidates = %q, %v; want %q", order, err, c.Order)
			}
			if c.Avoid != "" {
				order, err := s.candidates(ctx, c.Avoid)
				if err != nil || !slices.Equal(order, c.OrderAvoiding) {
					t.Errorf("candidates avoiding %s = %q, %v; want %q", c.Avoid, order, err, c.OrderAvoiding)
				}
			}
		})
	}
	for _, c := range bl.Malformed {
		t.Run(c.Name, func(t *testing.T) {
			if list, err := FetchBrokerList(ctx, serve(t, c.Body)); err == nil {
				t.Errorf("FetchBrokerList accepted %q: %v", c.Body, list)
			}
		})
	}
}

// pattern is a session step's hex: literal bytes and placeholders.
type pattern []segment

type segment struct {
	lit  []byte
	name string // a placeholder when set
	n    int
}

func parsePattern(t *testing.T, h string, ph map[string]conformance.Placeholder) pattern {
	t.Helper()
	var p pattern
	for h != "" {
		i := strings.IndexByte(h, '{')
		if i < 0 {
			p = append(p, segment{lit: unhex(t, h)})
			break
		}
		if i > 0 {
			p = append(p, segment{lit: unhex(t, h[:i])})
		}
		j := strings.IndexByte(h, '}')
		name := h[i+1 : j]
		pl, ok := ph[name]
		if !ok || pl.Len <= 0 {
			t.Fatalf("placeholder {%s} is not declared with a length", name)
		}
		p = append(p, segment{name: name, n: pl.Len})
		h = h[j+1:]
	}
	return p
}

// replay holds the values of a session's placeholders: made up by the
// fake broker where they first appear in a frame it sends, checked where
// the client sends them back.
type replay struct {
	mu   sync.Mutex
	ph   map[string]conformance.Placeholder
	vals map[string][]byte
}

// value returns name's value, making one up (Len bytes: ASCII for a
// string, a varint for a wildcard time) the first time.
func (r *replay) value(name string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.vals[name]; ok {
		return v
	}
	pl := r.ph[name]
	var v []byte
	if pl.Wildcard {
		v = append(bytes.Repeat([]byte{0x80}, pl.Len-1), 0x01)
	} else {
		v = []byte((name + "-" + strings.Repeat("x", pl.Len))[:pl.Len])
	}
	r.vals[name] = v
	return v
}

// build returns the bytes of p with every placeholder's value.
func (r *replay) build(p pattern) []byte {
	var out []byte
	for _, s := range p {
		if s.name == "" {
			out = append(out, s.lit...)
		} else {
			out = append(out, r.value(s.name)...)
		}
	}
	return out
}

// match reports whether b is p: literals equal, a placeholder's bytes its
// value (any bytes for a wildcard).
func (r *replay) match(p pattern, b []byte) error {
	for _, s := range p {
		switch {
		case s.name == "":
			if !bytes.HasPrefix(b, s.lit) {
				return fmt.Errorf("want % x, got % x", s.lit, b[:min(len(b), len(s.lit))])
			}
			b = b[len(s.lit):]
		default:
			if len(b) < s.n {
				return fmt.Errorf("{%s}: %d bytes left, want %d", s.name, len(b), s.n)
			}
			if !r.ph[s.name].Wildcard && !bytes.Equal(b[:s.n], r.value(s.name)) {
				return fmt.Errorf("{%s} = %q, want %q", s.name, b[:s.n], r.value(s.name))
			}
			b = b[s.n:]
		}
	}
	if len(b) > 0 {
		return fmt.Errorf("% x left over", b)
	}
	return nil
}

// TestConformanceSessions replays each recorded session: a fake broker
// per broker of the session plays the recv steps and checks that the Go
// client sends exactly the send steps (Dial's hello, Call's frames, the
// resume token it got from the login reply); the client must deliver
// every reply and push.
func TestConformanceSessions(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(conformanceDir, "sessions", "*.json"))
	if len(files) == 0 {
		t.Fatal("no sessions")
	}
	for _, file := range files {
		var s conformance.Session
		readVectors(t, filepath.Join("sessions", filepath.Base(file)), &s)
		t.Run(s.Name, func(t *testing.T) { replaySession(t, s) })
	}
}

func replaySession(t *testing.T, s conformance.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &replay{ph: map[string]conformance.Placeholder{}, vals: map[string][]byte{}}
	for _, p := range s.Placeholders {
		r.ph[p.Name] = p
	}
	// One fake broker per broker name, taking that broker's connections
	// in order.
	type conn struct {
		steps []pattern
		dirs  []string
		// hangUp: the broker closes the connection after its steps,
		// since the next connection is to another broker (the client
		// lost this one); otherwise it waits for the client to close.
		hangUp bool
	}
	byBroker := map[string][]conn{}
	var order []string
	for i, c := range s.Connections {
		cc := conn{hangUp: i+1 < len(s.Connections) && s.Connections[i+1].Broker != c.Broker}
		for _, st := range c.Steps {
			cc.steps = append(cc.steps, parsePattern(t, st.Hex, r.ph))
			cc.dirs = append(cc.dirs, st.Dir)
		}
		if _, ok := byBroker[c.Broker]; !ok {
			order = append(order, c.Broker)
		}
		byBroker[c.Broker] = append(byBroker[c.Broker], cc)
	}
	addrs := map[string]string{}
	errs := make(chan error, len(s.Connections)+len(order))
	var wg sync.WaitGroup
	// After the test (and the listeners' cleanups, registered later, so
	// run first): wait for the fake brokers and report what they saw,
	// even when the driver stopped the test.
	t.Cleanup(func() {
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	for _, name := range order {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		addrs[name] = ln.Addr().String()
		conns := byBroker[name]
		wg.Go(func() {
			for i, cc := range conns {
				nc, err := ln.Accept()
				if err != nil {
					errs <- fmt.Errorf("%s: accept: %w", name, err)
					return
				}
				wg.Go(func() {
					defer nc.Close()
					fr := frame.NewReader(nc, frame.Limits{})
					for j, p := range cc.steps {
						if cc.dirs[j] == conformance.DirRecv {
							if _, err := nc.Write(r.build(p)); err != nil {
								errs <- fmt.Errorf("%s conn %d step %d: write: %w", name, i, j, err)
								return
							}
							continue
						}
						m, payload, err := fr.ReadRequest()
						if err != nil {
							errs <- fmt.Errorf("%s conn %d step %d: read: %w", name, i, j, err)
							return
						}
						if err := r.match(p, frame.AppendRequest(nil, string(m), payload)); err != nil {
							errs <- fmt.Errorf("%s conn %d step %d: the client sent %s % x: %w", name, i, j, m, payload, err)
							return
						}
					}
					if !cc.hangUp {
						// Wait for the client to hang up.
						_, _, _ = fr.ReadRequest()
					}
				})
			}
		})
	}

	if resumesElsewhere(t, s, r) {
		driveSession(ctx, t, s, r, addrs)
	} else {
		driveClients(ctx, t, s, r, addrs)
	}
}

// sessionStep decodes step j of conn ci, its placeholders filled.
func sessionStep(t *testing.T, s conformance.Session, r *replay, ci, j int) (string, []byte) {
	t.Helper()
	st := s.Connections[ci].Steps[j]
	b := r.build(parsePattern(t, st.Hex, r.ph))
	var first, payload []byte
	var err error
	if st.Dir == conformance.DirSend {
		first, payload, err = frame.DecodeRequestFrame(b, frame.Limits{})
	} else {
		first, payload, err = frame.DecodeResponseFrame(b, frame.Limits{})
	}
	if err != nil {
		t.Fatalf("conn %d step %d: %v", ci, j, err)
	}
	return string(first), payload
}

// stepsOf splits a connection's steps into sends, replies and pushes (step
// indexes).
func stepsOf(c conformance.Connection) (sends, replies, pushes []int) {
	for j, st := range c.Steps {
		switch {
		case st.Dir == conformance.DirSend:
			sends = append(sends, j)
		case strings.HasPrefix(st.Note, "push "):
			pushes = append(pushes, j)
		default:
			replies = append(replies, j)
		}
	}
	return sends, replies, pushes
}

// helloOf decodes connection ci's hello, or nil if it sends none first.
func helloOf(t *testing.T, s conformance.Session, r *replay, ci int) *edgeapi.HelloRequest {
	t.Helper()
	sends, _, _ := stepsOf(s.Connections[ci])
	if len(sends) == 0 {
		return nil
	}
	m, p := sessionStep(t, s, r, ci, sends[0])
	if m != "edge.Hello" {
		return nil
	}
	var hello edgeapi.HelloRequest
	if err := thriftx.Unmarshal(p, &hello); err != nil {
		t.Fatal(err)
	}
	return &hello
}

// resumesElsewhere reports whether a connection of s resumes a session on
// another broker than the connection before it: a broker change, which a
// Session makes by itself.
func resumesElsewhere(t *testing.T, s conformance.Session, r *replay) bool {
	for ci := 1; ci < len(s.Connections); ci++ {
		if h := helloOf(t, s, r, ci); h != nil && h.IsSetResumeToken() && s.Connections[ci].Broker != s.Connections[ci-1].Broker {
			return true
		}
	}
	return false
}

// checkCall checks a call's outcome against reply step j.
func checkCall(t *testing.T, s conformance.Session, r *replay, ci, j int, method string, got []byte, err error) {
	t.Helper()
	first, want := sessionStep(t, s, r, ci, j)
	if first != "" {
		var werr *Error
		if !errors.As(err, &werr) || werr.Error() != first {
			t.Errorf("conn %d: %s: err %v, want %q", ci, method, err, first)
		}
		return
	}
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("conn %d: %s = %x, %v; want %x", ci, method, got, err, want)
	}
}

// driveSession plays the client side of s with one Session over the
// session's brokers: it logs in with Call, and when the broker hangs up
// it reconnects by itself to the next broker and resumes with the token
// it kept from the login reply (the fake broker checks the token is the
// one it sent).
func driveSession(ctx context.Context, t *testing.T, s conformance.Session, r *replay, addrs map[string]string) {
	var brokers []string
	for _, c := range s.Connections {
		if !slices.Contains(brokers, addrs[c.Broker]) {
			brokers = append(brokers, addrs[c.Broker])
		}
	}
	hello := helloOf(t, s, r, 0)
	if hello == nil {
		t.Fatal("conn 0 sends no hello")
	}
	opts := DefaultOptions()
	opts.Push, opts.ClientName = hello.GetPush(), hello.GetClientName()
	sess, err := Connect(ctx, SessionOptions{Brokers: brokers, Options: opts, ReconnectMin: time.Millisecond, ReconnectMax: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for ci, c := range s.Connections {
		sends, replies, pushes := stepsOf(c)
		if ci > 0 {
			// The broker of the previous connection hung up: the
			// Session resumes on this one in the background.
			want := addrs[c.Broker]
			for resumed := false; !resumed; {
				select {
				case p := <-sess.Pushes():
					resumed = p.Type == EventResumed
					if resumed && string(p.Payload) != want {
						t.Fatalf("conn %d: resumed on %s, want %s", ci, p.Payload, want)
					}
					if p.Type == EventResumeFailed {
						t.Fatalf("conn %d: resume failed", ci)
					}
				case <-ctx.Done():
					t.Fatalf("conn %d: the session did not resume on %s", ci, want)
				}
			}
		}
		sess.mu.Lock()
		cl := sess.c
		sess.mu.Unlock()
		_, wantHello := sessionStep(t, s, r, ci, replies[0])
		if got, _ := thriftx.Marshal(cl.HelloReply()); !bytes.Equal(got, wantHello) {
			t.Errorf("conn %d: hello reply %x, want %x", ci, got, wantHello)
		}
		for k, j := range sends[1:] {
			method, payload := sessionStep(t, s, r, ci, j)
			got, err := sess.Call(ctx, method, payload)
			checkCall(t, s, r, ci, replies[k+1], method, got, err)
		}
		if ci == 0 && sess.Token() == "" {
			t.Fatal("the Session kept no token from the login reply")
		}
		if len(pushes) > 0 {
			t.Errorf("conn %d: pushes in a resumed session are not replayed", ci)
		}
	}
}

// driveClients plays the client side of s with one Client per connection,
// in order, kept open to the end.
func driveClients(ctx context.Context, t *testing.T, s conformance.Session, r *replay, addrs map[string]string) {
	var token string // from the last login.Login reply the client got
	var clients []*Client
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for ci, c := range s.Connections {
		steps := c.Steps
		var sends []int
		var replies, pushes []int
		for j, st := range steps {
			switch {
			case st.Dir == conformance.DirSend:
				sends = append(sends, j)
			case strings.HasPrefix(st.Note, "push "):
				pushes = append(pushes, j)
			default:
				replies = append(replies, j)
			}
		}
		decode := func(j int) (string, []byte) {
			t.Helper()
			b := r.build(parsePattern(t, steps[j].Hex, r.ph))
			var first, payload []byte
			var err error
			if steps[j].Dir == conformance.DirSend {
				first, payload, err = frame.DecodeRequestFrame(b, frame.Limits{})
			} else {
				first, payload, err = frame.DecodeResponseFrame(b, frame.Limits{})
			}
			if err != nil {
				t.Fatalf("conn %d step %d: %v", ci, j, err)
			}
			return string(first), payload
		}
		opts := DefaultOptions()
		opts.Hello = false
		if len(sends) > 0 {
			if m, p := decode(sends[0]); m == "edge.Hello" {
				var hello edgeapi.HelloRequest
				if err := thriftx.Unmarshal(p, &hello); err != nil {
					t.Fatal(err)
				}
				opts.Hello, opts.Push, opts.ClientName = true, hello.GetPush(), hello.GetClientName()
				if hello.IsSetResumeToken() {
					if token == "" {
						t.Fatalf("conn %d resumes, but no login reply came before", ci)
					}
					opts.ResumeToken = token // the broker checks it is the one it sent
				}
				sends = sends[1:]
				_, want := decode(replies[0])
				replies = replies[1:]
				got, _ := thriftx.Marshal(dialHello(ctx, t, &clients, addrs[c.Broker], opts))
				if !bytes.Equal(got, want) {
					t.Errorf("conn %d: hello reply %x, want %x", ci, got, want)
				}
			}
		}
		var cl *Client
		if opts.Hello {
			cl = clients[len(clients)-1]
		} else {
			var err error
			if cl, err = Dial(ctx, addrs[c.Broker], opts); err != nil {
				t.Fatal(err)
			}
			clients = append(clients, cl)
		}
		for k, j := range sends {
			method, payload := decode(j)
			got, err := cl.Call(ctx, method, payload)
			first, want := decode(replies[k])
			if first != "" {
				var werr *Error
				if !errors.As(err, &werr) || werr.Error() != first {
					t.Errorf("conn %d: %s: err %v, want %q", ci, method, err, first)
				}
				continue
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("conn %d: %s = %x, %v; want %x", ci, method, got, err, want)
			}
			if method == "login.Login" {
				var rep login.LoginReply
				if err := thriftx.Unmarshal(got, &rep); err != nil {
					t.Fatal(err)
				}
				token = rep.GetSessionToken()
			}
		}
		for _, j := range pushes {
			first, want := decode(j)
			select {
			case p := <-cl.Pushes():
				if "@"+p.Type != first || !bytes.Equal(p.Payload, want) {
					t.Errorf("conn %d: push %s %x, want %s %x", ci, p.Type, p.Payload, first, want)
				}
			case <-ctx.Done():
				t.Fatalf("conn %d: no push %s", ci, first)
			}
		}
	}
	for _, c := range clients {
		_ = c.Close()
	}
}

// dialHello dials with a hello and returns the hello reply, adding the
// client to clients.
func dialHello(ctx context.Context, t *testing.T, clients *[]*Client, addr string, opts Options) *edgeapi.HelloReply {
	t.Helper()
	c, err := Dial(ctx, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	*clients = append(*clients, c)
	return c.HelloReply()
}
