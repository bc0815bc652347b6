package wire

// The broker's own client-facing methods and events (idl/edge.thrift), and
// the protocol constants the broker, the services and the clients share.
const (
	// MethodHello is the optional first request of a connection:
	// edge.HelloRequest in, edge.HelloReply out. The broker answers it.
	MethodHello = "edge.Hello"
	// EventDraining is the push type ("@edge.Draining", an edge.Draining)
	// sent to every connection when the broker drains.
	EventDraining = "edge.Draining"
	// ProtocolVersion is the version of the client protocol the edge
	// speaks, sent in HelloReply. A HelloRequest may carry 0 (unset) or
	// any version up to it.
	ProtocolVersion = 1
	// KeyUser is the session binding that authenticates a connection: a
	// reply of an authenticating route that binds user = <id> logs the
	// connection in as <id>.
	KeyUser = "user"
	// PushPrefix starts the first string of a push frame ("@room.Event");
	// an error string never starts with it.
	PushPrefix = '@'
)
