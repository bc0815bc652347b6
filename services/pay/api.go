package pay

import (
	"context"
	"errors"
	"strconv"
	"strings"

	paypb "github.com/noonhq/noon/idl/gen/pay"
	"github.com/noonhq/noon/idl/gen/pay/payrpc"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Handlers returns the pay service's handlers, keyed by method: the
// methods of service Pay in idl/pay.thrift.
func (s *Service) Handlers() map[string]services.HandlerFunc {
	hs := payrpc.Handlers[*services.Session](api{s})
	out := make(map[string]services.HandlerFunc, len(hs))
	for m, h := range hs {
		out[m] = services.HandlerFunc(h)
	}
	return out
}

// api serves service Pay (payrpc.Server) with the Service it embeds.
type api struct{ *Service }

// user returns the caller's user id: client methods need a logged-in
// session.
func user(sess *services.Session) (string, error) {
	u := sess.UserID()
	if u == "" {
		return "", wire.Errorf(wire.CodeUnauthenticated, "log in first")
	}
	return u, nil
}

// Validate verifies a store's signed purchase, records it (once per
// provider and transaction id, for the player who first validates it) and
// grants its goods once.
func (s api) Validate(ctx context.Context, sess *services.Session, req *paypb.ValidateRequest) (*paypb.ValidateReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	return s.validate(ctx, me, req)
}

// Status returns one of the caller's purchases.
func (s api) Status(ctx context.Context, sess *services.Session, req *paypb.StatusRequest) (*paypb.StatusReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	id, err := strconv.ParseInt(req.ID, 10, 64)
	if err != nil || id <= 0 {
		return nil, wire.Errorf(wire.CodeBadRequest, "id must be a purchase id, got %q", wire.Snippet(req.ID))
	}
	r, err := s.st.Purchase(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && r.UserID != me) {
		return nil, wire.Errorf(wire.CodeNotFound, "no purchase %s of yours", req.ID)
	}
	if err != nil {
		return nil, s.storeError(err)
	}
	return &paypb.StatusReply{Purchase: purchaseOf(r)}, nil
}

// List pages through the caller's purchases.
func (s api) List(ctx context.Context, sess *services.Session, req *paypb.ListRequest) (*paypb.ListReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	return s.list(ctx, me, req.Cursor, req.Limit)
}

// AdminList pages through a player's purchases (admin).
func (s api) AdminList(ctx context.Context, sess *services.Session, req *paypb.AdminListRequest) (*paypb.ListReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	if req.UserID == "" || len(req.UserID) > 128 {
		return nil, wire.Errorf(wire.CodeBadRequest, "user_id is required")
	}
	return s.list(ctx, req.UserID, req.Cursor, req.Limit)
}

// list pages through user's purchases.
func (s *Service) list(ctx context.Context, user, cursor string, limit int32) (*paypb.ListReply, error) {
	var before int64
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n <= 0 {
			return nil, wire.Errorf(wire.CodeBadRequest, "bad cursor %q", wire.Snippet(cursor))
		}
		before = n
	}
	switch {
	case limit == 0:
		limit = defaultListLimit
	case limit < 0 || limit > maxListLimit:
		return nil, wire.Errorf(wire.CodeBadRequest, "limit must be 0 to %d, got %d", maxListLimit, limit)
	}
	rs, err := s.st.List(ctx, user, before, int(limit))
	if err != nil {
		return nil, s.storeError(err)
	}
	rep := &paypb.ListReply{Purchases: []*paypb.Purchase{}}
	for _, r := range rs {
		rep.Purchases = append(rep.Purchases, purchaseOf(r))
	}
	if len(rs) == int(limit) {
		rep.NextCursor = strconv.FormatInt(rs[len(rs)-1].ID, 10)
	}
	return rep, nil
}

// Replay delivers now the pending outbox rows of a purchase named by its
// id or by "<provider>:<transaction id>" (admin). game's idempotency keys
// make a replay of a delivered grant a no-op.
func (s api) Replay(ctx context.Context, sess *services.Session, req *paypb.ReplayRequest) (*paypb.ReplayReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	var r Record
	var err error
	if id, perr := strconv.ParseInt(req.Ref, 10, 64); perr == nil {
		r, err = s.st.Purchase(ctx, id)
	} else if prov, tx, ok := strings.Cut(req.Ref, ":"); ok {
		r, err = s.st.PurchaseByTx(ctx, prov, tx)
	} else {
		return nil, wire.Errorf(wire.CodeBadRequest, "ref must be a purchase id or <provider>:<transaction id>, got %q", wire.Snippet(req.Ref))
	}
	if errors.Is(err, ErrNotFound) {
		return nil, wire.Errorf(wire.CodeNotFound, "no purchase %q", wire.Snippet(req.Ref))
	}
	if err != nil {
		return nil, s.storeError(err)
	}
	rows, err := s.st.Outbox(ctx, r.ID)
	if err != nil {
		return nil, s.storeError(err)
	}
	delivered := true
	for _, o := range rows {
		ok, err := s.deliver(ctx, o)
		if err != nil {
			// The cause (a service's or the store's error) is logged,
			// not answered: it is no business of the client's.
			s.log.Warn("pay: replay: delivery failed", "purchase", r.ID, "outbox", o.ID, "err", err)
			return nil, wire.Errorf(wire.CodeUnavailable, "delivering the grant failed; the worker retries it; replay later")
		}
		delivered = delivered && ok
	}
	if cur, err := s.st.Purchase(ctx, r.ID); err == nil {
		r = cur
	}
	s.log.Info("pay: replay", "purchase", r.ID, "delivered", delivered)
	return &paypb.ReplayReply{Purchase: purchaseOf(r), Delivered: delivered}, nil
}
