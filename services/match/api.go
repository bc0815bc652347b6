package match

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"strconv"

	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Handlers returns the match service's handlers, keyed by method: the
// methods of service Match in idl/match.thrift.
func (s *Service) Handlers() map[string]services.HandlerFunc {
	return matchrpc.Handlers[*services.Session](api{s})
}

// api serves service Match (matchrpc.Server) with the Service it embeds.
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

// queueOf returns the configured queue named name.
func (s *Service) queueOf(name string) (*queue, error) {
	q := s.queues[name]
	if q == nil {
		return nil, wire.Errorf(wire.CodeNotFound, "no queue %q", wire.Snippet(name))
	}
	return q, nil
}

// queueOfTicket returns the queue a ticket id names; not_found for a
// malformed id or an unknown queue.
func (s *Service) queueOfTicket(tid string) (*queue, error) {
	name, ok := splitTicketID(tid)
	if !ok || s.queues[name] == nil {
		return nil, wire.Errorf(wire.CodeNotFound, "no ticket %q", wire.Snippet(tid))
	}
	return s.queues[name], nil
}

// checkProps validates a ticket's properties against the limits and q's
// needs; it returns the range value and the bucket.
func (q *queue) checkProps(req *matchpb.StartRequest) (value float64, bucket, label string, err error) {
	if len(req.Strings) > maxStrings || len(req.Numbers) > maxNumbers {
		return 0, "", "", wire.Errorf(wire.CodeBadRequest, "at most %d string and %d numeric properties, got %d and %d",
			maxStrings, maxNumbers, len(req.Strings), len(req.Numbers))
	}
	for k, v := range req.Strings {
		if k == "" || len(k) > maxPropKey || len(v) > maxPropValue {
			return 0, "", "", wire.Errorf(wire.CodeBadRequest, "property %q: names are 1 to %d bytes, values at most %d", wire.Snippet(k), maxPropKey, maxPropValue)
		}
	}
	for k, v := range req.Numbers {
		if k == "" || len(k) > maxPropKey {
			return 0, "", "", wire.Errorf(wire.CodeBadRequest, "property %q: names are 1 to %d bytes", wire.Snippet(k), maxPropKey)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, "", "", wire.Errorf(wire.CodeBadRequest, "property %q: must be a finite number", wire.Snippet(k))
		}
	}
	for _, p := range q.Equal {
		if _, ok := req.Strings[p]; !ok {
			return 0, "", "", wire.Errorf(wire.CodeBadRequest, "queue %s matches on string property %q: set it", q.Name, p)
		}
	}
	if q.hasRange {
		v, ok := req.Numbers[q.Range.Property]
		if !ok {
			return 0, "", "", wire.Errorf(wire.CodeBadRequest, "queue %s matches on numeric property %q: set it", q.Name, q.Range.Property)
		}
		value = v
	}
	bucket, label = q.bucket(req.Strings)
	return value, bucket, label, nil
}

// Start queues the caller.
func (s api) Start(ctx context.Context, sess *services.Session, req *matchpb.StartRequest) (*matchpb.StartReply, error) {
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	q, err := s.queueOf(req.Queue)
	if err != nil {
		return nil, err
	}
	value, bucket, label, err := q.checkProps(req)
	if err != nil {
		return nil, err
	}
	now := s.now()
	tid := newTicketID(q.Name)
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	r, err := s.st.start(ctx, q, now, u, tid, sess.ID(), sess.Broker(), bucket, label, value)
	if err != nil {
		s.log.Warn("match: start", "queue", q.Name, "err", err)
		return nil, wireError(err)
	}
	if r.conflict != "" {
		return nil, wire.Errorf(wire.CodeConflict, "already searching in queue %s: ticket %s", q.Name, r.conflict)
	}
	t := &matchpb.Ticket{ID: tid, Queue: q.Name, State: matchpb.STATE_SEARCHING, StartedUnixMs: ms(now)}
	s.tell(ended{ticket: tid, user: u, conn: sess.ID(), broker: sess.Broker(), started: ms(now)}, PushSearching, &matchpb.Searching{Ticket: t})
	if r.ready {
		s.enqueue(q, r.session)
	}
	return &matchpb.StartReply{Ticket: t}, nil
}

// Cancel cancels one of the caller's searching tickets.
func (s api) Cancel(ctx context.Context, sess *services.Session, req *matchpb.CancelRequest) (*matchpb.CancelReply, error) {
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	t, err := s.cancelTicket(ctx, req.Ticket, u, ReasonCancelled)
	if err != nil {
		return nil, err
	}
	return &matchpb.CancelReply{Ticket: t}, nil
}

