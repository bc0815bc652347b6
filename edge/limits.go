package edge

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/internal/realip"
	"github.com/noonhq/noon/wire"
)

// This file holds the limits that are not a single connection's: bytes in
// flight per connection, per address and for the whole edge, connections
// and new connections per address, and the refusal of a connection over
// them.
//
// Byte accounting. A connection is charged, under its mu, for each request
// it reads (the payload copy the handler gets), each reply a handler
// returns and each push queued; a request's and its reply's bytes are freed
// when the reply is written (not when the writer takes the slot), a push's
// when it is written. The same amount is charged to the connection's
// address and to Server.buffered. When the connection dies its remaining
// charge is settled at once (hardClose) and later charges are no-ops. The
// reader does not read the next frame while the connection, its address or
// the edge is at its limit, so each is exceeded by at most one frame per
// reader.

// maxAddrEntries bounds the per-address table: an entry lives while its
// address has connections or bytes, or its new-connection bucket is not
// yet full again, so a flood from many addresses cannot grow it without
// bound (beyond it, new addresses are refused until entries expire).
const maxAddrEntries = 1 << 20

// addrSweepEvery is how often the per-address table drops idle entries.
const addrSweepEvery = time.Second

// refusalWriteTimeout bounds writing the "overloaded" frame to a refused
// connection: it is one small frame, and a refused client that does not
// take it within a second is not worth a goroutine.
const refusalWriteTimeout = time.Second

// maxRefusing bounds the goroutines writing refusals at once: beyond it a
// refused connection is closed without a frame, so a connection flood
// costs at most this many goroutines.
const maxRefusing = 256

// addrKey is a client address as the per-address limits see it: an IPv4
// address (/32) or the /64 of an IPv6 address.
type addrKey = netip.Addr

// keyOf returns the per-address key of a, and false when a has no IP (a
// unix socket, an unparsable WebSocket RemoteAddr).
func keyOf(a net.Addr) (addrKey, bool) {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return addrKey{}, false
		}
		ip = ap.Addr()
	}
	if !ip.IsValid() {
		return addrKey{}, false
	}
	return realip.Masked(ip, 32, 64).Addr(), true
}

// gate wakes every goroutine waiting for bytes to be freed: a waiter takes
// the channel, checks its condition, and waits on the channel; open closes
// it (only when someone waits, so freeing costs an atomic load otherwise).
type gate struct {
	waiting atomic.Int32
	mu      sync.Mutex
	ch      chan struct{}
}

// wait returns the channel open will close; call it before checking the
// condition, with waiting incremented.
func (g *gate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	return g.ch
}

// open wakes the waiters.
func (g *gate) open() {
	if g.waiting.Load() == 0 {
		return
	}
	g.mu.Lock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
	g.mu.Unlock()
}

// addrState is one address's share: its connections, bytes in flight and
// new-connection bucket.
type addrState struct {
	bytes atomic.Int64
	room  gate

	// Guarded by addrTable.mu.
	conns  int
	tokens float64
	last   time.Duration // since Server.epoch
}

// addrTable is the per-address state of the edge.
type addrTable struct {
	mu        sync.Mutex
	m         map[addrKey]*addrState
	lastSweep time.Duration
}

// admit takes a connection slot of the connection's address, or returns
// why not ("" when admitted). The returned state is nil for an exempt
// address or one without an IP; the caller releases a non-nil one with
// leave when the connection ends.
func (s *Server) admit(remote net.Addr) (*addrState, string) {
	key, ok := keyOf(remote)
	if !ok || s.exempt.Contains(key) {
		return nil, ""
	}
	o := &s.opts
	now := time.Since(s.epoch)
	t := &s.addrs
	t.mu.Lock()
	defer t.mu.Unlock()
	if now-t.lastSweep >= addrSweepEvery {
		t.lastSweep = now
		for k, a := range t.m {
			if a.conns == 0 && a.bytes.Load() == 0 && (o.ConnRatePerAddr <= 0 || a.refill(o, now) >= float64(o.ConnBurstPerAddr)) {
				delete(t.m, k)
			}
		}
	}
	a := t.m[key]
	if a == nil {
		if len(t.m) >= maxAddrEntries {
			return nil, "too many client addresses"
		}
		a = &addrState{tokens: float64(o.ConnBurstPerAddr), last: now}
		t.m[key] = a
	}
	if o.MaxConnsPerAddr > 0 && a.conns >= o.MaxConnsPerAddr {
		return nil, "too many connections from this address"
	}
	if o.ConnRatePerAddr > 0 {
		if a.refill(o, now) < 1 {
			return nil, "too many new connections from this address"
		}
		a.tokens--
	}
	a.conns++
	return a, ""
}

