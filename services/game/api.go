package game

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Handlers returns the game service's handlers, keyed by method: the
// methods of service Game in idl/game.thrift. Each refusal is counted in
// game_rejections_total by method and code.
func (s *Service) Handlers() map[string]services.HandlerFunc {
	hs := gamerpc.Handlers[*services.Session](api{s})
	out := make(map[string]services.HandlerFunc, len(hs))
	for m, h := range hs {
		out[m] = func(ctx context.Context, sess *services.Session, b []byte) ([]byte, error) {
			rep, err := h(ctx, sess, b)
			if err != nil {
				s.m.rejections.With(m, wire.CodeOf(err)).Inc()
			}
			return rep, err
		}
	}
	return out
}

// api serves service Game (gamerpc.Server) with the Service it embeds.
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

// admin returns the calling operator's identity for the audit log: the
// certificate's ("admin"), or "unknown" on a plain link.
func admin(sess *services.Session) string {
	if id, ok := sess.Caller(); ok {
		return id.String()
	}
	return "unknown"
}

// GetProfile returns a profile; others see only its public part.
func (s api) GetProfile(ctx context.Context, sess *services.Session, req *gamepb.GetProfileRequest) (*gamepb.GetProfileReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	who := req.UserID
	if who == "" {
		who = me
	}
	if err := checkUserID(who); err != nil {
		return nil, err
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	p, err := s.st.Profile(ctx, who)
	switch {
	case errors.Is(err, ErrNotFound) && who == me:
		p = Profile{UserID: me, Metadata: "{}", PrivateMetadata: "{}"} // not created until something changes
	case errors.Is(err, ErrNotFound):
		return nil, wire.Errorf(wire.CodeNotFound, "no player %q", wire.Snippet(who))
	case err != nil:
		return nil, s.storeError(gamerpc.MethodGetProfile, err)
	}
	var stats map[string]int64
	if who == me {
		if stats, err = s.st.Stats(ctx, me); err != nil {
			return nil, s.storeError(gamerpc.MethodGetProfile, err)
		}
	}
	return &gamepb.GetProfileReply{Profile: profileOf(p, stats, who == me)}, nil
}

// UpdateProfile changes the caller's owner-writable fields.
func (s api) UpdateProfile(ctx context.Context, sess *services.Session, req *gamepb.UpdateProfileRequest) (*gamepb.UpdateProfileReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	if req.DisplayName != nil {
		if err := checkDisplayName(*req.DisplayName); err != nil {
			return nil, err
		}
	}
	if req.Avatar != nil {
		if err := checkText("avatar", *req.Avatar, maxAvatarLen, false); err != nil {
			return nil, err
		}
	}
	if req.Metadata != nil {
		if err := s.checkMetadata("metadata", *req.Metadata); err != nil {
			return nil, err
		}
	}
	if req.PrivateMetadata != nil {
		if err := s.checkMetadata("private_metadata", *req.PrivateMetadata); err != nil {
			return nil, err
		}
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	p, err := s.st.UpdateProfile(ctx, me, ProfileUpdate{DisplayName: req.DisplayName, Avatar: req.Avatar, Metadata: req.Metadata, PrivateMetadata: req.PrivateMetadata}, s.now())
	if err != nil {
		return nil, s.storeError(gamerpc.MethodUpdateProfile, err)
	}
	stats, err := s.st.Stats(ctx, me)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodUpdateProfile, err)
	}
	return &gamepb.UpdateProfileReply{Profile: profileOf(p, stats, true)}, nil
}

// GetInventory lists the caller's items.
func (s api) GetInventory(ctx context.Context, sess *services.Session, _ *gamepb.GetInventoryRequest) (*gamepb.GetInventoryReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	counts, err := s.st.Inventory(ctx, me)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodGetInventory, err)
	}
	return &gamepb.GetInventoryReply{Items: s.inventoryOf(counts)}, nil
}

