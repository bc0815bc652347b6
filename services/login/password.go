package login

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// errBadHash is returned for a stored hash that is not an argon2id PHC
// string this package can verify (or whose parameters exceed the limits).
var errBadHash = errors.New("login: malformed password hash")

// hasher hashes and verifies passwords with argon2id, at most slots at
// once. Requests wait for a slot in a bounded priority queue: high
// priority (a login from an address prefix the account logged in from
// before) is served before low (any other login, a registration), and
// when shedAt or more requests wait, a low-priority request is refused
// with errShed at once, so that a flood of bad logins cannot starve the
// owners of accounts.
type hasher struct {
	p Argon2Options
	// shedAt is the queue length from which low-priority requests are
	// shed (0: never); maxQueue bounds the queue for everyone.
	shedAt, maxQueue int

	mu        sync.Mutex
	slots     int // hashes at once
	free      int
	high, low []*waiter
	// observe, if set, receives the duration of each hash; queued, if
	// set, the queue's length whenever it changes.
	observe func(time.Duration)
	queued  func(int)
}

// waiter is a request waiting for a slot; granted (under mu) when a
// release handed it one.
type waiter struct {
	ch      chan struct{}
	granted bool
}

// priority is a hash request's place in the queue.
type priority int

const (
	prioLow priority = iota
	prioHigh
)

// errShed is a request refused because the queue is long.
var errShed = errors.New("login: hash queue full")

func newHasher(p Argon2Options, shedAt, maxQueue int) *hasher {
	n := p.Concurrency
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &hasher{p: p, slots: n, free: n, shedAt: shedAt, maxQueue: maxQueue}
}

// queueLen is the number of requests waiting for a slot.
func (h *hasher) queueLen() int {
	_, waiting := h.load()
	return waiting
}

// load returns the hashes running and the requests waiting for a slot.
func (h *hasher) load() (running, waiting int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.slots - h.free, len(h.high) + len(h.low)
}

// acquire takes a hashing slot, or fails with errShed when the queue is
// too long for prio, or with ctx's error when ctx is done first.
func (h *hasher) acquire(ctx context.Context, prio priority) error {
	h.mu.Lock()
	q := len(h.high) + len(h.low)
	if h.free > 0 && q == 0 {
		h.free--
		h.mu.Unlock()
		return nil
	}
	if q >= h.maxQueue || prio == prioLow && h.shedAt > 0 && q >= h.shedAt {
		h.mu.Unlock()
		return errShed
	}
	w := &waiter{ch: make(chan struct{})}
	if prio == prioHigh {
		h.high = append(h.high, w)
	} else {
		h.low = append(h.low, w)
	}
	h.notify()
	h.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
	}
	h.mu.Lock()
	if w.granted {
		h.mu.Unlock()
		h.release()
		return ctx.Err()
	}
	h.high = remove(h.high, w)
	h.low = remove(h.low, w)
	h.notify()
	h.mu.Unlock()
	return ctx.Err()
}

// release gives a slot back: to the first high-priority waiter, else the
// first low-priority one, else to the free slots.
func (h *hasher) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	var w *waiter
	switch {
	case len(h.high) > 0:
		w, h.high = h.high[0], h.high[1:]
	case len(h.low) > 0:
		w, h.low = h.low[0], h.low[1:]
	default:
		h.free++
		return
	}
	w.granted = true
	close(w.ch)
	h.notify()
}

// notify reports the queue length; h.mu is held.
func (h *hasher) notify() {
	if h.queued != nil {
		h.queued(len(h.high) + len(h.low))
	}
}

// remove returns q without w (if there).
func remove(q []*waiter, w *waiter) []*waiter {
	for i, x := range q {
		if x == w {
			return append(q[:i:i], q[i+1:]...)
		}
	}
	return q
}

// key runs argon2id in a slot.
func (h *hasher) key(ctx context.Context, prio priority, password, salt []byte, t, m uint32, p uint8, keyLen uint32) ([]byte, error) {
	if err := h.acquire(ctx, prio); err != nil {
		return nil, err
	}
	defer h.release()
	start := time.Now()
	k := argon2.IDKey(password, salt, t, m, p, keyLen)
	if h.observe != nil {
		h.observe(time.Since(start))
	}
	return k, nil
}

// Hash returns the PHC string of password under the configured parameters
// and a fresh random salt:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64 without padding>$<key>
func (h *hasher) Hash(ctx context.Context, password string) (string, error) {
	return h.hashPrio(ctx, prioLow, password)
}

// hashPrio is Hash at priority prio.
func (h *hasher) hashPrio(ctx context.Context, prio priority, password string) (string, error) {
	salt := make([]byte, h.p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	k, err := h.key(ctx, prio, []byte(password), salt, h.p.Time, h.p.MemoryKiB, h.p.Threads, h.p.KeyLen)
	if err != nil {
		return "", err
	}
	return encodePHC(phc{m: h.p.MemoryKiB, t: h.p.Time, p: h.p.Threads, salt: salt, key: k}), nil
}

// Verify reports whether password matches the PHC string encoded, using
// the parameters encoded carries. It fails (rather than answer false) on
// a malformed hash or when ctx is done before a slot frees.
func (h *hasher) Verify(ctx context.Context, prio priority, password, encoded string) (bool, error) {
	d, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	k, err := h.key(ctx, prio, []byte(password), d.salt, d.t, d.m, d.p, uint32(len(d.key)))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(k, d.key) == 1, nil
}

// phc is a decoded argon2id PHC string.
type phc struct {
	m, t      uint32
	p         uint8
	salt, key []byte
}

var b64 = base64.RawStdEncoding

func encodePHC(d phc) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, d.m, d.t, d.p, b64.EncodeToString(d.salt), b64.EncodeToString(d.key))
}

// parsePHC decodes an argon2id PHC string, refusing parameters beyond the
// limits Options accepts: a stored hash is trusted data, but a corrupt or
// planted one must not make the service allocate gigabytes.
func parsePHC(s string) (phc, error) {
	var d phc
	if len(s) > 512 {
		return d, errBadHash
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return d, errBadHash
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return d, errBadHash
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(params[i], name)
		if !ok {
			return d, errBadHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return d, errBadHash
		}
		vals[i] = n
	}
	d.m, d.t = uint32(vals[0]), uint32(vals[1])
	if vals[2] < 1 || vals[2] > 255 || d.t < 1 || d.t > MaxArgon2Time || d.m < 8*uint32(vals[2]) || d.m > MaxArgon2MemoryKiB {
		return d, errBadHash
	}
	d.p = uint8(vals[2])
	var err error
	if d.salt, err = b64.DecodeString(parts[4]); err != nil || len(d.salt) < 8 {
		return d, errBadHash
	}
	if d.key, err = b64.DecodeString(parts[5]); err != nil || len(d.key) < 16 {
		return d, errBadHash
	}
	return d, nil
}
