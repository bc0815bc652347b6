package login

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestOptionsValidate(t *testing.T) {
	if err := NewOptions().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		field string
		mod   func(*Options)
	}{
		{"http_addr", func(o *Options) { o.HTTPAddr = "8081" }},
		{"session_ttl", func(o *Options) { o.SessionTTL = time.Second }},
		{"session_ttl", func(o *Options) { o.SessionTTL = 2 * MaxSessionTTL }},
		{"argon2.time", func(o *Options) { o.Argon2.Time = 0 }},
		{"argon2.memory_kib", func(o *Options) { o.Argon2.MemoryKiB = 7 }},
		{"argon2.memory_kib", func(o *Options) { o.Argon2.Threads, o.Argon2.MemoryKiB = 4, 16 }},
		{"argon2.memory_kib", func(o *Options) { o.Argon2.MemoryKiB = MaxArgon2MemoryKiB + 1 }},
		{"argon2.threads", func(o *Options) { o.Argon2.Threads = 0 }},
		{"argon2.key_len", func(o *Options) { o.Argon2.KeyLen = 8 }},
		{"argon2.salt_len", func(o *Options) { o.Argon2.SaltLen = 4 }},
		{"argon2.concurrency", func(o *Options) { o.Argon2.Concurrency = -1 }},
		{"throttle.per_account.max", func(o *Options) { o.Throttle.PerAccount.Max = -1 }},
		{"throttle.per_address.window", func(o *Options) { o.Throttle.PerAddress.Window = 0 }},
		{"username_min", func(o *Options) { o.UsernameMin = 0 }},
		{"username_min", func(o *Options) { o.UsernameMin = 40 }},
		{"username_max", func(o *Options) { o.UsernameMax = MaxUsernameLen + 1 }},
		{"password_min", func(o *Options) { o.PasswordMin = 0 }},
		{"password_max", func(o *Options) { o.PasswordMax = MaxPasswordLen + 1 }},
		{"nickname_max", func(o *Options) { o.NicknameMax = 0 }},
		{"redis_prefix", func(o *Options) { o.RedisPrefix = "a b" }},
		{"postgres_schema", func(o *Options) { o.PostgresSchema = "Login" }},
		{"postgres_schema", func(o *Options) { o.PostgresSchema = "" }},
	} {
		o := NewOptions()
		tc.mod(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), "config: "+tc.field+": ") {
			t.Errorf("%s: Validate = %v, want an error naming it", tc.field, err)
		}
	}
	// A disabled limit needs no window; "" disables HTTP.
	o := NewOptions()
	o.Throttle.PerAccount = Limit{}
	o.HTTPAddr = ""
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestOptionsYAML checks the yaml names: a config section decodes over the
// defaults.
func TestOptionsYAML(t *testing.T) {
	o := NewOptions()
	src := `
http_addr: 127.0.0.1:9000
session_ttl: 1h
argon2: {time: 3, memory_kib: 65536, threads: 2, key_len: 32, salt_len: 16, concurrency: 4}
throttle:
  per_account: {max: 5, window: 10m}
  per_address: {max: 0}
username_max: 20
redis_prefix: "game1:"
postgres_schema: login_game1
`
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&o); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.HTTPAddr != "127.0.0.1:9000" || o.SessionTTL != time.Hour || o.Argon2.MemoryKiB != 65536 || o.Argon2.Threads != 2 ||
		o.Argon2.Concurrency != 4 || o.Throttle.PerAccount.Max != 5 || o.Throttle.PerAccount.Window != 10*time.Minute || o.Throttle.PerAddress.Max != 0 ||
		o.UsernameMax != 20 || o.UsernameMin != DefaultUsernameMin || o.RedisPrefix != "game1:" || o.PostgresSchema != "login_game1" {
		t.Fatalf("decoded %+v", o)
	}
}

