package login

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/noonhq/noon/wire"
)

// checkUsername enforces the rules for a new username: UsernameMin to
// UsernameMax characters of [a-zA-Z0-9_.-].
func (o *Options) checkUsername(u string) error {
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return wire.Errorf(wire.CodeBadRequest, "username may contain only letters a-z and A-Z, digits, '_', '.' and '-'")
		}
	}
	if len(u) < o.UsernameMin || len(u) > o.UsernameMax { // ASCII: bytes are characters
		return wire.Errorf(wire.CodeBadRequest, "username must be %d to %d characters, got %d", o.UsernameMin, o.UsernameMax, len(u))
	}
	return nil
}

// checkPassword enforces the rules for a new password: PasswordMin to
// PasswordMax bytes, any bytes.
func (o *Options) checkPassword(p string) error {
	if len(p) < o.PasswordMin || len(p) > o.PasswordMax {
		return wire.Errorf(wire.CodeBadRequest, "password must be %d to %d bytes, got %d", o.PasswordMin, o.PasswordMax, len(p))
	}
	return nil
}

// checkNickname enforces the rules for a nickname: valid UTF-8, 1 to
// NicknameMax characters, each printable (letters, marks, numbers,
// punctuation, symbols and the ASCII space), with no leading or trailing
// space.
func (o *Options) checkNickname(n string) error {
	if !utf8.ValidString(n) {
		return wire.Errorf(wire.CodeBadRequest, "nickname must be UTF-8")
	}
	if c := utf8.RuneCountInString(n); c < 1 || c > o.NicknameMax {
		return wire.Errorf(wire.CodeBadRequest, "nickname must be 1 to %d characters, got %d", o.NicknameMax, c)
	}
	for _, r := range n {
		if !unicode.IsPrint(r) {
			return wire.Errorf(wire.CodeBadRequest, "nickname may contain only printable characters, got %q", r)
		}
	}
	if strings.TrimSpace(n) != n {
		return wire.Errorf(wire.CodeBadRequest, "nickname may not start or end with a space")
	}
	return nil
}
