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
	"time"

	"golang.org/x/crypto/argon2"
)

// errBadHash is returned for a stored hash that is not an argon2id PHC
// string this package can verify (or whose parameters exceed the limits).
var errBadHash = errors.New("login: malformed password hash")

// hasher hashes and verifies passwords with argon2id, at most cap(slots)
// at once.
type hasher struct {
	p     Argon2Options
	slots chan struct{}
	// observe, if set, receives the duration of each hash.
	observe func(time.Duration)
}

func newHasher(p Argon2Options) *hasher {
	n := p.Concurrency
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &hasher{p: p, slots: make(chan struct{}, n)}
}

// acquire takes a hashing slot, or fails when ctx is done first.
func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hasher) release() { <-h.slots }

// key runs argon2id in a slot.
func (h *hasher) key(ctx context.Context, password, salt []byte, t, m uint32, p uint8, keyLen uint32) ([]byte, error) {
	if err := h.acquire(ctx); err != nil {
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
	salt := make([]byte, h.p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	k, err := h.key(ctx, []byte(password), salt, h.p.Time, h.p.MemoryKiB, h.p.Threads, h.p.KeyLen)
	if err != nil {
		return "", err
	}
	return encodePHC(phc{m: h.p.MemoryKiB, t: h.p.Time, p: h.p.Threads, salt: salt, key: k}), nil
}

// Verify reports whether password matches the PHC string encoded, using
// the parameters encoded carries. It fails (rather than answer false) on
// a malformed hash or when ctx is done before a slot frees.
func (h *hasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	d, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	k, err := h.key(ctx, []byte(password), d.salt, d.t, d.m, d.p, uint32(len(d.key)))
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