func TestPHC(t *testing.T) {
	h := newHasher(Argon2Options{Time: 1, MemoryKiB: 64, Threads: 2, KeyLen: 16, SaltLen: 8}, 0, 1<<20)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "pässword")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=2$") {
		t.Fatalf("hash %q", enc)
	}
	enc2, _ := h.Hash(ctx, "pässword")
	if enc == enc2 {
		t.Fatal("two hashes of one password are equal: no salt?")
	}
	for pw, want := range map[string]bool{"pässword": true, "password": false, "": false, "pässword ": false} {
		if ok, err := h.Verify(ctx, prioLow, pw, enc); err != nil || ok != want {
			t.Errorf("Verify(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	// Another hasher (other parameters) verifies it from the string.
	other := newHasher(Argon2Options{Time: 2, MemoryKiB: 128, Threads: 1, KeyLen: 32, SaltLen: 16}, 0, 1<<20)
	if ok, err := other.Verify(ctx, prioLow, "pässword", enc); !ok || err != nil {
		t.Fatalf("Verify with other parameters = %v, %v", ok, err)
	}
	// A known answer: x/crypto's argon2id test vector (m=64 KiB, t=1,
	// p=1, "password", salt "somesalt", 24-byte key) as a PHC string.
	const ref = "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$ZVrRXqxlLcWfcXCnMyv0m4Rpvh/bnCi7"
	if d, err := parsePHC(ref); err != nil || string(d.salt) != "somesalt" || d.m != 64 || d.t != 1 || d.p != 1 {
		t.Fatalf("parsePHC(reference) = %+v, %v", d, err)
	}
	if ok, err := h.Verify(ctx, prioLow, "password", ref); !ok || err != nil {
		t.Fatalf("Verify(known answer) = %v, %v", ok, err)
	}
	if ok, err := h.Verify(ctx, prioLow, "passwore", ref); ok || err != nil {
		t.Fatalf("Verify(known answer, wrong password) = %v, %v", ok, err)
	}
	for _, bad := range []string{
		"", "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=16$m=64,t=1,p=1$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=19$m=64,t=1$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=19$t=1,m=64,p=1$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA", // 4 GiB
		"$argon2id$v=19$m=64,t=1000,p=1$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=19$m=64,t=1,p=0$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=19$m=64,t=1,p=256$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=19$m=8,t=1,p=2$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=19$m=64,t=1,p=1$c29t$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$Gqq5",
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ=$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=19$m=-1,t=1,p=1$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA",
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$Gqq5Vd54TCKDnyvD1JmCVA$",
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$" + strings.Repeat("A", 600),
	} {
		if _, err := h.Verify(ctx, prioLow, "password", bad); !errors.Is(err, errBadHash) {
			t.Errorf("Verify(%q) = %v, want errBadHash", bad, err)
		}
	}
}

// TestHasherBounded: at most Concurrency hashes run at once; a waiter
// gives up when its context ends.
func TestHasherBounded(t *testing.T) {
	h := newHasher(Argon2Options{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 16, SaltLen: 8, Concurrency: 1}, 0, 1<<20)
	if err := h.acquire(context.Background(), prioLow); err != nil { // hold the only slot
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "password"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hash with no free slot = %v, want deadline exceeded", err)
	}
	h.release()
	if _, err := h.Hash(context.Background(), "password"); err != nil {
		t.Fatal(err)
	}
}

// TestHasherPriority: with the slot taken, high-priority waiters are
// served before low ones, and low ones are shed once shedAt wait, while
// high ones still queue up to maxQueue.
func TestHasherPriority(t *testing.T) {
	h := newHasher(Argon2Options{Concurrency: 1}, 2, 4)
	ctx := context.Background()
	if err := h.acquire(ctx, prioLow); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 4)
	wait := func(name string, p priority) {
		go func() {
			if err := h.acquire(ctx, p); err != nil {
				order <- name + ": " + err.Error()
				return
			}
			order <- name
		}()
	}
	wait("low1", prioLow)
	testenvCheck(t, func() bool { return h.queueLen() == 1 })
	wait("low2", prioLow)
	testenvCheck(t, func() bool { return h.queueLen() == 2 })
	if err := h.acquire(ctx, prioLow); !errors.Is(err, errShed) {
		t.Fatalf("low-priority acquire with 2 waiting = %v, want errShed", err)
	}
	wait("high", prioHigh)
	testenvCheck(t, func() bool { return h.queueLen() == 3 })
	if running, waiting := h.load(); running != 1 || waiting != 3 {
		t.Fatalf("load with the slot taken and 3 waiting = %d running, %d waiting", running, waiting)
	}
	for _, want := range []string{"high", "low1", "low2"} {
		h.release()
		if got := <-order; got != want {
			t.Fatalf("served %q, want %q", got, want)
		}
	}
	h.release()
	if h.queueLen() != 0 || h.free != 1 {
		t.Fatalf("after all released: queue %d, free %d", h.queueLen(), h.free)
	}
	if running, waiting := h.load(); running != 0 || waiting != 0 {
		t.Fatalf("load after all released = %d running, %d waiting", running, waiting)
	}
}

// testenvCheck waits up to 5 s for cond.
func testenvCheck(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAddressBucket(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "",
		"192.0.2.1:1000":           "192.0.2.1",
		"192.0.2.1":                "192.0.2.1",
		"[::ffff:192.0.2.1]:5":     "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:7": "2001:db8:1:2::/64",
		"2001:db8:1:2::9":          "2001:db8:1:2::/64",
		"unix-socket":              "unix-socket",
		strings.Repeat("x", 100):   strings.Repeat("x", 64) + "...",
	} {
		if got := addressBucket(in); got != want {
			t.Errorf("addressBucket(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: time.Second, time.Millisecond: time.Second, time.Second: time.Second,
		1001 * time.Millisecond: 2 * time.Second, time.Minute: time.Minute,
	} {
		if got := (&rateLimited{retry: in}).retryAfter(); got != want {
			t.Errorf("retryAfter(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestTokens(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, err := newToken()
		if err != nil || len(tok) != TokenLen || !wellFormedToken(tok) || seen[tok] {
			t.Fatalf("newToken = %q, %v", tok, err)
		}
		seen[tok] = true
	}
	for _, bad := range []string{"", "short", strings.Repeat("a", 42), strings.Repeat("a", 44), strings.Repeat("+", 43), strings.Repeat("=", 43)} {
		if wellFormedToken(bad) {
			t.Errorf("wellFormedToken(%q)", bad)
		}
	}
}
