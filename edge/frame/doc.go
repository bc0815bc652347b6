// Package frame is the pandaparty frame codec spoken between clients and the
// edge.
//
// Every integer is a big-endian int32 and a length never counts its own four
// bytes:
//
//	request  (client -> edge): TotalLen | MethodLen | Method | PayloadLen | Payload
//	response (edge -> client): TotalLen | ErrLen    | Err    | PayloadLen | Payload
//
// TotalLen = 4 + len(first string) + 4 + len(payload). The first string of a
// request is the method ("login.Login"); of a response it is the error text,
// empty on success. A push is a response-shaped frame whose first string is
// "@" followed by an event type ("@room.Event"); an error string never starts
// with "@". For example the request for method "Ping" with payload 0a 02 68 69
// is
//
//	00 00 00 10  00 00 00 04  50 69 6e 67  00 00 00 04  0a 02 68 69
//
// Decoding checks every length before it is trusted: the total against
// [Limits.MaxFrame] before any buffer is sized, the inner lengths for sign,
// against the name limits, and for adding up exactly to the total. Every such
// rejection is an [*Error] that matches [ErrBadFrame] with [errors.Is], so the
// edge can answer "bad_frame: " + err.Error() and close the connection. A
// stream that ends inside a frame yields [io.ErrUnexpectedEOF]; one that ends
// cleanly between frames yields [io.EOF].
//
// Over TCP use [Reader] and [Writer]; their hot paths allocate nothing. Over
// WebSocket, where one binary message carries one whole frame including its
// TotalLen, use [DecodeRequestFrame] and [DecodeResponseFrame] on the message
// and the Append functions to build one.
package frame
