// Package appletest generates what Apple would send, for tests of the
// apple provider and of the pay service end to end: a test certificate
// authority (root, intermediate, leaf, ECDSA P-256, with Apple's marker
// extensions), StoreKit 2 signed transactions and App Store Server
// Notifications v2 signed as ES256 JWS with an x5c chain, and ways to break
// them (tampered payload, expired leaf or intermediate, an intermediate
// without Apple's marker, another root, another key, another alg).
//
// A test makes a CA, configures its Roots in apple.Options.RootCerts (or
// writes RootPEM to a file for a config), and signs:
//
//	ca := appletest.NewCA(t)
//	jws := ca.SignTransaction(t, appletest.Transaction{TransactionID: "1", ProductID: "gems100", BundleID: "com.example"})
//	body := ca.SignNotification(t, appletest.Notification{Type: "REFUND", BundleID: "com.example", SignedTransactionInfo: jws})
package appletest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Apple's marker extensions (see package apple), set non-critical with an
// ASN.1 NULL value as on Apple's certificates.
var (
	oidLeafMarker         = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 11, 1}
	oidIntermediateMarker = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 2, 1}
	asn1Null              = []byte{0x05, 0x00}
)

// CA is a test certificate authority: a root, an intermediate it signed
// and a leaf the intermediate signed, which signs the JWS.
type CA struct {
	Root, Intermediate, Leaf          *x509.Certificate
	RootKey, IntermediateKey, LeafKey *ecdsa.PrivateKey
}

// serial numbers certificates of one test binary.
var serial atomic.Int64

// NewCA returns a CA whose certificates are valid from an hour ago: the
// root and intermediate for 20 years, the leaf for 1 year.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	now := time.Now()
	ca := &CA{RootKey: newKey(tb), IntermediateKey: newKey(tb)}
	ca.Root = newCert(tb, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "noon test Apple Root CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(20 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, ca.RootKey, nil)
	return ca.WithIntermediate(tb, now.Add(-time.Hour), now.Add(20*365*24*time.Hour))
}

// WithIntermediate returns a copy of ca, same root, with a new
// intermediate valid from notBefore to notAfter and a new leaf it signed,
// valid from an hour ago for a year.
func (ca *CA) WithIntermediate(tb testing.TB, notBefore, notAfter time.Time) *CA {
	tb.Helper()
	return ca.withIntermediate(tb, notBefore, notAfter, true)
}

// PlainIntermediate returns a copy of ca, same root, whose intermediate
// lacks Apple's WWDR marker extension (as another CA under Apple's root
// would), with a new leaf it signed.
func (ca *CA) PlainIntermediate(tb testing.TB) *CA {
	tb.Helper()
	now := time.Now()
	return ca.withIntermediate(tb, now.Add(-time.Hour), now.Add(365*24*time.Hour), false)
}

func (ca *CA) withIntermediate(tb testing.TB, notBefore, notAfter time.Time, marker bool) *CA {
	tb.Helper()
	var ext []pkix.Extension
	if marker {
		ext = []pkix.Extension{{Id: oidIntermediateMarker, Value: asn1Null}}
	}
	c := *ca
	c.IntermediateKey = newKey(tb)
	c.Intermediate = newCert(tb, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "noon test Apple WWDR CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtraExtensions:       ext,
	}, ca.Root, c.IntermediateKey, ca.RootKey)
	now := time.Now()
	return c.WithLeaf(tb, now.Add(-time.Hour), now.Add(365*24*time.Hour))
}

// WithLeaf returns a copy of ca, same root and intermediate, with a new
// leaf valid from notBefore to notAfter.
func (ca *CA) WithLeaf(tb testing.TB, notBefore, notAfter time.Time) *CA {
	tb.Helper()
	c := *ca
	c.LeafKey = newKey(tb)
	c.Leaf = newCert(tb, &x509.Certificate{
		Subject:         pkix.Name{CommonName: "noon test Prod ECC Mac App Store and iTunes Store Receipt Signing"},
		NotBefore:       notBefore,
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: oidLeafMarker, Value: asn1Null}},
	}, ca.Intermediate, c.LeafKey, ca.IntermediateKey)
	return &c
}

