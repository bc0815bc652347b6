package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/noonhq/noon/wire"
)

// Role is what a certificate allows its holder to be on the platform.
type Role string

// The roles of the platform's processes.
const (
	// RoleBroker is an edge broker (and the BrokerList, which is part of
	// the edge).
	RoleBroker Role = "broker"
	// RoleYellow is a yellow presence server.
	RoleYellow Role = "yellow"
	// RoleService is a service instance; the identity's Name is the
	// service's name (service:login).
	RoleService Role = "service"
	// RoleAdmin is an operator's tool (noonctl).
	RoleAdmin Role = "admin"
)

// Roles are every role, in a stable order.
var Roles = []Role{RoleBroker, RoleYellow, RoleService, RoleAdmin}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	switch r {
	case RoleBroker, RoleYellow, RoleService, RoleAdmin:
		return true
	}
	return false
}

// URIScheme is the scheme of the URI SAN that carries an identity:
// noon://<role>/<name>.
const URIScheme = "noon"

// maxLabelLen bounds the Name of a broker, yellow or admin identity (a host
// or instance label): as long as a service name, short enough for a log
// line and a metric label.
const maxLabelLen = wire.MaxNameLen

// Identity is who a certificate says its holder is: a role and a name. For
// RoleService the name is the service's name and is required; for the other
// roles it is an optional label (a host, an instance) that only logs show.
//
// Its string form is "role" or "role:name" ("broker", "service:login"); in a
// certificate it is the one URI SAN noon://role or noon://role/name.
type Identity struct {
	Role Role
	Name string
}

// String returns "role" or "role:name".
func (id Identity) String() string {
	if id.Name == "" {
		return string(id.Role)
	}
	return string(id.Role) + ":" + id.Name
}

// IsZero reports whether id is the zero Identity (no role).
func (id Identity) IsZero() bool { return id.Role == "" && id.Name == "" }

// Validate checks the role and the name's grammar: a service name for
// RoleService (wire.NameRule, required), else empty or a label of
// [a-z0-9][a-z0-9._-]* of at most 64 bytes.
func (id Identity) Validate() error {
	if !id.Role.Valid() {
		return fmt.Errorf("pki: unknown role %q (want broker, yellow, service or admin)", wire.Snippet(string(id.Role)))
	}
	if id.Role == RoleService {
		if err := wire.ValidateName(id.Name); err != nil {
			return fmt.Errorf("pki: service identity: name %w", err)
		}
		return nil
	}
	if id.Name != "" && !validLabel(id.Name) {
		return fmt.Errorf("pki: %s identity: name must match [a-z0-9][a-z0-9._-]{0,63}, got %q", id.Role, wire.Snippet(id.Name))
	}
	return nil
}

func validLabel(s string) bool {
	if len(s) == 0 || len(s) > maxLabelLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Satisfies reports whether id is what want asks for: the zero want accepts
// any identity; otherwise the roles must be equal and, when want has a
// name, the names too (want "broker" accepts "broker:b1").
func (id Identity) Satisfies(want Identity) bool {
	if want.Role == "" {
		return true
	}
	return id.Role == want.Role && (want.Name == "" || id.Name == want.Name)
}

// ParseIdentity parses the string form, "role" or "role:name", and
// validates it.
func ParseIdentity(s string) (Identity, error) {
	role, name, _ := strings.Cut(s, ":")
	id := Identity{Role: Role(role), Name: name}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	if id.String() != s {
		return Identity{}, fmt.Errorf("pki: identity %q: want role or role:name", wire.Snippet(s))
	}
	return id, nil
}

// URI returns the identity's URI SAN: noon://role or noon://role/name.
func (id Identity) URI() *url.URL {
	u := &url.URL{Scheme: URIScheme, Host: string(id.Role)}
	if id.Name != "" {
		u.Path = "/" + id.Name
	}
	return u
}

// ErrNoIdentity means a certificate carries no noon:// URI SAN, or more
// than one.
var ErrNoIdentity = errors.New("pki: certificate has no single noon:// identity")

// IdentityFromURI parses an identity URI strictly: it must be exactly the
// canonical form Identity.URI would print (no user, port, query, fragment,
// escapes or trailing slash; a lower-case known role as the host).
func IdentityFromURI(u *url.URL) (Identity, error) {
	if u == nil || !strings.EqualFold(u.Scheme, URIScheme) {
		return Identity{}, fmt.Errorf("pki: not a %s:// URI", URIScheme)
	}
	name, ok := strings.CutPrefix(u.Path, "/")
	if u.Path == "" {
		ok = true
	}
	if !ok {
		return Identity{}, fmt.Errorf("pki: identity URI %q: bad path", wire.Snippet(u.String()))
	}
	id := Identity{Role: Role(u.Host), Name: name}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("pki: identity URI %q: %w", wire.Snippet(u.String()), err)
	}
	if got, want := u.String(), id.URI().String(); got != want {
		return Identity{}, fmt.Errorf("pki: identity URI %q: not canonical (want %q)", wire.Snippet(got), want)
	}
	return id, nil
}

// ParseURI parses an identity URI string (see IdentityFromURI).
func ParseURI(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: identity URI %q: %w", wire.Snippet(s), err)
	}
	return IdentityFromURI(u)
}

// IdentityOf returns the identity a certificate carries: its one URI SAN
// with the noon scheme. A certificate with none, with several, or with one
// that does not parse strictly has no identity (ErrNoIdentity, or the parse
// error). URI SANs of other schemes are ignored.
func IdentityOf(c *x509.Certificate) (Identity, error) {
	var found []*url.URL
	for _, u := range c.URIs {
		if strings.EqualFold(u.Scheme, URIScheme) {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("%w (found %d)", ErrNoIdentity, len(found))
	}
	return IdentityFromURI(found[0])
}
