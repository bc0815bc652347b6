package edge

import (
	edgeapi "github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// Hello serves an edge.Hello request on c: it decodes payload, checks the
// protocol version, turns pushes on or off as asked, and returns the
// request and a reply filled in with c's session id, its user id if it is
// authenticated, and the limits the client must respect. The broker handles
// ResumeToken (calling c.Authenticate and setting reply.UserID when the
// token is good) and sets BrokerID before encoding the reply with
// thriftx.Marshal.
//
// Errors are wire errors: "bad_request: ..." for a payload that does not
// decode or an unsupported protocol version.
func (s *Server) Hello(c *Conn, payload []byte) (*edgeapi.HelloRequest, *edgeapi.HelloReply, error) {
	req := edgeapi.NewHelloRequest()
	if err := thriftx.Unmarshal(payload, req); err != nil {
		return nil, nil, wire.Errorf(wire.CodeBadRequest, "edge.Hello: %v", err)
	}
	if v := req.GetProtocolVersion(); v < 0 || v > wire.ProtocolVersion {
		return nil, nil, wire.Errorf(wire.CodeBadRequest, "edge.Hello: protocol version %d not supported, this broker speaks %d", v, wire.ProtocolVersion)
	}
	c.SetPush(req.GetPush())
	reply := &edgeapi.HelloReply{
		ProtocolVersion: wire.ProtocolVersion,
		SessionID:       c.ID(),
		MaxFrame:        int32(s.lim.MaxFrame),
		MaxInFlight:     int32(s.opts.MaxInFlight),
	}
	if c.Authenticated() {
		uid := c.UserID()
		reply.UserID = &uid
	}
	return req, reply, nil
}
