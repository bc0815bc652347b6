package wire

import (
	"crypto/sha256"
	"encoding/base64"
)

// SessionIDLen is the length of a SessionID: 32 bytes in unpadded
// base64url.
const SessionIDLen = 43

// SessionID returns the id of the session of token: its SHA-256, unpadded
// base64url. The login service keys its sessions in Redis by it and names
// revoked sessions by it; the broker remembers it per connection. It
// identifies a session without being usable as its token.
func SessionID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
