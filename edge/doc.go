// Package edge is the client side of the broker: the TCP and WebSocket
// listeners (optionally TLS) that speak pandaparty frames (package
// edge/frame), and one Conn per client connection. It knows nothing of
// routing: the broker plugs in as a Handler and is called for every
// connection opened and closed and every request.
//
// # Connections
//
// Each connection has exactly two goroutines: a reader and a writer. The
// reader reads a frame (it must arrive whole within IdleTimeout), applies
// the connection's rate limit (a token bucket: a request over it is answered
// "rate_limited: ..." and the connection kept), waits for an in-flight slot
// (at MaxInFlight it stops reading, which pushes back on the client through
// TCP), queues a reply slot in request order and runs Handler.Request in a
// goroutine of its own. The writer sends the replies strictly in request
// order as they complete (pipelined requests may finish out of order) and
// pushes as they come, between replies; it batches frames and flushes when
// nothing more is queued. A malformed frame is answered "bad_frame: <why>"
// after the replies to the requests before it, then the connection is
// closed. A client that does not read (a full push queue, a write past
// WriteTimeout) is disconnected and counted, never waited for.
//
// Over TCP, a frame's bytes are read with frame.Reader; over WebSocket one
// binary message carries one whole frame, TotalLen included, and each reply
// or push is one message. Everything else is shared.
//
// # Memory per connection
//
// An idle connection holds its Conn, the socket, two parked goroutines with
// small stacks, and nothing else: the read buffer is taken from a pool when
// the first byte of a frame arrives (the idle wait is a one-byte read) and
// given back when the connection has no unread bytes, the write buffer is
// held only while a batch is written, and no timer runs once the connection
// has authenticated (timeouts are socket deadlines). TestIdleConnMemory
// measures it.
//
// # Lock order
//
// Server.mu (the connection set) and Conn.mu (a connection's queues) are
// never held together; neither is held across a call to the Handler, to
// the transport, or a blocking channel operation.
package edge
