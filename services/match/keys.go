package match

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	matchpb "github.com/noonhq/noon/idl/gen/match"
)

// The key layout. Every key of queue Q is <prefix>{Q}:<Name>, so that in
// Redis Cluster all of a queue's keys hash to one slot (the hash tag is
// the queue's name) and each script touches one node:
//
//	Servers                       hash   server id -> "IP:port"
//	ServersAvailable              set    server ids free to host a session
//	Player:<user>                 hash   the user's searching ticket in Q: ticket,
//	                                     session, value, bucket, conn, broker,
//	                                     started, gone_at
//	PlayersTimeStartedMatchmaking zset   user -> ms the ticket started (searching)
//	Session:<sid>                 hash   created, bucket, center, lo, hi, count,
//	                                     ready_at, placing_by, claim, room,
//	                                     server, addr
//	SessionsPerMatchmaking:<b>    zset   open sessions of bucket b -> created ms
//	SessionPlayers:<sid>          zset   user -> ms the ticket started (members,
//	                                     oldest first)
//	SessionsReady                 zset   full (or old enough) sessions waiting
//	                                     for placement -> ms they became ready
//	SessionsCreationTime          zset   open sessions -> created ms
//
// and what the seed's table leaves out:
//
//	Ticket:<id>                   hash   user, state, started, conn, broker,
//	                                     bucket, reason, ended, session, room,
//	                                     server, players (JSON); expires
//	                                     ticket_retention after it ends
//	SessionsPlacing               zset   claimed ready sessions -> claim ms
//	SessionsAtMin                 zset   open sessions with >= min_players ->
//	                                     created ms
//	SessionsMergeAt               zset   open sessions -> ms of their next merge
//	                                     check
//	SessionsByRange:<b>           zset   open sessions of bucket b -> center
//	                                     (queues with a range)
//	PlayersGone                   zset   user -> ms their ticket is cancelled
//	                                     unless the player comes back
//	Brokers                       set    brokers holding tickets' connections
//	BrokerPlayers:<broker>        set    users whose ticket a broker's
//	                                     connection holds
//	BrokersGone                   hash   broker -> ms it was first seen gone
//
// SessionsPerMatchmaking, SessionPlayers and SessionsReady are sorted sets
// where the seed has sets: oldest first is then one ZRANGE.
const (
	keyServers          = "Servers"
	keyServersAvailable = "ServersAvailable"
	keyPlayer           = "Player:"
	keyPlayersStarted   = "PlayersTimeStartedMatchmaking"
	keySessionsBucket   = "SessionsPerMatchmaking:"
	keySessionsReady    = "SessionsReady"
	keySessionsCreated  = "SessionsCreationTime"
	keyTicket           = "Ticket:"
	keySessionsPlacing  = "SessionsPlacing"
	keySessionsAtMin    = "SessionsAtMin"
	keySessionsMergeAt  = "SessionsMergeAt"
	keySessionsByRange  = "SessionsByRange:"
	keyPlayersGone      = "PlayersGone"
	keyBrokers          = "Brokers"
	keyBrokerPlayers    = "BrokerPlayers:"
	keyBrokersGone      = "BrokersGone"
)

// queue is a configured queue, compiled: its options with defaults and
// the base of its keys.
type queue struct {
	QueueOptions
	// base is <prefix>{<name>}: every key of the queue starts with it.
	base string
	// hasRange and the window's parameters.
	hasRange         bool
	width0, widen, w float64
}

// newQueue compiles o (valid) under prefix.
func newQueue(prefix string, o QueueOptions) *queue {
	o = o.withDefaults()
	q := &queue{QueueOptions: o, base: prefix + "{" + o.Name + "}:"}
	if r := o.Range; r != nil {
		q.hasRange = true
		q.width0, q.widen, q.w = r.Initial, r.WidenPerSecond, r.Max
	}
	return q
}

// key returns the queue's key name (one of the key constants, with its id
// for the per-item keys).
func (q *queue) key(name string) string { return q.base + name }

// ticketKey, playerKey and sessionKey name per-item keys.
func (q *queue) ticketKey(id string) string   { return q.base + keyTicket + id }
func (q *queue) playerKey(user string) string { return q.base + keyPlayer + user }
func (q *queue) sessionKey(sid string) string { return q.base + "Session:" + sid }

// bucket returns the bucket of a ticket with string properties strs (which
// hold every equality property): its key part, a hash of the values that
// is safe in a key whatever they are, and its label for operators
// ("region=\"eu\" mode=\"duel\"").
func (q *queue) bucket(strs map[string]string) (key, label string) {
	if len(q.Equal) == 0 {
		return "all", ""
	}
	h := sha256.New()
	var lb strings.Builder
	for i, p := range q.Equal {
		v := strs[p]
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
		if i > 0 {
			lb.WriteByte(' ')
		}
		lb.WriteString(p)
		lb.WriteByte('=')
		lb.WriteString(strconv.Quote(v))
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), lb.String()
}

// idLen is the length of the random part of ticket and session ids.
const idLen = 16

// idEncoding spells ids: lower-case base32, no padding.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomID returns 16 characters of lower-case base32 (80 random bits).
func randomID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// newTicketID returns a ticket id of queue: "<queue>.<16 chars>", so a
// ticket names its queue (and its keys' slot).
func newTicketID(queue string) string { return queue + "." + randomID() }

// newSessionID returns a match session id: "s" and 16 characters.
func newSessionID() string { return "s" + randomID() }

// roomIDFor returns the n-th candidate room id of session sid: "m<sid>-<n>",
// 1..64 bytes of [A-Za-z0-9_-] as room ids must be.
func roomIDFor(sid string, n int) string { return "m" + sid + "-" + strconv.Itoa(n) }

// splitTicketID returns the queue a ticket id names, and whether id is
// well formed ("<queue>.<16 chars of [a-z2-7]>").
func splitTicketID(id string) (string, bool) {
	if len(id) > maxTicketIDLen {
		return "", false
	}
	q, rest, ok := strings.Cut(id, ".")
	if !ok || !validQueueName(q) || len(rest) != idLen {
		return "", false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", false
		}
	}
	return q, true
}

// ms returns t in Unix milliseconds, as the scripts keep time.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fmtFloat formats v exactly, for a script argument.
func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// serverMode reports whether q places on dedicated servers.
func (q *queue) serverMode() bool { return q.Placement == matchpb.PLACEMENT_SERVER }
