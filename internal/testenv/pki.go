package testenv

import (
	"sync"
	"testing"

	"github.com/noonhq/noon/internal/pki"
)

var (
	pkiOnce sync.Once
	testPKI *pki.Ephemeral
	pkiErr  error
)

// PKI returns the test binary's ephemeral CA: made once, so that tests
// with TLS on cost a certificate per identity, not a CA per test.
func PKI(t testing.TB) *pki.Ephemeral {
	t.Helper()
	pkiOnce.Do(func() { testPKI, pkiErr = pki.NewEphemeral() })
	if pkiErr != nil {
		t.Fatalf("testenv: ephemeral CA: %v", pkiErr)
	}
	return testPKI
}

// Credentials returns the credentials of id from PKI.
func Credentials(t testing.TB, id pki.Identity) *pki.Credentials {
	t.Helper()
	c, err := PKI(t).Credentials(id)
	if err != nil {
		t.Fatalf("testenv: credentials of %s: %v", id, err)
	}
	return c
}
