// Package wire is noon's wire vocabulary, the one copy every other package
// uses: the error codes and the error type that carries them, conversion to
// and from the platform envelope, the protocol constants the broker and its
// clients share (edge.Hello, the protocol version, the draining and
// logged-out events, the "user" binding key, the revocation topic and the
// session id of a token), the validators of names, keys, methods and endpoints
// (one grammar), the snippet helper for quoting bad input, and the rule that
// turns a wildcard bind address into one another process can dial.
//
// It sits at the bottom of the import graph: it imports only the standard
// library and the generated platform messages, so the edge, the link layer,
// yellow, the router, the service runtime and the clients can all use it.
package wire