// ConsumeItem uses up count of a consumable item of the caller's.
func (s api) ConsumeItem(ctx context.Context, sess *services.Session, req *gamepb.ConsumeItemRequest) (*gamepb.ChangeReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	it, ok := s.items[req.Item]
	switch {
	case !ok:
		return nil, wire.Errorf(wire.CodeNotFound, "no item %q", wire.Snippet(req.Item))
	case !it.Consumable:
		return nil, wire.Errorf(wire.CodeBadRequest, "item %s is not consumable", it.ID)
	case req.Count <= 0 || req.Count > MaxItemCount:
		return nil, wire.Errorf(wire.CodeBadRequest, "count must be in [1, %d], got %d", MaxItemCount, req.Count)
	}
	if err := checkKey(req.IdempotencyKey); err != nil {
		return nil, err
	}
	c := Change{Kind: KindConsume, Key: req.IdempotencyKey, Reason: KindConsume,
		Items: []Delta{{Name: it.ID, Delta: -req.Count, Max: it.MaxCount}}, At: s.now()}
	return s.apply(ctx, gamerpc.MethodConsumeItem, me, c)
}

// GetWallet returns the caller's balances.
func (s api) GetWallet(ctx context.Context, sess *services.Session, _ *gamepb.GetWalletRequest) (*gamepb.GetWalletReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	bal, err := s.st.Wallet(ctx, me)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodGetWallet, err)
	}
	return &gamepb.GetWalletReply{Balances: s.walletOf(bal)}, nil
}

// ListLedger pages through the caller's ledger, newest first.
func (s api) ListLedger(ctx context.Context, sess *services.Session, req *gamepb.ListLedgerRequest) (*gamepb.ListLedgerReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	q := LedgerQuery{Currency: req.GetCurrency(), Limit: int(req.Limit)}
	switch {
	case q.Limit < 0:
		return nil, wire.Errorf(wire.CodeBadRequest, "limit must be >= 0, got %d", q.Limit)
	case q.Limit == 0:
		q.Limit = defaultLedgerLimit
	case q.Limit > maxLedgerLimit:
		q.Limit = maxLedgerLimit
	}
	if q.Currency != "" && !validName(q.Currency) {
		return nil, wire.Errorf(wire.CodeBadRequest, "currency %q is not a currency name", wire.Snippet(q.Currency))
	}
	if req.Cursor != "" {
		seq, cur, ok := parseCursor(req.Cursor)
		if !ok {
			return nil, wire.Errorf(wire.CodeBadRequest, "cursor %q is not one this service made", wire.Snippet(req.Cursor))
		}
		q.BeforeSeq, q.AfterCurrency = seq, cur
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	entries, err := s.st.Ledger(ctx, me, q)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodListLedger, err)
	}
	out := &gamepb.ListLedgerReply{Entries: make([]*gamepb.LedgerEntry, 0, len(entries))}
	for _, e := range entries {
		out.Entries = append(out.Entries, &gamepb.LedgerEntry{Seq: e.Seq, Currency: e.Currency, Delta: e.Delta, Balance: e.Balance,
			Reason: e.Reason, Reference: e.Reference, IdempotencyKey: e.Key, AtUnixMs: e.At.UnixMilli()})
	}
	if len(entries) == q.Limit {
		last := entries[len(entries)-1]
		out.NextCursor = strconv.FormatInt(last.Seq, 10) + "." + last.Currency
	}
	return out, nil
}

// parseCursor parses a ledger cursor, "<seq>.<currency>".
func parseCursor(c string) (int64, string, bool) {
	n, cur, ok := strings.Cut(c, ".")
	seq, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || seq <= 0 || !validName(cur) {
		return 0, "", false
	}
	return seq, cur, true
}

// boardOf returns the configured board id names.
func (s *Service) boardOf(id string) (*board, error) {
	b := s.boards[id]
	if b == nil {
		return nil, wire.Errorf(wire.CodeNotFound, "no board %q", wire.Snippet(id))
	}
	return b, nil
}

