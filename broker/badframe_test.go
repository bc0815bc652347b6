package broker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/frame"
)

// be32 is a big-endian int32.
func be32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

// join concatenates byte slices.
func join(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// idleTimeout is the edge idle and frame timeout of the bad-frame tests: a
// client that does not complete a frame within it is closed.
const idleTimeout = time.Second

// watchGood runs a well-behaved client that calls echo.Echo in a loop until
// stop is closed, and reports the longest gap between two of its replies
// and any error.
func watchGood(b *testBroker, tr string, stop <-chan struct{}) (result <-chan error, maxGap *time.Duration, count *int) {
	res := make(chan error, 1)
	var gap time.Duration
	var n int
	go func() {
		res <- func() error {
			cl, err := rawDial(b, tr)
			if err != nil {
				return err
			}
			defer cl.close()
			last := time.Now()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return nil
				default:
				}
				want := fmt.Sprintf("ping %d", i)
				if err := cl.write(frame.AppendRequest(nil, "echo.Echo", []byte(want))); err != nil {
					return fmt.Errorf("good client write: %w", err)
				}
				first, payload, err := cl.read(5 * time.Second)
				if err != nil {
					return fmt.Errorf("good client read: %w", err)
				}
				if first != "" || string(payload) != want {
					return fmt.Errorf("good client got %q %q, want %q", first, payload, want)
				}
				now := time.Now()
				gap = max(gap, now.Sub(last))
				last = now
				n++
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}()
	return res, &gap, &n
}

// rawConn is a connection that reads frames synchronously.
type rawConn struct {
	nc net.Conn
	r  *frame.Reader
	ws *websocket.Conn
}

func rawDial(b *testBroker, tr string) (*rawConn, error) {
	if tr == transportWS {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws://"+b.WSAddr().String()+"/ws", nil)
		if err != nil {
			return nil, err
		}
		ws.SetReadLimit(2 << 20)
		return &rawConn{ws: ws}, nil
	}
	nc, err := net.Dial("tcp", b.TCPAddr().String())
	if err != nil {
		return nil, err
	}
	return &rawConn{nc: nc, r: frame.NewReader(nc, frame.DefaultLimits())}, nil
}

func (c *rawConn) write(b []byte) error {
	if c.ws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		return c.ws.Write(ctx, websocket.MessageBinary, b)
	}
	_, err := c.nc.Write(b)
	return err
}

// read reads one response frame within timeout.
func (c *rawConn) read(timeout time.Duration) (string, []byte, error) {
	if c.ws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, b, err := c.ws.Read(ctx)
		if err != nil {
			return "", nil, err
		}
		first, payload, err := frame.DecodeResponseFrame(b, frame.DefaultLimits())
		return string(first), payload, err
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	first, payload, err := c.r.ReadResponse()
	return string(first), payload, err
}

func (c *rawConn) close() {
	if c.ws != nil {
		_ = c.ws.CloseNow()
		return
	}
	_ = c.nc.Close()
}

// badCase is one malformed input and the reply it must get before the
// broker closes the connection ("" = closed without a reply).
type badCase struct {
	name string
	// send writes the input.
	send func(c *rawConn) error
	want string
}

// sendBytes writes b as is (over WebSocket: as one binary message).
func sendBytes(b []byte) func(c *rawConn) error {
	return func(c *rawConn) error { return c.write(b) }
}

// TestBadFrames sends malformed frames over TCP: each gets "bad_frame: ..."
// or a timeout, then a close; meanwhile another connection's replies keep
// coming.
func TestBadFrames(t *testing.T) {
	cases := []badCase{
		{"oversized", sendBytes(join(be32(1<<20+1), be32(4), []byte("Ping"))),
			"bad_frame: frame length 1048577 exceeds maximum 1048576"},
		{"huge", sendBytes(be32(0x7fffffff)),
			"bad_frame: frame length 2147483647 exceeds maximum 1048576"},
		{"negative total", sendBytes(be32(-1)),
			"bad_frame: negative frame length -1"},
		{"too short", sendBytes(join(be32(3), []byte{0, 0, 0})),
			"bad_frame: frame length 3 is below minimum 8"},
		{"negative method length", sendBytes(join(be32(12), be32(-7), be32(0), be32(0))),
			"bad_frame: negative method length -7"},
		{"method past the end", sendBytes(join(be32(16), be32(100), make([]byte, 12))),
			"bad_frame: method length 100 exceeds the 8 bytes left in the frame"},
		{"payload past the end", sendBytes(join(be32(16), be32(4), []byte("Ping"), be32(8), []byte("abcd"))),
			"bad_frame: payload length 8 exceeds the 4 bytes left in the frame"},
		{"payload short of the end", sendBytes(join(be32(16), be32(4), []byte("Ping"), be32(1), []byte("abcd"))),
			"bad_frame: payload length 1 leaves 3 trailing bytes in the frame"},
		{"negative payload length", sendBytes(join(be32(12), be32(0), be32(-5), []byte("abcd"))),
			"bad_frame: negative payload length -5"},
		{"method too long", sendBytes(join(be32(8+200), be32(200), make([]byte, 204))),
			"bad_frame: method length 200 exceeds maximum 128"},
		{"garbage", sendBytes([]byte("GET / HTTP/1.1\r\nHost: broker\r\n\r\n")),
			"bad_frame: frame length 1195725856 exceeds maximum 1048576"},
		{"cut off", func(c *rawConn) error {
			if err := c.write(join(be32(20), be32(4), []byte("Pi"))); err != nil {
				return err
			}
			return c.nc.(*net.TCPConn).CloseWrite()
		}, "bad_frame: connection closed inside a frame"},
		{"one byte per second", func(c *rawConn) error {
			go func() {
				for _, b := range frame.AppendRequest(nil, "echo.Echo", []byte("slow")) {
					if c.write([]byte{b}) != nil {
						return
					}
					time.Sleep(time.Second)
				}
			}()
			return nil
		}, ""},
	}
	runBad(t, transportTCP, cases)
}