// refill brings a's bucket up to now and returns its tokens. Caller holds
// addrTable.mu.
func (a *addrState) refill(o *Options, now time.Duration) float64 {
	a.tokens = min(float64(o.ConnBurstPerAddr), a.tokens+(now-a.last).Seconds()*o.ConnRatePerAddr)
	a.last = now
	return a.tokens
}

// leave gives back a connection slot of a.
func (s *Server) leave(a *addrState) {
	if a == nil {
		return
	}
	s.addrs.mu.Lock()
	a.conns--
	s.addrs.mu.Unlock()
}

// overBudget reports whether the edge holds more bytes than it admits.
func (s *Server) overBudget() bool {
	return s.buffered.Load() >= int64(s.opts.MaxBufferedBytes)
}

// chargeLocked adds n bytes (negative to free) to c, its address and the
// edge, unless c is dead (then its charge was settled). Caller holds c.mu.
func (c *Conn) chargeLocked(n int64) {
	if c.dead || n == 0 {
		return
	}
	c.bytes.Add(n)
	if c.addr != nil {
		c.addr.bytes.Add(n)
	}
	c.srv.buffered.Add(n)
}

// free gives back n bytes of c and wakes whoever waits for them.
func (c *Conn) free(n int64) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	c.chargeLocked(-n)
	c.mu.Unlock()
	c.roomFreed()
}

// settleLocked gives back all of c's bytes: it is dying. Caller holds c.mu
// and sets c.dead right after; the caller calls roomFreed after unlocking.
func (c *Conn) settleLocked() {
	n := c.bytes.Swap(0)
	if n == 0 {
		return
	}
	if c.addr != nil {
		c.addr.bytes.Add(-n)
	}
	c.srv.buffered.Add(-n)
}

// roomFreed wakes the reader of c, and the readers waiting on c's address
// or on the edge.
func (c *Conn) roomFreed() {
	select {
	case c.room <- struct{}{}:
	default:
	}
	if c.addr != nil {
		c.addr.room.open()
	}
	c.srv.room.open()
}

// waitRoom blocks the reader until c, its address and the edge are all
// under their byte limits, or c closes (false).
func (c *Conn) waitRoom() bool {
	s := c.srv
	o := &s.opts
	over := func() (conn, addr, global bool) {
		return c.bytes.Load() >= int64(o.MaxInFlightBytes),
			c.addr != nil && c.addr.bytes.Load() >= int64(o.MaxInFlightBytesPerAddr),
			s.overBudget()
	}
	if cb, ab, gb := over(); !cb && !ab && !gb {
		return true
	}
	s.stats.byteWaits.Add(1)
	s.room.waiting.Add(1)
	defer s.room.waiting.Add(-1)
	if c.addr != nil {
		c.addr.room.waiting.Add(1)
		defer c.addr.room.waiting.Add(-1)
	}
	for {
		gch := s.room.wait()
		var ach <-chan struct{}
		if c.addr != nil {
			ach = c.addr.room.wait()
		}
		cb, ab, gb := over()
		if !cb && !ab && !gb {
			return true
		}
		select {
		case <-c.room:
		case <-gch:
		case <-ach:
		case <-c.ctx.Done():
			return false
		}
	}
}

// newExempt parses AddrLimitsExempt (validated already).
func newExempt(list []string) realip.Trusted {
	t, _ := realip.ParseTrusted(list)
	return t
}

// validMethod reports whether m is a method name the edge routes: a
// letter, then letters, digits, '_', '.' or '-' (so valid UTF-8, and
// printable in logs and metrics), at most max bytes.
func validMethod(m []byte, max int) bool {
	if len(m) == 0 || len(m) > max {
		return false
	}
	if c := m[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return false
	}
	for _, c := range m[1:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// errBadMethod is the reply to a request whose method name is not valid.
const errBadMethod = wire.CodeBadRequest + ": invalid method name: want a letter, then letters, digits, '_', '.' or '-'"

// frameCost is what a frame of a first string and a payload counts for in
// the byte budgets: its bytes on the wire.
func frameCost(first, payload int) int64 {
	return int64(4 + frame.MinFrame + first + payload)
}

// clampConnections returns n, lowered to what a file limit of nofile
// allows (n unchanged when it fits): every connection is a descriptor, and the broker needs some for
// its links, listeners and logs, so a tenth of the limit (at least
// minClampedConnections connections) is kept back. 0 means no limit known.
func clampConnections(n int, nofile uint64) int {
	if nofile == 0 || nofile > 1<<40 {
		return n
	}
	allowed := max(int64(nofile)-int64(nofile/10), minClampedConnections)
	if int64(n) > allowed {
		return int(allowed)
	}
	return n
}