// submit records user's score on b.
func (s *Service) submit(ctx context.Context, method string, b *board, u string, score int64) (*gamepb.SubmitScoreReply, error) {
	if score > MaxScore || score < -MaxScore {
		return nil, wire.Errorf(wire.CodeBadRequest, "score must be within ±%d, got %d", int64(MaxScore), score)
	}
	now := s.now()
	season, end := b.season(now)
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	row, err := s.st.SubmitScore(ctx, b.ID, season, u, score, b.op, now)
	if errors.Is(err, ErrLimit) {
		return nil, wire.Errorf(wire.CodeBadRequest, "%s; nothing changed", trimPrefix(err))
	}
	if err != nil {
		return nil, s.storeError(method, err)
	}
	s.m.submits.With(b.ID).Inc()
	rank, err := s.lb.submit(ctx, b, season, end, row)
	if err != nil {
		// The score is stored; the ranks catch up at the next rebuild.
		return nil, s.storeError(method, err)
	}
	return &gamepb.SubmitScoreReply{Score: row.Score, Rank: rank, Season: season}, nil
}

// SubmitScore submits the caller's score to a board that takes clients'.
func (s api) SubmitScore(ctx context.Context, sess *services.Session, req *gamepb.SubmitScoreRequest) (*gamepb.SubmitScoreReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	b, err := s.boardOf(req.Board)
	if err != nil {
		return nil, err
	}
	if !b.ClientSubmit {
		return nil, wire.Errorf(wire.CodeUnauthenticated, "board %s takes scores from the game's servers only", b.ID)
	}
	return s.submit(ctx, gamerpc.MethodSubmitScore, b, me, req.Score)
}

// scores turns ranked rows into replies' rows, with display names.
func (s *Service) scores(ctx context.Context, b *board, r ranked) ([]*gamepb.Score, error) {
	ids := make([]string, len(r.rows))
	for i, z := range r.rows {
		ids[i], _ = z.Member.(string)
	}
	names, err := s.st.DisplayNames(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*gamepb.Score, len(r.rows))
	for i, z := range r.rows {
		out[i] = &gamepb.Score{Rank: r.first + int64(i), UserID: ids[i], Score: b.score(z.Score), DisplayName: names[ids[i]]}
	}
	return out, nil
}

// Top returns a board's first rows.
func (s api) Top(ctx context.Context, sess *services.Session, req *gamepb.TopRequest) (*gamepb.TopReply, error) {
	if _, err := user(sess); err != nil {
		return nil, err
	}
	b, err := s.boardOf(req.Board)
	if err != nil {
		return nil, err
	}
	n, err := bound("n", int(req.N), defaultTop, maxTop)
	if err != nil {
		return nil, err
	}
	season, end := b.season(s.now())
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	r, err := s.lb.top(ctx, b, season, end, n)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodTop, err)
	}
	rows, err := s.scores(ctx, b, r)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodTop, err)
	}
	return &gamepb.TopReply{Scores: rows, Season: season}, nil
}

// AroundMe returns the rows around the caller's.
func (s api) AroundMe(ctx context.Context, sess *services.Session, req *gamepb.AroundMeRequest) (*gamepb.AroundMeReply, error) {
	me, err := user(sess)
	if err != nil {
		return nil, err
	}
	b, err := s.boardOf(req.Board)
	if err != nil {
		return nil, err
	}
	n, err := bound("n", int(req.N), defaultAround, maxAround)
	if err != nil {
		return nil, err
	}
	season, end := b.season(s.now())
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	r, err := s.lb.around(ctx, b, season, end, me, n)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodAroundMe, err)
	}
	rows, err := s.scores(ctx, b, r)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodAroundMe, err)
	}
	return &gamepb.AroundMeReply{Scores: rows, Season: season}, nil
}

// bound checks a count: 0 means def, past hi is hi.
func bound(field string, v, def, hi int) (int, error) {
	switch {
	case v < 0:
		return 0, wire.Errorf(wire.CodeBadRequest, "%s must be >= 0, got %d", field, v)
	case v == 0:
		return def, nil
	}
	return min(v, hi), nil
}

// Grant gives a player currencies, items and stats (server paths).
func (s api) Grant(ctx context.Context, sess *services.Session, req *gamepb.GrantRequest) (*gamepb.ChangeReply, error) {
	if err := sess.RequireService(s.trusted...); err != nil {
		return nil, err
	}
	c, err := s.grantChange(req, KindGrant)
	if err != nil {
		return nil, err
	}
	return s.apply(ctx, gamerpc.MethodGrant, req.UserID, c)
}

