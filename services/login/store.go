package login

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/noonhq/noon/wire"
)

var (
	// ErrExists is returned by Store.Create when the username is taken
	// (ignoring case) or the id is.
	ErrExists = errors.New("login: account exists")
	// ErrNotFound is returned by Store.ByUsername and Store.ByID when no
	// account matches.
	ErrNotFound = errors.New("login: no such account")
	// ErrInvalidAccount is returned by Store.Create for an account missing
	// its id, username or password hash, or with a malformed id.
	ErrInvalidAccount = errors.New("login: invalid account")
)

// Account is a stored account.
type Account struct {
	// ID is the user id: a UUID (NewAccountID), what the broker binds as
	// "user" and other services key their data by.
	ID string
	// Username is the login name as registered; lookups ignore its case.
	Username string
	// Nickname is the display name.
	Nickname string
	// PasswordHash is the argon2id hash in PHC string format
	// ($argon2id$v=19$m=...,t=...,p=...$salt$key), carrying its own
	// parameters.
	PasswordHash string
	// CreatedAt is when the account was created, in UTC to the
	// microsecond (Postgres precision); Create fills it in when zero.
	CreatedAt time.Time
}

// Store keeps accounts. Implementations are safe for concurrent use and
// pass the contract suite in services/login/storetest.
type Store interface {
	// Create stores a new account. It returns ErrExists when the username
	// is taken, ignoring case, or the id is; ErrInvalidAccount when a.ID
	// is not a UUID or a.Username or a.PasswordHash is empty.
	Create(ctx context.Context, a Account) error
	// ByUsername returns the account whose username equals username,
	// ignoring case, or ErrNotFound.
	ByUsername(ctx context.Context, username string) (Account, error)
	// ByID returns the account with id, or ErrNotFound (also for an id
	// that is not a UUID).
	ByID(ctx context.Context, id string) (Account, error)
}

// NewAccountID returns a new user id: a UUIDv7 (RFC 9562) in its canonical
// lowercase text form, time-ordered so Postgres inserts stay at the right
// edge of the primary key index.
func NewAccountID() string {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(u[6:])
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // variant 10
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// validID reports whether id is a UUID in canonical lowercase text form,
// the only form the stores keep and return.
func validID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// checkAccount is what every Store checks in Create, and normalizes
// CreatedAt.
func checkAccount(a *Account) error {
	switch {
	case !validID(a.ID):
		return fmt.Errorf("%w: id %q is not a lowercase UUID", ErrInvalidAccount, wire.Snippet(a.ID))
	case !storableUsername(a.Username):
		return fmt.Errorf("%w: username must be 1..%d printable ASCII characters", ErrInvalidAccount, MaxUsernameLen)
	case a.PasswordHash == "":
		return fmt.Errorf("%w: no password hash", ErrInvalidAccount)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	a.CreatedAt = a.CreatedAt.UTC().Truncate(time.Microsecond)
	return nil
}

// storableUsername reports whether a store accepts username: 1 to
// MaxUsernameLen printable ASCII characters, no space. The service's rules
// are stricter; this keeps case-folding the same in every store, since
// Postgres's lower() and Go's strings.ToLower agree on ASCII only (in Go,
// the Kelvin sign lowercases to "k"). ByUsername finds nothing for a name
// a store would not accept.
func storableUsername(username string) bool {
	if username == "" || len(username) > MaxUsernameLen {
		return false
	}
	for i := 0; i < len(username); i++ {
		if c := username[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// usernameKey is the form usernames are unique in: ASCII lowercase (other
// bytes are left as they are).
func usernameKey(username string) string {
	b := []byte(username)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