// cancelTicket cancels ticket tid of user (any user for ""): the ticket,
// or not_found, or conflict when it is matched or being placed.
func (s *Service) cancelTicket(ctx context.Context, tid, u, reason string) (*matchpb.Ticket, error) {
	q, err := s.queueOfTicket(tid)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	r, err := s.st.cancel(ctx, q, s.now(), tid, u, reason)
	if err != nil {
		s.log.Warn("match: cancel", "queue", q.Name, "err", err)
		return nil, wireError(err)
	}
	switch r.status {
	case "not_found":
		return nil, wire.Errorf(wire.CodeNotFound, "no ticket %q", wire.Snippet(tid))
	case "placing":
		return nil, wire.Errorf(wire.CodeConflict, "ticket %s: its match is being placed", tid)
	}
	t := s.ticketOf(q, tid, r.ticket)
	switch {
	case r.status == "ok":
		s.m.cancels.With(q.Name, reason).Inc()
		s.tell(r.ended, PushCancelled, &matchpb.Cancelled{Ticket: t})
	case t.State == matchpb.STATE_MATCHED:
		return nil, wire.Errorf(wire.CodeConflict, "ticket %s is already matched", tid)
	}
	return t, nil // cancelled now, or ended before (cancelled or timed out)
}

// Status returns one of the caller's tickets; a matched ticket's room is
// bound on the connection that started it, as the push would have.
func (s api) Status(ctx context.Context, sess *services.Session, req *matchpb.StatusRequest) (*matchpb.StatusReply, error) {
	u, err := user(sess)
	if err != nil {
		return nil, err
	}
	q, err := s.queueOfTicket(req.Ticket)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	f, err := s.st.ticket(ctx, q, req.Ticket)
	if err != nil {
		return nil, wireError(err)
	}
	if f == nil || f["user"] != u {
		return nil, wire.Errorf(wire.CodeNotFound, "no ticket %q", wire.Snippet(req.Ticket))
	}
	t := s.ticketOf(q, req.Ticket, f)
	if t.State == matchpb.STATE_MATCHED && f["room"] != "" && f["conn"] == sess.ID() && sess.Binding(BindingRoom) != f["room"] {
		sess.Bind(BindingRoom, f["room"])
	}
	return &matchpb.StatusReply{Ticket: t}, nil
}

// ticketOf makes the Ticket of hash f.
func (s *Service) ticketOf(q *queue, tid string, f ticketFields) *matchpb.Ticket {
	started, _ := strconv.ParseInt(f["started"], 10, 64)
	t := &matchpb.Ticket{ID: tid, Queue: q.Name, State: f["state"], StartedUnixMs: started, Reason: f["reason"]}
	if t.State == matchpb.STATE_MATCHED {
		m := &matchpb.Match{Session: f["session"], Placement: q.Placement, RoomID: f["room"], ServerAddr: f["server"]}
		_ = json.Unmarshal([]byte(f["players"]), &m.Players)
		t.Match = m
	}
	return t
}

// serverQueue returns the server-placement queue name names.
func (s *Service) serverQueue(name string) (*queue, error) {
	q, err := s.queueOf(name)
	if err != nil {
		return nil, err
	}
	if !q.serverMode() {
		return nil, wire.Errorf(wire.CodeBadRequest, "queue %s places on rooms, not servers", q.Name)
	}
	return q, nil
}