// TestBadFramesWS sends malformed messages over WebSocket.
func TestBadFramesWS(t *testing.T) {
	cases := []badCase{
		{"oversized", sendBytes(join(be32(1<<20+1), be32(4), []byte("Ping"))),
			"bad_frame: frame length 1048577 exceeds maximum 1048576"},
		{"negative total", sendBytes(be32(-1)),
			"bad_frame: negative frame length -1"},
		{"too short a message", sendBytes([]byte{0, 0}),
			"bad_frame: message of 2 bytes is shorter than the 4-byte frame length"},
		{"total past the message", sendBytes(join(be32(100), be32(4), []byte("Ping"), be32(0))),
			"bad_frame: frame length 100 does not match the 12 bytes after it in the message"},
		{"method past the end", sendBytes(join(be32(16), be32(100), make([]byte, 12))),
			"bad_frame: method length 100 exceeds the 8 bytes left in the frame"},
		{"text message", func(c *rawConn) error {
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			return c.ws.Write(ctx, websocket.MessageText, []byte("hello"))
		}, "bad_frame: text message, want one binary message per frame"},
		{"silent", func(*rawConn) error { return nil }, ""},
	}
	runBad(t, transportWS, cases)
}

// runBad runs the cases in parallel against one broker while a good client
// keeps calling, and checks the good client was never held up.
func runBad(t *testing.T, tr string, cases []badCase) {
	y := mustStartYellow(t)
	mustStartEcho(t, y)
	b := mustStartBroker(t, y, func(o *broker.Options) { o.Edge.IdleTimeout, o.Edge.FrameTimeout = idleTimeout, idleTimeout })
	waitRoutable(t, b, "echo.Echo", nil)

	stop := make(chan struct{})
	good, gap, count := watchGood(b, tr, stop)
	var wg sync.WaitGroup
	errs := make(chan error, len(cases))
	for _, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runBadCase(b, tr, tc); err != nil {
				errs <- fmt.Errorf("%s: %w", tc.name, err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-good; err != nil {
		t.Fatal(err)
	}
	if *count < 20 {
		t.Errorf("the good client got only %d replies meanwhile", *count)
	}
	if *gap > 500*time.Millisecond {
		t.Errorf("the good client waited %v between two replies", *gap)
	}
	t.Logf("good client: %d replies, longest gap %v", *count, *gap)
	if st := b.Edge().Stats(); st.BadFrames == 0 {
		t.Errorf("edge counted no bad frames: %+v", st)
	}
	// The broker still serves new connections.
	c := dial(t, b, tr)
	c.callOK("echo.Echo", nil)
}

// runBadCase sends one bad input and checks the reply and the close.
func runBadCase(b *testBroker, tr string, tc badCase) error {
	c, err := rawDial(b, tr)
	if err != nil {
		return err
	}
	defer c.close()
	if err := tc.send(c); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	limit := idleTimeout + 5*time.Second
	first, _, err := c.read(limit)
	if tc.want == "" {
		if err == nil {
			return fmt.Errorf("got reply %q, want the connection closed", first)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("not closed within %v", limit)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("no reply: %w", err)
	}
	if first != tc.want {
		return fmt.Errorf("reply %q, want %q", first, tc.want)
	}
	if _, _, err := c.read(limit); err == nil || !isClosed(err) {
		return fmt.Errorf("after the reply: %v, want the connection closed", err)
	}
	return nil
}
