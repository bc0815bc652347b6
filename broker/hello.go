package broker

import (
	"context"
	"time"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// maxResumeToken bounds a resume token: login's tokens are 256 random bits
// (64 hex digits); 1 KiB allows other encodings without letting a client
// make the broker forward a large payload.
const maxResumeToken = 1 << 10

// hello answers edge.Hello: it records the client's push opt-in, resumes
// the session when a resume token is given and valid (through
// Options.AuthValidateMethod; the connection is then logged out when that
// token is revoked or expires, see auth.go), and returns the connection's
// parameters.
// An invalid token is not an error: the reply simply carries no user id and
// the client logs in again.
func (b *Broker) hello(ctx context.Context, r *request) ([]byte, error) {
	req, rep, err := b.edge.Hello(r.c, r.payload)
	if err != nil {
		return nil, err
	}
	rep.BrokerID = b.id
	if tok := req.GetResumeToken(); tok != "" {
		if len(tok) > maxResumeToken {
			return nil, wire.Errorf(wire.CodeBadRequest, "%s: resume_token longer than %d bytes", wire.MethodHello, maxResumeToken)
		}
		user, expires, state, err := b.validate(ctx, r, tok)
		if err != nil {
			return nil, err
		}
		if user != "" {
			gen := b.authenticate(r.s, user, wire.SessionID(tok), expires)
			b.restoreState(r.s, gen, user, state)
		}
	}
	if uid := r.c.UserID(); uid != "" {
		rep.UserID = &uid
	}
	r.s.setPush(b.hub, req.GetPush())
	if req.GetPush() && b.draining.Load() {
		b.pushDraining(r.c)
	}
	out, err := thriftx.Marshal(rep)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "encoding %s reply: %v", wire.MethodHello, err)
	}
	return out, nil
}

// validate asks the login service whether token is a live session and
// returns its user id, its expiry (zero if the reply has none) and its
// saved state (nil if none, see state.go), or "" when it is not. With
// session state on, the request names this broker as the resume holder
// and goes as the broker's own internal request (no client session),
// which is how login knows it may return the state.
func (b *Broker) validate(ctx context.Context, hr *request, token string) (string, time.Time, []byte, error) {
	method, rt, ok := b.routes.Resolve(b.opts.AuthValidateMethod)
	if !ok || rt.Kind == KindLocal {
		return "", time.Time{}, nil, wire.Errorf(wire.CodeInternal, "no route for %s", b.opts.AuthValidateMethod)
	}
	req := &loginpb.ValidateRequest{SessionToken: token}
	if b.states != nil {
		req.ResumeHolder = &b.id
	}
	payload, err := thriftx.Marshal(req)
	if err != nil {
		return "", time.Time{}, nil, wire.Errorf(wire.CodeInternal, "encoding %s: %v", method, err)
	}
	var out []byte
	if b.states != nil {
		out, err = b.internalCall(ctx, method, rt, payload, hr.timeout)
	} else {
		r := &request{c: hr.c, s: hr.s, method: method, route: rt, payload: payload, timeout: hr.timeout}
		var rep *platformpb.Envelope
		if rep, err = b.call(ctx, r); err == nil {
			err = wire.FromEnvelope(rep)
			out = rep.GetPayload()
		}
	}
	if err != nil {
		return "", time.Time{}, nil, err
	}
	var vr loginpb.ValidateReply
	if err := thriftx.Unmarshal(out, &vr); err != nil {
		return "", time.Time{}, nil, wire.Errorf(wire.CodeInternal, "decoding %s reply: %v", method, err)
	}
	if !vr.GetValid() || vr.GetUserID() == "" || len(vr.GetUserID()) > maxUserID {
		return "", time.Time{}, nil, nil
	}
	var expires time.Time
	if vr.IsSetExpiresUnix() && vr.GetExpiresUnix() > 0 {
		expires = time.Unix(vr.GetExpiresUnix(), 0)
	}
	return vr.GetUserID(), expires, vr.GetState(), nil
}
