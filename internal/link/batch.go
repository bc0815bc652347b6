package link

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
)

// Writing ZMTP messages without zmq4.
//
// zmq4 v0.17.0's Send starts a goroutine per message per connection, and
// writes each message with its own syscall (two or four, coalesced into one
// by the guard). A Peer's writer and a Server's writer instead write whole
// batches of single-frame messages straight to the guarded connection once
// its handshake is over: everything queued when the writer wakes leaves in
// one write, and the writer goes back to its queue as soon as it is empty
// (it never waits to fill a batch: a lone message leaves at once). zmq4
// still runs the handshake and reads; after the handshake the writer is the
// connection's only writer.

// Batch limits: the writer stops taking messages from its queue for one
// write at maxBatchBytes or maxBatchMsgs, whichever comes first.
const (
	maxBatchBytes = 256 << 10
	maxBatchMsgs  = 512
	// copyBody is the largest body copied into the batch buffer; bigger
	// ones are written from where they are (writev on plain TCP).
	copyBody = 4 << 10
	// maxKeptBatchBuf: a batch buffer that grew past this is not kept.
	maxKeptBatchBuf = 1 << 20
)

// errMidMessage means zmq4 was writing a message when a batch was due: it
// cannot happen while only the writer sends, and is refused rather than
// interleaved.
var errMidMessage = errors.New("link: zmq4 is writing on this connection")

// writeTurn decides who writes a socket's connections: its writer
// goroutine, or a sender writing a lone message itself. The writer holds
// mu from its first message to the end of its write; queued counts the
// messages in the writer's queue or hands and not yet written. While
// queued is not zero nobody writes directly, so that no message
// overtakes one queued before it.
type writeTurn struct {
	mu     sync.Mutex
	queued atomic.Int64
	// batchAvg is a moving average of the writer's batch sizes, in 16ths
	// of a message (noteBatch, smallBatches).
	batchAvg atomic.Int64
}

// directBatchMax is the writer's average batch size (messages) under
// which a sender writes its message itself when nobody else is writing,
// whatever else is in flight (smallBatches). Measured at 16 connections
// through the broker (noonbench -only lfl): direct writes whenever the
// turn is free did 1.2-1.3x the req/s of the writer's batches there, and
// 0.9-0.95x at 256 connections, where batches are large.
const directBatchMax = 4

// noteBatch adds a batch of n messages to the writer's moving average
// (weight 1/8). Only the writer calls it, holding mu.
func (w *writeTurn) noteBatch(n int64) {
	avg := w.batchAvg.Load()
	w.batchAvg.Store(avg + (n*16-avg)/8)
}

// smallBatches reports whether the writer's recent batches were small
// (under directBatchMax messages on average): batching saves little
// there, and the switch to the writer goroutine costs more than a write.
func (w *writeTurn) smallBatches() bool {
	return w.batchAvg.Load() < directBatchMax*16
}

// tryDirect takes the turn for a direct write: when nothing is queued and
// nobody writes. On true the caller writes and then unlocks mu.
func (w *writeTurn) tryDirect() bool {
	if w.queued.Load() != 0 || !w.mu.TryLock() {
		return false
	}
	if w.queued.Load() != 0 {
		w.mu.Unlock()
		return false
	}
	return true
}

// drain takes what q holds with take until full says stop or q is empty.
// When q first looks empty it yields once (runtime.Gosched), so that the
// goroutines ready to run (callers or handlers about to queue) run first:
// no timer, and no wait when nothing else is runnable. This yield is what
// makes batches form under load.
func drain[T any](q <-chan T, full func() bool, take func(T)) {
	yielded := false
	for !full() {
		select {
		case v := <-q:
			take(v)
		default:
			if yielded {
				return
			}
			yielded = true
			runtime.Gosched()
		}
	}
}

// frameBatch gathers single-frame ZMTP messages into one write.
type frameBatch struct {
	buf    []byte      // headers and small bodies, copied
	vec    net.Buffers // what to write: slices of buf and big bodies
	mark   int         // start of buf not yet in vec
	bodies [][]byte    // the bodies added, for the caller to recycle
	size   int
}

// add appends body as one message (a single frame without MORE).
func (b *frameBatch) add(body []byte) {
	n := len(body)
	if n <= 255 {
		b.buf = append(b.buf, 0, byte(n))
	} else {
		b.buf = append(b.buf, flagLong, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint64(b.buf[len(b.buf)-8:], uint64(n))
	}
	if n <= copyBody {
		b.buf = append(b.buf, body...)
	} else {
		b.vec = append(b.vec, b.buf[b.mark:], body)
		b.mark = len(b.buf)
	}
	b.bodies = append(b.bodies, body)
	b.size += n + 9
}

// full reports whether the batch should be written before taking more.
func (b *frameBatch) full() bool {
	return b.size >= maxBatchBytes || len(b.bodies) >= maxBatchMsgs
}

func (b *frameBatch) empty() bool { return len(b.bodies) == 0 }

// buffers returns what to write. Adding to the batch afterwards is not
// allowed until reset.
func (b *frameBatch) buffers() net.Buffers {
	if b.mark < len(b.buf) {
		b.vec = append(b.vec, b.buf[b.mark:])
		b.mark = len(b.buf)
	}
	return b.vec
}

// reset empties the batch, recycling each body with recycle (nil: not).
func (b *frameBatch) reset(recycle func([]byte)) {
	for i, body := range b.bodies {
		if recycle != nil {
			recycle(body)
		}
		b.bodies[i] = nil
	}
	clear(b.vec)
	b.bodies, b.vec = b.bodies[:0], b.vec[:0]
	if cap(b.buf) > maxKeptBatchBuf {
		b.buf = nil
	}
	b.buf, b.mark, b.size = b.buf[:0], 0, 0
}

// connTable maps the routing identities of a ROUTER's live connections to
// the connections, so that its writer can write replies itself. The guard
// registers a connection when it reads its READY (before zmq4 has the
// connection, so before any message from it) and removes it when it
// closes. A routing identity that a live connection holds is refused to
// another (zmq4 would send each reply to both).
type connTable struct {
	mu sync.RWMutex
	m  map[string]*guardConn
}

func newConnTable() *connTable { return &connTable{m: make(map[string]*guardConn)} }

func (t *connTable) add(rid string, g *guardConn) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur := t.m[rid]; cur != nil && cur != g {
		return errors.New("routing identity already held by a live connection")
	}
	t.m[rid] = g
	return nil
}

func (t *connTable) remove(rid string, g *guardConn) {
	t.mu.Lock()
	if t.m[rid] == g {
		delete(t.m, rid)
	}
	t.mu.Unlock()
}

func (t *connTable) get(rid []byte) *guardConn {
	t.mu.RLock()
	g := t.m[string(rid)]
	t.mu.RUnlock()
	return g
}
