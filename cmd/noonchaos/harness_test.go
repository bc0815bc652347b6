package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noonhq/noon/internal/cutproxy"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/wire"
)

// The harness's own checks: what counts as a hang, an error code, a
// recovery, a push gap; and the fault proxy. (The suite itself runs with
// NOON_CHAOS=1, see chaos_test.go.)

func TestCallClassifies(t *testing.T) {
	st := &stats{}
	l := &load{deadline: 50 * time.Millisecond, grace: 50 * time.Millisecond, st: st}
	ctx := context.Background()
	_ = l.call(ctx, 1, kindEcho, func(context.Context) error { return nil })
	_ = l.call(ctx, 1, kindEcho, func(context.Context) error { return wire.Errorf(wire.CodeUnavailable, "down") })
	_ = l.call(ctx, 1, kindEcho, func(context.Context) error { return io.EOF })
	// No answer: the call's context ends at deadline + grace.
	_ = l.call(ctx, 1, kindEcho, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	want := []string{"", wire.CodeUnavailable, "conn", codeHang}
	if len(st.recs) != len(want) {
		t.Fatalf("%d records; want %d", len(st.recs), len(want))
	}
	for i, w := range want {
		if st.recs[i].code != w {
			t.Errorf("record %d: code %q; want %q", i, st.recs[i].code, w)
		}
	}
	// A failure while the run stops is not recorded.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = l.call(cctx, 1, kindEcho, func(ctx context.Context) error { return ctx.Err() })
	if len(st.recs) != len(want) {
		t.Errorf("a call cut by the run's end was recorded")
	}
}

func TestMissing(t *testing.T) {
	b := &bot{seen: map[string]map[int64]bool{"r": {3: true, 4: true, 6: true}}}
	if n, first := b.missing("r", 2, 6, 0); n != 1 || first != 5 {
		t.Errorf("missing = %d, first %d; want 1, 5", n, first)
	}
	if n, _ := b.missing("r", 2, 4, 0); n != 0 {
		t.Errorf("missing = %d; want 0", n)
	}
	if n, first := b.missing("other", 0, 2, 0); n != 2 || first != 1 {
		t.Errorf("missing in an unseen room = %d, first %d; want 2, 1", n, first)
	}
}

func TestRecovery(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	p := &phase{name: "kill", kinds: []string{kindRoom}, start: at(0), fault: at(1), ref: at(1), end: at(10)}
	st := &stats{recs: []rec{
		{worker: 1, kind: kindRoom, start: at(0.5), end: at(0.6)},
		// Cut by the fault: started before it, failed after.
		{worker: 1, kind: kindRoom, start: at(0.9), end: at(1.1), code: wire.CodeUnavailable},
		{worker: 1, kind: kindEcho, start: at(1.2), end: at(1.3)}, // another kind
		{worker: 1, kind: kindRoom, start: at(3), end: at(3.5)},
		// Never recovers.
		{worker: 2, kind: kindRoom, start: at(2), end: at(2.1), code: wire.CodeInternal},
		// Not disrupted.
		{worker: 3, kind: kindRoom, start: at(2), end: at(2.1)},
	}}
	r := &result{phases: []*phase{p}, rows: make([]row, 1)}
	r.recovery(st)
	if got, want := r.rows[0].recovery, "2.50s (2); never: room:1"; got != want {
		t.Errorf("recovery %q; want %q", got, want)
	}
}

func TestPGProxyCut(t *testing.T) {
	// An upstream that echoes lines.
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	p, err := cutproxy.New(up.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	roundTrip := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		l, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && strings.TrimSpace(l) != "ping" {
			err = errors.New("bad echo " + l)
		}
		return err
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := dial()
	defer c.Close()
	if err := roundTrip(c); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut()
	if err := roundTrip(c); err == nil {
		t.Fatal("an open connection survived the cut")
	}
	c2 := dial()
	defer c2.Close()
	if err := roundTrip(c2); err == nil {
		t.Fatal("a new connection got through a cut proxy")
	}
	p.Restore()
	c3 := dial()
	defer c3.Close()
	if err := roundTrip(c3); err != nil {
		t.Fatalf("after restore: %v", err)
	}
}

// TestLossCheck: the check against the room log in Postgres finds an
// acknowledged act missing from the log, and counts nothing for acts that
// are there (or logged without an acknowledgement).
func TestLossCheck(t *testing.T) {
	testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := newCluster(ctx, "", "", testenv.PostgresURL(), t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close(false)
	conn, err := pgx.Connect(ctx, c.dbURL(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The columns the check reads of the room service's log.
	if _, err := conn.Exec(ctx, `CREATE SCHEMA room; CREATE TABLE room.room_entries (room_id text, seq bigint, kind text, player text);
		INSERT INTO room.room_entries VALUES ('r1', 1, 'create', 'a'), ('r1', 2, 'act', 'a'), ('r1', 3, 'act', 'b'), ('r1', 4, 'act', 'a'),
			('r2', 1, 'create', 'a'), ('r2', 2, 'act', 'b')`); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	p := &phase{name: "p", start: t0.Add(-time.Hour)}
	st := &stats{acks: []ack{
		{room: "r1", seq: 2, player: "a", at: t0}, {room: "r1", seq: 3, player: "b", at: t0},
		// r1's act of a at 4 was logged but its reply lost: not a loss.
		// r2: b's act is there, a's is not.
		{room: "r2", seq: 2, player: "b", at: t0}, {room: "r2", seq: 3, player: "a", at: t0},
	}}
	r := &result{phases: []*phase{p}}
	if err := r.check(ctx, c, st); err != nil {
		t.Fatal(err)
	}
	if r.rows[0].lost != 1 || r.rows[0].acked != 4 || len(r.losses) != 1 || !strings.Contains(r.losses[0], "room r2: player a") {
		t.Fatalf("lost %d of %d acked; losses %q; want 1 of 4, r2's act of a", r.rows[0].lost, r.rows[0].acked, r.losses)
	}
}

// TestReplayedNotMissing: an event replayed by room.Get since_seq, or
// covered by a resync's state, is no gap; contiguous is where a catch-up
// asks from.
func TestReplayedNotMissing(t *testing.T) {
	b := &bot{room: "r", base: 2,
		seen:     map[string]map[int64]bool{"r": {3: true, 6: true, 9: true}},
		replayed: map[string]map[int64]bool{"r": {4: true}}}
	if got := b.contiguous(); got != 4 {
		t.Errorf("contiguous = %d; want 4", got)
	}
	if n, first := b.missing("r", 2, 9, 0); n != 3 || first != 5 {
		t.Errorf("missing = %d, first %d; want 3, 5", n, first)
	}
	b.resynced = map[string]int64{"r": 8}
	if n, _ := b.missing("r", 2, 9, 0); n != 0 {
		t.Errorf("missing after a resync to 8 = %d; want 0", n)
	}
	if got := b.contiguous(); got != 9 {
		t.Errorf("contiguous after a resync = %d; want 9", got)
	}
}
