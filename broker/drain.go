package broker

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/noonhq/noon/edge"
	edgepb "github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// drainPoll is how often Drain checks whether the clients have left during
// the grace period.
const drainPoll = 10 * time.Millisecond

// Drain shuts the broker down without failing requests:
//
//  1. it marks itself DRAINING in yellow, so it leaves the BrokerList;
//  2. it pushes "@edge.Draining" (edge.Draining{grace_ms}) to every
//     connection that asked for pushes, and refuses new connections;
//  3. it keeps serving for DrainGrace, or until every client has left, or
//     ctx ends, so clients move to another broker at their own pace;
//  4. it stops accepting, waits for the requests in flight to be answered
//     (bounded by ctx), closes every connection;
//  5. and exits (Exit), which ends Main.
//
// It returns an error if ctx ended before the requests in flight were
// answered; they were cancelled.
func (b *Broker) Drain(ctx context.Context) error {
	if b.exiting.Load() {
		return nil
	}
	if !b.draining.CompareAndSwap(false, true) {
		select { // another Drain is under way: wait for it
		case <-b.quit:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("broker: drain: %w", ctx.Err())
		}
	}
	start := time.Now()
	b.mu.Lock()
	if b.reg != nil {
		b.reg.SetState(platformpb.InstanceState_INSTANCE_STATE_DRAINING)
	}
	b.mu.Unlock()
	conns := b.edge.NumConns()
	b.log.Info("broker: draining", "connections", conns, "grace", b.opts.DrainGrace)
	b.edge.Range(func(c *edge.Conn) bool {
		b.pushDraining(c)
		return true
	})

	grace := time.NewTimer(b.opts.DrainGrace)
	tick := time.NewTicker(drainPoll)
wait:
	for b.edge.NumConns() > 0 {
		select {
		case <-grace.C:
			break wait
		case <-ctx.Done():
			break wait
		case <-b.quit:
			break wait
		case <-tick.C:
		}
	}
	grace.Stop()
	tick.Stop()

	err := b.edge.Drain(ctx, nil)
	b.flushStates(ctx)
	b.flushControl(ctx)
	b.Exit()
	b.log.Info("broker: drained", "took", time.Since(start).Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("broker: drain: requests still in flight: %w", err)
	}
	return nil
}

// controlFlushWait bounds how long Drain waits for the control socket to
// write the replies queued on it (the reply to the drain request itself)
// before Exit closes it: a write takes microseconds; a peer too slow to
// take it within this long loses it, as on Exit.
const controlFlushWait = 500 * time.Millisecond

// flushControl waits until the control socket has written (or given up
// on) every reply and PONG queued on it, at most controlFlushWait or until
// ctx ends, so that the admin who asked for the drain hears the answer.
func (b *Broker) flushControl(ctx context.Context) {
	flushed := func() bool {
		st := b.ctl.Stats()
		return st.Sent+st.SendErrors+st.Dropped >= st.Replies+st.Pings
	}
	if flushed() {
		return
	}
	limit := time.NewTimer(controlFlushWait)
	defer limit.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !flushed() {
		select {
		case <-limit.C:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pushDraining tells c to move to another broker within DrainGrace.
func (b *Broker) pushDraining(c *edge.Conn) {
	if !c.PushEnabled() {
		return
	}
	ms := min(b.opts.DrainGrace.Milliseconds(), math.MaxInt32)
	payload, err := thriftx.Marshal(&edgepb.Draining{GraceMs: int32(ms)})
	if err != nil {
		return
	}
	c.Push(wire.EventDraining, payload)
}

// SetDrainRequest makes f what runs when an admin asks the broker to drain
// over its control socket (wire.MethodDrain, noonctl drain): `noon broker`
// drains the whole process, as on SIGTERM. f must return at once and may
// run more than once. Without one (nil) the broker drains itself (Drain,
// in a goroutine, bounded by DrainGrace and a minute for the requests in
// flight).
func (b *Broker) SetDrainRequest(f func()) {
	if f == nil {
		b.drainReq.Store(nil)
		return
	}
	b.drainReq.Store(&f)
}

// requestDrain runs SetDrainRequest's function, or drains the broker.
func (b *Broker) requestDrain() {
	if f := b.drainReq.Load(); f != nil {
		(*f)()
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.DrainGrace+drainInFlightWait)
		defer cancel()
		if err := b.Drain(ctx); err != nil {
			b.log.Warn("broker: drain", "err", err)
		}
	}()
}

// drainInFlightWait bounds, after DrainGrace, a requested drain's wait for
// the requests in flight: longer than any route's timeout.
const drainInFlightWait = time.Minute

// Draining reports whether Drain was called.
func (b *Broker) Draining() bool { return b.draining.Load() }