// ExpiredLeaf returns a copy of ca whose leaf expired an hour ago.
func (ca *CA) ExpiredLeaf(tb testing.TB) *CA {
	tb.Helper()
	now := time.Now()
	return ca.WithLeaf(tb, now.Add(-48*time.Hour), now.Add(-time.Hour))
}

// ExpiredIntermediate returns a copy of ca, same root, whose intermediate
// expired an hour ago (its leaf is valid).
func (ca *CA) ExpiredIntermediate(tb testing.TB) *CA {
	tb.Helper()
	now := time.Now()
	return ca.WithIntermediate(tb, now.Add(-48*time.Hour), now.Add(-time.Hour))
}

// Roots returns the root, for apple.Options.RootCerts.
func (ca *CA) Roots() []*x509.Certificate { return []*x509.Certificate{ca.Root} }

// RootPEM returns the root certificate in PEM.
func (ca *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw})
}

// WriteRootPEM writes the root in PEM to a file in dir and returns its
// path (for apple.LoadRoots and configs).
func (ca *CA) WriteRootPEM(tb testing.TB, dir string) string {
	tb.Helper()
	name := filepath.Join(dir, "apple-test-root.pem")
	if err := os.WriteFile(name, ca.RootPEM(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return name
}

// Chain returns the x5c chain the CA signs with by default: leaf,
// intermediate, root.
func (ca *CA) Chain() []*x509.Certificate {
	return []*x509.Certificate{ca.Leaf, ca.Intermediate, ca.Root}
}

// SignOptions changes how Sign builds a JWS; the zero value signs as
// Apple does.
type SignOptions struct {
	// Alg is the header's alg; "" means ES256. The signature is ES256
	// whatever it says.
	Alg string
	// Chain is the x5c chain; nil means ca.Chain(), an empty non-nil
	// slice sends an empty x5c.
	Chain []*x509.Certificate
	// Key signs instead of the leaf's key.
	Key *ecdsa.PrivateKey
}

// Sign returns payload (marshalled to JSON unless it is []byte or
// json.RawMessage) as a compact ES256 JWS with an x5c header.
func (ca *CA) Sign(tb testing.TB, payload any, opts SignOptions) []byte {
	tb.Helper()
	var body []byte
	switch p := payload.(type) {
	case []byte:
		body = p
	case json.RawMessage:
		body = p
	default:
		var err error
		if body, err = json.Marshal(payload); err != nil {
			tb.Fatal(err)
		}
	}
	if opts.Alg == "" {
		opts.Alg = "ES256"
	}
	if opts.Chain == nil {
		opts.Chain = ca.Chain()
	}
	if opts.Key == nil {
		opts.Key = ca.LeafKey
	}
	x5c := make([]string, len(opts.Chain))
	for i, c := range opts.Chain {
		x5c[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	hdr, err := json.Marshal(map[string]any{"alg": opts.Alg, "x5c": x5c})
	if err != nil {
		tb.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
	return []byte(input + "." + base64.RawURLEncoding.EncodeToString(signES256(tb, opts.Key, input)))
}

// Transaction is a StoreKit 2 transaction (JWSTransactionDecodedPayload);
// zero fields are left out of the payload, except the ones noted.
type Transaction struct {
	TransactionID         string
	OriginalTransactionID string // "" means TransactionID
	ProductID             string
	Quantity              int       // 0 means 1
	PurchaseDate          time.Time // zero means now
	AppAccountToken       string
	Environment           string // "" means "Sandbox"
	BundleID              string
	SignedDate            time.Time // zero means now
	RevocationDate        time.Time
	Type                  string // "" means "Consumable"
}

// Payload returns the transaction's JSON payload as Apple would send it.
func (tx Transaction) Payload() map[string]any {
	now := time.Now()
	if tx.OriginalTransactionID == "" {
		tx.OriginalTransactionID = tx.TransactionID
	}
	if tx.Quantity == 0 {
		tx.Quantity = 1
	}
	if tx.PurchaseDate.IsZero() {
		tx.PurchaseDate = now
	}
	if tx.SignedDate.IsZero() {
		tx.SignedDate = now
	}
	if tx.Environment == "" {
		tx.Environment = "Sandbox"
	}
	if tx.Type == "" {
		tx.Type = "Consumable"
	}
	m := map[string]any{
		"transactionId":         tx.TransactionID,
		"originalTransactionId": tx.OriginalTransactionID,
		"productId":             tx.ProductID,
		"quantity":              tx.Quantity,
		"purchaseDate":          tx.PurchaseDate.UnixMilli(),
		"originalPurchaseDate":  tx.PurchaseDate.UnixMilli(),
		"environment":           tx.Environment,
		"bundleId":              tx.BundleID,
		"signedDate":            tx.SignedDate.UnixMilli(),
		"type":                  tx.Type,
		"inAppOwnershipType":    "PURCHASED",
		"transactionReason":     "PURCHASE",
		"storefront":            "USA",
		"storefrontId":          "143441",
		"price":                 990,
		"currency":              "USD",
	}
	if tx.AppAccountToken != "" {
		m["appAccountToken"] = tx.AppAccountToken
	}
	if !tx.RevocationDate.IsZero() {
		m["revocationDate"] = tx.RevocationDate.UnixMilli()
		m["revocationReason"] = 0
	}
	return m
}

// SignTransaction returns tx as Apple signs it (Transaction.jwsRepresentation).
func (ca *CA) SignTransaction(tb testing.TB, tx Transaction) []byte {
	tb.Helper()
	return ca.Sign(tb, tx.Payload(), SignOptions{})
}

// Notification is an App Store Server Notification v2
// (responseBodyV2DecodedPayload).
type Notification struct {
	Type    string // notificationType, "" means "ONE_TIME_CHARGE"
	Subtype string
	// UUID is the notificationUUID; "" means a random one.
	UUID        string
	SignedDate  time.Time // zero means now
	BundleID    string
	Environment string // "" means "Sandbox"
	// SignedTransactionInfo is the JWS of the transaction (from
	// SignTransaction, or broken on purpose), left out when empty.
	SignedTransactionInfo []byte
}

// Payload returns the notification's JSON payload as Apple would sign it.
func (n Notification) Payload() map[string]any {
	if n.Type == "" {
		n.Type = "ONE_TIME_CHARGE"
	}
	if n.UUID == "" {
		n.UUID = NewUUID()
	}
	if n.SignedDate.IsZero() {
		n.SignedDate = time.Now()
	}
	if n.Environment == "" {
		n.Environment = "Sandbox"
	}
	data := map[string]any{
		"bundleId":    n.BundleID,
		"environment": n.Environment,
		"appAppleId":  1234567890,
	}
	if len(n.SignedTransactionInfo) > 0 {
		data["signedTransactionInfo"] = string(n.SignedTransactionInfo)
	}
	m := map[string]any{
		"notificationType": n.Type,
		"notificationUUID": n.UUID,
		"signedDate":       n.SignedDate.UnixMilli(),
		"version":          "2.0",
		"data":             data,
	}
	if n.Subtype != "" {
		m["subtype"] = n.Subtype
	}
	return m
}

// SignNotification returns the HTTP body Apple posts for n:
// {"signedPayload":"<JWS>"}.
func (ca *CA) SignNotification(tb testing.TB, n Notification) []byte {
	tb.Helper()
	return Body(tb, ca.Sign(tb, n.Payload(), SignOptions{}))
}

// Body wraps a signed notification payload in the body Apple posts.
func Body(tb testing.TB, signedPayload []byte) []byte {
	tb.Helper()
	b, err := json.Marshal(map[string]string{"signedPayload": string(signedPayload)})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Tamper returns jws with its payload changed by mutate and its header and
// signature kept: what an attacker who edits a transaction sends.
func Tamper(tb testing.TB, jws []byte, mutate func(payload map[string]any)) []byte {
	tb.Helper()
	parts := strings.Split(string(jws), ".")
	if len(parts) != 3 {
		tb.Fatalf("appletest.Tamper: not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	mutate(m)
	raw, err = json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return []byte(strings.Join(parts, "."))
}

// NewUUID returns a random UUID (version 4), as Apple's notificationUUID
// and StoreKit's appAccountToken are.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&0x0f])
	}
	return string(out)
}

// signES256 signs input's SHA-256 and returns r||s, 32 bytes each.
func signES256(tb testing.TB, key *ecdsa.PrivateKey, input string) []byte {
	tb.Helper()
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// newCert creates tmpl signed by parent's key (self-signed when parent is
// nil) for key's public half.
func newCert(tb testing.TB, tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) *x509.Certificate {
	tb.Helper()
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
