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
	// EventLoggedOut is the push type ("@edge.LoggedOut", an
	// edge.LoggedOut) sent to a connection the broker logs out because its
	// session was revoked or expired.
	EventLoggedOut = "edge.LoggedOut"
	// EventRevoked is the type of the login service's internal event (a
	// login.Revoked) on TopicRevoked: sessions that ended before their
	// expiry. No client ever sees it.
	EventRevoked = "login.Revoked"
	// TopicRevoked is the topic EventRevoked is published on. Its leading
	// "_" is outside the name grammar, so no binding topic ("<key>/<value>")
	// can be it, and the broker refuses client subscriptions to topics
	// starting with "_" (reserved for the platform).
	TopicRevoked = "_noon/revoked"
	// EventSession is the type of a service's internal event (a
	// platformpb.SessionDirectives) on SessionTopic(broker): changes to
	// named connections of that broker, made with no request from the
	// client (the matchmaker binding room = <id> and pushing
	// "@match.Matched"). A broker takes it only from the instances of a
	// service whose routes may bind every key it sets.
	EventSession = "_noon.Session"
	// TopicPresence is the topic every broker publishes EventPresence on.
	TopicPresence = "_noon/presence"
	// EventPresence is the type of a broker's event (a platformpb.Presence)
	// on TopicPresence: a connection logged in (or resumed) as a user, or
	// left (closed or logged out).
	EventPresence = "_noon.Presence"
	// MethodDrain is the platform's internal method, served by every
	// service instance's runtime (not by a service's handlers), that asks
	// the instance to drain as on SIGTERM: the reply (empty) comes at
	// once, the drain follows. Only admin identities may call it (noonctl
	// drain); its leading "_" is outside the name grammar, so no service's
	// method or route can be it.
	MethodDrain = "_noon.Drain"
	// ReservedTopicPrefix starts the platform's own topics, which no
	// session may subscribe to.
	ReservedTopicPrefix = "_"
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

// sessionTopicPrefix starts SessionTopic.
const sessionTopicPrefix = "_noon/session/"

// SessionTopic is the topic a broker follows, on the instances of the
// services that may set bindings, for EventSession directives addressed
// to its connections: "_noon/session/<broker id>".
func SessionTopic(broker string) string { return sessionTopicPrefix + broker }
