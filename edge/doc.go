// Package edge is the client side of the broker: the TCP and WebSocket
// listeners (optionally TLS) that speak pandaparty frames (package
// edge/frame), and one Conn per client connection. It knows nothing of
// routing: the broker plugs in as a Handler and is called for every
// connection opened and closed and every request.
//
// # Connections
//
// Each connection has a reader goroutine, and a writer while there is
// something to write (at most one at a time: whoever makes a reply or push
// ready claims the writer's role under Conn.mu, and the writer gives it back
// once it has flushed and found nothing more; a request's goroutine whose
// reply is next writes it itself, once Handler.Request has returned, rather
// than start a goroutine). The reader waits until the connection, its address and the edge are under
// their byte budgets (MaxInFlightBytes, MaxInFlightBytesPerAddr,
// MaxBufferedBytes: requests and replies not yet written, pushes queued;
// see limits.go), reads a frame (its first byte within IdleTimeout, the
// rest within FrameTimeout), answers an invalid method name "bad_request",
// applies the connection's rate limit (a token bucket: a request over it is
// answered "rate_limited: ..." and the connection kept), waits for an
// in-flight slot (at MaxInFlight it stops reading, which pushes back on the
// client through TCP), queues a reply slot in request order and runs
// Handler.Request in a goroutine of its own. A request's slot and bytes are
// freed when its reply is written.
//
// A connection is admitted after its PROXY header (so by the client's own
// address behind a trusted proxy): over MaxConnections, MaxConnsPerAddr,
// ConnRatePerAddr or MaxBufferedBytes it is answered "overloaded: ..." in a
// frame and closed. AddrLimitsExempt (loopback by default) is exempt from
// the per-address limits. The writer sends the replies strictly in request
// order as they complete (pipelined requests may finish out of order) and
// pushes as they come, between replies; it batches frames and flushes when
// nothing more is queued. A malformed frame is answered "bad_frame: <why>"
// after the replies to the requests before it, then the connection is
// closed. A client that does not read (a full push queue, a write past
// WriteTimeout) is disconnected and counted, never waited for.
//
// Over TCP, a frame's bytes are read with frame.Reader; over WebSocket one
// binary message carries one whole frame, TotalLen included, and each reply
// or push is one message; both grow their buffer only as bytes arrive. Everything else is shared.
//
// # Memory per connection
//
// An idle connection holds its Conn, the socket, one parked goroutine (the
// reader, 4 KiB of stack; a WebSocket's is started fresh, not the HTTP
// server's grown one), and nothing else: no writer goroutine runs, the read
// buffer is taken from a pool when the first byte of a frame arrives (the
// idle wait is a one-byte read) and given back when the connection has no
// unread bytes, the write buffer is held only while a batch is written, and
// no timer runs once the connection has authenticated (timeouts are socket
// deadlines). TestIdleConnMemory
// and TestIdleWSConnMemory measure it: about 6 KiB over TCP, 18 KiB over
// WebSocket (the library keeps the HTTP server's buffered reader and writer).
//
// # Lock order
//
// Server.mu (the connection set) and Conn.mu (a connection's queues) are
// never held together; neither is held across a call to the Handler, to
// the transport, or a blocking channel operation.
package edge