// validServerID reports whether id may name a server: 1..64 bytes of
// [A-Za-z0-9_.:-].
func validServerID(id string) bool {
	if id == "" || len(id) > maxServerIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// checkServer checks a server request's caller, queue and id.
func (s *Service) checkServer(sess *services.Session, queueName, id string) (*queue, error) {
	if err := sess.RequireService(s.opts.ServerIdentities...); err != nil {
		return nil, err
	}
	q, err := s.serverQueue(queueName)
	if err != nil {
		return nil, err
	}
	if !validServerID(id) {
		return nil, wire.Errorf(wire.CodeBadRequest, "server_id must be 1 to %d bytes of [A-Za-z0-9_.:-], got %q", maxServerIDLen, wire.Snippet(id))
	}
	return q, nil
}

// RegisterServer adds or updates a dedicated server.
func (s api) RegisterServer(ctx context.Context, sess *services.Session, req *matchpb.RegisterServerRequest) (*matchpb.RegisterServerReply, error) {
	q, err := s.checkServer(sess, req.Queue, req.ServerID)
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(req.Addr)
	if p, perr := strconv.Atoi(port); err != nil || host == "" || len(req.Addr) > maxAddrLen || perr != nil || p < 1 || p > 65535 {
		return nil, wire.Errorf(wire.CodeBadRequest, "addr must be host:port, got %q", wire.Snippet(req.Addr))
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if _, err := s.st.server(ctx, registerServerScript, "register_server", q, s.now(), req.ServerID, req.Addr, boolArg(req.Available)); err != nil {
		return nil, wireError(err)
	}
	if req.Available {
		s.wake()
	}
	return &matchpb.RegisterServerReply{}, nil
}

// ServerAvailable marks a dedicated server available again.
func (s api) ServerAvailable(ctx context.Context, sess *services.Session, req *matchpb.ServerAvailableRequest) (*matchpb.ServerAvailableReply, error) {
	q, err := s.checkServer(sess, req.Queue, req.ServerID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	n, err := s.st.server(ctx, serverAvailableScript, "server_available", q, s.now(), req.ServerID)
	if err != nil {
		return nil, wireError(err)
	}
	if n == 0 {
		return nil, wire.Errorf(wire.CodeNotFound, "no server %q in queue %s: register it", wire.Snippet(req.ServerID), q.Name)
	}
	s.wake()
	return &matchpb.ServerAvailableReply{}, nil
}

// LeaveServer removes a dedicated server.
func (s api) LeaveServer(ctx context.Context, sess *services.Session, req *matchpb.LeaveServerRequest) (*matchpb.LeaveServerReply, error) {
	q, err := s.checkServer(sess, req.Queue, req.ServerID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	n, err := s.st.server(ctx, leaveServerScript, "leave_server", q, s.now(), req.ServerID)
	if err != nil {
		return nil, wireError(err)
	}
	if n == 0 {
		return nil, wire.Errorf(wire.CodeNotFound, "no server %q in queue %s", wire.Snippet(req.ServerID), q.Name)
	}
	return &matchpb.LeaveServerReply{}, nil
}

// Queues lists the queues with their figures, read from Redis now.
func (s api) Queues(ctx context.Context, sess *services.Session, _ *matchpb.QueuesRequest) (*matchpb.QueuesReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	now := s.now()
	out := &matchpb.QueuesReply{Queues: make([]*matchpb.QueueStats, 0, len(s.order))}
	for _, q := range s.order {
		f, servers, avail, err := s.st.figures(ctx, q)
		if err != nil {
			return nil, wireError(err)
		}
		st := &matchpb.QueueStats{
			Name: q.Name, Placement: q.Placement, MinPlayers: int32(q.MinPlayers), MaxPlayers: int32(q.MaxPlayers),
			Tickets: f.tickets, OpenSessions: f.open, ReadySessions: f.ready,
			Servers: servers, ServersAvailable: avail,
		}
		if f.oldestStarted != 0 {
			st.OldestTicketMs = max(0, ms(now)-f.oldestStarted)
		}
		if f.oldestReady != 0 {
			st.OldestReadyMs = max(0, ms(now)-f.oldestReady)
		}
		if f.ready > 0 && f.oldestReady != 0 && st.OldestReadyMs >= s.opts.ScaleOutAfter.Milliseconds() {
			out.ScaleOut = true
		}
		out.Queues = append(out.Queues, st)
	}
	return out, nil
}

// Tickets lists a queue's searching tickets, oldest first.
func (s api) Tickets(ctx context.Context, sess *services.Session, req *matchpb.TicketsRequest) (*matchpb.TicketsReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	q, err := s.queueOf(req.Queue)
	if err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	switch {
	case limit < 0:
		return nil, wire.Errorf(wire.CodeBadRequest, "limit must be >= 0, got %d", limit)
	case limit == 0:
		limit = defaultTicketsLimit
	case limit > maxTicketsLimit:
		limit = maxTicketsLimit
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	list, err := s.st.searching(ctx, q, limit)
	if err != nil {
		return nil, wireError(err)
	}
	out := &matchpb.TicketsReply{Tickets: make([]*matchpb.TicketInfo, 0, len(list))}
	for _, f := range list {
		out.Tickets = append(out.Tickets, &matchpb.TicketInfo{
			Ticket: s.ticketOf(q, f["id"], f), UserID: f["user"], Session: f["msession"], Bucket: f["bucket"],
		})
	}
	return out, nil
}

// AdminCancel cancels any ticket (reason "operator").
func (s api) AdminCancel(ctx context.Context, sess *services.Session, req *matchpb.AdminCancelRequest) (*matchpb.AdminCancelReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	t, err := s.cancelTicket(ctx, req.Ticket, "", ReasonOperator)
	if err != nil {
		return nil, err
	}
	return &matchpb.AdminCancelReply{Ticket: t}, nil
}