// Spend takes currencies and items from a player (server paths).
func (s api) Spend(ctx context.Context, sess *services.Session, req *gamepb.SpendRequest) (*gamepb.ChangeReply, error) {
	if err := sess.RequireService(s.trusted...); err != nil {
		return nil, err
	}
	c, err := s.spendChange(req, KindSpend)
	if err != nil {
		return nil, err
	}
	return s.apply(ctx, gamerpc.MethodSpend, req.UserID, c)
}

// SubmitScoreFor submits a player's score to any board (server paths).
func (s api) SubmitScoreFor(ctx context.Context, sess *services.Session, req *gamepb.SubmitScoreForRequest) (*gamepb.SubmitScoreReply, error) {
	if err := sess.RequireService(s.trusted...); err != nil {
		return nil, err
	}
	if err := checkUserID(req.UserID); err != nil {
		return nil, err
	}
	b, err := s.boardOf(req.Board)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, gamerpc.MethodSubmitScoreFor, b, req.UserID, req.Score)
}

// BanStatus says whether a player is banned (the trusted services and
// login; admins).
func (s api) BanStatus(ctx context.Context, sess *services.Session, req *gamepb.BanStatusRequest) (*gamepb.BanStatusReply, error) {
	if err := sess.RequireService(s.banCallers...); err != nil {
		return nil, err
	}
	if err := checkUserID(req.UserID); err != nil {
		return nil, err
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	p, err := s.st.Profile(ctx, req.UserID)
	if errors.Is(err, ErrNotFound) {
		return &gamepb.BanStatusReply{}, nil
	}
	if err != nil {
		return nil, s.storeError(gamerpc.MethodBanStatus, err)
	}
	return banOf(p.Ban, s.now()), nil
}

// GetPlayer returns everything about a player (admin).
func (s api) GetPlayer(ctx context.Context, sess *services.Session, req *gamepb.GetPlayerRequest) (*gamepb.GetPlayerReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	if err := checkUserID(req.UserID); err != nil {
		return nil, err
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	p, err := s.st.Profile(ctx, req.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, wire.Errorf(wire.CodeNotFound, "no player %q", wire.Snippet(req.UserID))
	}
	if err != nil {
		return nil, s.storeError(gamerpc.MethodGetPlayer, err)
	}
	stats, err := s.st.Stats(ctx, req.UserID)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodGetPlayer, err)
	}
	inv, err := s.st.Inventory(ctx, req.UserID)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodGetPlayer, err)
	}
	bal, err := s.st.Wallet(ctx, req.UserID)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodGetPlayer, err)
	}
	return &gamepb.GetPlayerReply{Player: &gamepb.Player{Profile: profileOf(p, stats, true), Items: s.inventoryOf(inv),
		Balances: s.walletOf(bal), Ban: banOf(p.Ban, s.now()), Seq: p.Seq}}, nil
}

// audit is the audit line of an operator's action.
func (s *Service) audit(sess *services.Session, action, user, reason string, req any) (*AuditEntry, error) {
	if err := checkText("reason", reason, maxAuditReason, true); err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "%s: an operator says why", strings.TrimPrefix(err.Error(), "bad_request: "))
	}
	detail, _ := json.Marshal(req)
	return &AuditEntry{At: s.now(), Admin: admin(sess), Action: action, UserID: user, Reason: reason, Detail: string(detail)}, nil
}

// AdminGrant is an operator's Grant, audited.
func (s api) AdminGrant(ctx context.Context, sess *services.Session, req *gamepb.AdminGrantRequest) (*gamepb.ChangeReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	c, err := s.grantChange(req.Grant, KindAdminGrant)
	if err != nil {
		return nil, err
	}
	if c.Audit, err = s.audit(sess, KindAdminGrant, req.Grant.UserID, req.Grant.Reason, req.Grant); err != nil {
		return nil, err
	}
	return s.apply(ctx, gamerpc.MethodAdminGrant, req.Grant.UserID, c)
}

