package link

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// TestSendTimeoutKeepsBuffer reproduces a data race seen under -race
// between (*link).ping's encodeEnvelope and guardConn.Write: zmq4's Send
// gives up at its timeout while its own goroutine still writes the message
// to the socket, and the writer recycled that buffer at once, so the next
// encode (a ping on the redialled link) wrote into bytes being sent. The
// remote here is a ZMTP ROUTER that never reads, so sends block. Under
// -race the old code failed here; now a buffer whose Send failed is not
// recycled, and the writer goroutine stays the one owner of what it sends.
func TestSendTimeoutKeepsBuffer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	router := zmq4.NewRouter(ctx)
	defer router.Close()
	if err := router.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ep := "tcp://" + router.Addr().String()
	opts := fastPeerOptions(t)
	opts.SendTimeout = 50 * time.Millisecond
	opts.HeartbeatInterval = time.Millisecond
	opts.sockBuf = 4096
	p := mustDial(t, ep, opts, false)
	payload := []byte(strings.Repeat("x", 8<<10)) // pooled: under maxPooledBuffer
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				_, _ = p.Call(cctx, &platformpb.Envelope{Method: "x.Y", Payload: payload})
				ccancel()
			}
		}()
	}
	wg.Wait()
	if p.Stats().Connects < 2 {
		t.Logf("only %d connects: sends never timed out", p.Stats().Connects)
	}
}