// AdminTake is an operator's Spend, audited.
func (s api) AdminTake(ctx context.Context, sess *services.Session, req *gamepb.AdminTakeRequest) (*gamepb.ChangeReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	c, err := s.spendChange(req.Take, KindAdminTake)
	if err != nil {
		return nil, err
	}
	if c.Audit, err = s.audit(sess, KindAdminTake, req.Take.UserID, req.Take.Reason, req.Take); err != nil {
		return nil, err
	}
	return s.apply(ctx, gamerpc.MethodAdminTake, req.Take.UserID, c)
}

// SetStat sets a player's stat, audited.
func (s api) SetStat(ctx context.Context, sess *services.Session, req *gamepb.SetStatRequest) (*gamepb.ChangeReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	if err := s.changeHeader(req.UserID, req.Reason, "", req.IdempotencyKey); err != nil {
		return nil, err
	}
	if !validName(req.Stat) {
		return nil, wire.Errorf(wire.CodeBadRequest, "stat %q: names match [a-z0-9][a-z0-9_-]{0,31}", wire.Snippet(req.Stat))
	}
	a, err := s.audit(sess, KindSetStat, req.UserID, req.Reason, req)
	if err != nil {
		return nil, err
	}
	c := Change{Kind: KindSetStat, Key: req.IdempotencyKey, Reason: req.Reason, SetStats: []Delta{{Name: req.Stat, Delta: req.Value}},
		Audit: a, At: s.now()}
	return s.apply(ctx, gamerpc.MethodSetStat, req.UserID, c)
}

// Ban bans a player for a duration, audited.
func (s api) Ban(ctx context.Context, sess *services.Session, req *gamepb.BanRequest) (*gamepb.BanReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	if err := checkUserID(req.UserID); err != nil {
		return nil, err
	}
	if req.DurationSeconds <= 0 || req.DurationSeconds > int64(maxBanDuration/time.Second) {
		return nil, wire.Errorf(wire.CodeBadRequest, "duration_seconds must be in [1, %d], got %d", int64(maxBanDuration/time.Second), req.DurationSeconds)
	}
	d := time.Duration(req.DurationSeconds) * time.Second
	a, err := s.audit(sess, "ban", req.UserID, req.Reason, req)
	if err != nil {
		return nil, err
	}
	return s.setBan(ctx, gamerpc.MethodBan, req.UserID, Ban{Until: a.At.Add(d), Reason: req.Reason}, a)
}

// Unban lifts a player's ban, audited.
func (s api) Unban(ctx context.Context, sess *services.Session, req *gamepb.UnbanRequest) (*gamepb.BanReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	if err := checkUserID(req.UserID); err != nil {
		return nil, err
	}
	a, err := s.audit(sess, "unban", req.UserID, req.Reason, req)
	if err != nil {
		return nil, err
	}
	return s.setBan(ctx, gamerpc.MethodUnban, req.UserID, Ban{}, a)
}

func (s *Service) setBan(ctx context.Context, method, u string, b Ban, a *AuditEntry) (*gamepb.BanReply, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	got, err := s.st.SetBan(ctx, u, b, *a)
	if err != nil {
		return nil, s.storeError(method, err)
	}
	s.log.Info("game: "+a.Action, "user_id", u, "admin", a.Admin, "reason", a.Reason, "until", got.Until)
	return &gamepb.BanReply{Ban: banOf(got, s.now())}, nil
}

// Audit lists operator actions (admin).
func (s api) Audit(ctx context.Context, sess *services.Session, req *gamepb.AuditRequest) (*gamepb.AuditReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	if req.UserID != "" {
		if err := checkUserID(req.UserID); err != nil {
			return nil, err
		}
	}
	limit, err := bound("limit", int(req.Limit), defaultAuditLimit, maxAuditLimit)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	list, err := s.st.Audit(ctx, req.UserID, limit)
	if err != nil {
		return nil, s.storeError(gamerpc.MethodAudit, err)
	}
	out := &gamepb.AuditReply{Entries: make([]*gamepb.AuditEntry, 0, len(list))}
	for _, e := range list {
		out.Entries = append(out.Entries, &gamepb.AuditEntry{ID: e.ID, AtUnixMs: e.At.UnixMilli(), Admin: e.Admin, Action: e.Action,
			UserID: e.UserID, Reason: e.Reason, Detail: e.Detail})
	}
	return out, nil
}

var _ gamerpc.Server[*services.Session] = api{}
