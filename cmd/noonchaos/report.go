package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// row is one phase's numbers.
type row struct {
	requests, hangs, acked, lost int
	errs                         map[string]int
	samples                      map[string][]string // distinct messages per code
	gapMissing, gapGames         int
	replayed, resyncs            int           // events replayed by room.Get since_seq; resync replies
	resumes                      int           // sessions resumed by the client (_client.Resumed)
	slowest                      time.Duration // the slowest answer
	recovery                     string
}

// result is the run's table and the losses found.
type result struct {
	phases []*phase
	rows   []row
	losses []string // one line per lost acknowledged action
	exited []string // processes that ended by themselves
}

// phaseOf is the index of the phase t falls in (before the first: the
// first; the warm-up counts as baseline).
func (r *result) phaseOf(t time.Time) int {
	i := 0
	for j, p := range r.phases {
		if !p.start.IsZero() && !t.Before(p.start) {
			i = j
		}
	}
	return i
}

// check reads the room log of every acknowledged action straight from
// Postgres (not through the proxy) and fills the table.
func (r *result) check(ctx context.Context, c *cluster, st *stats) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	r.rows = make([]row, len(r.phases))
	for i := range r.rows {
		r.rows[i].errs = map[string]int{}
		r.rows[i].samples = map[string][]string{}
	}
	for _, x := range st.recs {
		w := &r.rows[r.phaseOf(x.start)]
		w.requests++
		if d := x.end.Sub(x.start); x.code != codeHang && d > w.slowest {
			w.slowest = d
		}
		if x.code == "" {
			continue
		}
		w.errs[x.code]++
		if x.code == codeHang {
			w.hangs++
		}
		msg := x.msg
		if len(msg) > 140 {
			msg = msg[:140] + "..."
		}
		if s := w.samples[x.code]; len(s) < 3 && !slices.Contains(s, msg) {
			w.samples[x.code] = append(s, msg)
		}
	}
	for _, g := range st.gaps {
		w := &r.rows[r.phaseOf(g.at)]
		w.gapMissing += g.missing
		w.gapGames++
	}
	for _, t := range st.resumes {
		r.rows[r.phaseOf(t)].resumes++
	}
	for _, x := range st.replays {
		w := &r.rows[r.phaseOf(x.at)]
		w.replayed += x.events
		if x.resync {
			w.resyncs++
		}
	}
	// Every acknowledged act must be an act entry of its player in its
	// room's log. The reply's seq is the room's event seq, not the entry's,
	// so the check counts: a player's act entries in a room are at least
	// its acknowledged acts there (a move whose reply was lost may be
	// logged too, never fewer).
	type key struct{ room, player string }
	acked := map[key][]ack{}
	for _, a := range st.acks {
		k := key{a.room, a.player}
		acked[k] = append(acked[k], a)
		r.rows[r.phaseOf(a.at)].acked++
	}
	rooms := map[string]bool{}
	for _, a := range st.acks {
		rooms[a.room] = true
	}
	ids := make([]string, 0, len(rooms))
	for id := range rooms {
		ids = append(ids, id)
	}
	qctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(qctx, c.dbURL(false))
	if err != nil {
		return fmt.Errorf("reading the room log: %w", err)
	}
	defer conn.Close(context.Background())
	logged := map[key]int{}
	rows, err := conn.Query(qctx, "SELECT room_id, player, count(*) FROM room.room_entries WHERE kind = 'act' AND room_id = ANY($1) GROUP BY room_id, player", ids)
	if err != nil {
		return fmt.Errorf("reading the room log: %w", err)
	}
	for rows.Next() {
		var k key
		var n int
		if err := rows.Scan(&k.room, &k.player, &n); err != nil {
			return err
		}
		logged[k] = n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the room log: %w", err)
	}
	for k, as := range acked {
		if n := logged[k]; n < len(as) {
			// Counted in the phase of the last acknowledgement.
			last := as[len(as)-1]
			i := r.phaseOf(last.at)
			r.rows[i].lost += len(as) - n
			r.losses = append(r.losses, fmt.Sprintf("%s: room %s: player %s has %d acknowledged acts (event seqs %d..%d, the last at %s), %d act entries in the log",
				r.phases[i].name, k.room, k.player, len(as), as[0].seq, last.seq, last.at.Format("15:04:05.000"), n))
		}
	}
	r.recovery(st)
	return nil
}

// recovery fills each phase's recovery time: for every worker with a
// failed request of an affected kind after the fault, the time from the
// fault's reference (the kill, or the end of an outage) to the worker's
// next success of that kind; the phase's is the largest (every disrupted
// worker working again), the number of workers disrupted, and by kind
// those still failing at the phase's end ("never"). "-": nothing failed.
func (r *result) recovery(st *stats) {
	byWorker := map[int][]rec{}
	for _, x := range st.recs {
		byWorker[x.worker] = append(byWorker[x.worker], x)
	}
	for _, recs := range byWorker {
		sort.Slice(recs, func(i, j int) bool { return recs[i].start.Before(recs[j].start) })
	}
	for i, p := range r.phases {
		if p.fault.IsZero() {
			r.rows[i].recovery = "-"
			continue
		}
		var worst time.Duration
		disrupted := 0
		stuck := map[string]int{} // by kind
		for _, recs := range byWorker {
			for _, kind := range p.kinds {
				failedAt := -1
				for j, x := range recs {
					if x.kind == kind && x.code != "" && !x.end.Before(p.fault) && x.start.Before(p.end) {
						failedAt = j
						break
					}
				}
				if failedAt < 0 {
					continue
				}
				disrupted++
				ok := false
				for _, x := range recs[failedAt+1:] {
					if x.kind == kind && x.code == "" {
						ok = true
						if d := x.end.Sub(p.ref); d > worst {
							worst = d
						}
						break
					}
				}
				if !ok {
					stuck[kind]++
				}
			}
		}
		switch {
		case disrupted == 0:
			r.rows[i].recovery = "-"
		case len(stuck) > 0:
			r.rows[i].recovery = fmt.Sprintf("%.2fs (%d); never: %s", worst.Seconds(), disrupted, codes(stuck))
		default:
			r.rows[i].recovery = fmt.Sprintf("%.2fs (%d)", worst.Seconds(), disrupted)
		}
	}
}

// failed reports a hang, a loss or a process that exited by itself (or,
// with gaps, a push gap).
func (r *result) failed(gaps bool) bool {
	if len(r.exited) > 0 {
		return true
	}
	for _, w := range r.rows {
		if w.hangs > 0 || w.lost > 0 || gaps && w.gapMissing > 0 {
			return true
		}
	}
	return false
}

// print writes the table, the error samples and the losses.
func (r *result) print(out io.Writer, st *stats) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\trequests\terrors by code\thangs\tslowest\tacked acts\tlost\tresumed\treplayed (events/resyncs)\tpush gaps (missing/games)\trecovery (workers)")
	var tot row
	tot.errs = map[string]int{}
	for i, p := range r.phases {
		w := r.rows[i]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.2fs\t%d\t%d\t%d\t%d/%d\t%d/%d\t%s\n", p.name, w.requests, codes(w.errs), w.hangs, w.slowest.Seconds(), w.acked, w.lost, w.resumes, w.replayed, w.resyncs, w.gapMissing, w.gapGames, w.recovery)
		tot.requests += w.requests
		tot.hangs += w.hangs
		tot.acked += w.acked
		tot.lost += w.lost
		tot.gapMissing += w.gapMissing
		tot.gapGames += w.gapGames
		tot.replayed += w.replayed
		tot.resumes += w.resumes
		tot.resyncs += w.resyncs
		for k, v := range w.errs {
			tot.errs[k] += v
		}
	}
	fmt.Fprintf(tw, "total\t%d\t%s\t%d\t\t%d\t%d\t%d\t%d/%d\t%d/%d\t\n", tot.requests, codes(tot.errs), tot.hangs, tot.acked, tot.lost, tot.resumes, tot.replayed, tot.resyncs, tot.gapMissing, tot.gapGames)
	tw.Flush()
	fmt.Fprintln(out, "\nerror samples:")
	for i, p := range r.phases {
		w := r.rows[i]
		var ks []string
		for k := range w.samples {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			for _, m := range w.samples[k] {
				if !strings.HasPrefix(m, k+":") { // a wire error's text starts with its code
					m = k + ": " + m
				}
				fmt.Fprintf(out, "  %s: %s\n", p.name, m)
			}
		}
	}
	if len(st.gaps) > 0 {
		fmt.Fprintf(out, "\npush gaps (%d games: events neither pushed nor replayed by room.Get since_seq):\n", len(st.gaps))
		for i, g := range st.gaps {
			if i == 20 {
				fmt.Fprintf(out, "  ... %d more\n", len(st.gaps)-20)
				break
			}
			fmt.Fprintf(out, "  %s: bot %s room %s: %d event(s) of (%d, %d] neither pushed nor replayed, the first %d\n",
				r.phases[r.phaseOf(g.at)].name, g.bot, g.room, g.missing, g.base, g.last, g.first)
		}
	}
	if len(st.replays) > 0 {
		fmt.Fprintf(out, "\ncatch-ups that brought events not pushed (%d):\n", len(st.replays))
		for i, x := range st.replays {
			if i == 20 {
				fmt.Fprintf(out, "  ... %d more\n", len(st.replays)-20)
				break
			}
			what := fmt.Sprintf("%d event(s), the first %d", x.events, x.first)
			if x.resync {
				what = fmt.Sprintf("resync (%d events)", x.events)
			}
			fmt.Fprintf(out, "  %s: bot %s room %s (%s): since %d: %s\n", r.phases[r.phaseOf(x.at)].name, x.bot, x.room, x.why, x.since, what)
		}
	}
	if len(r.exited) > 0 {
		fmt.Fprintf(out, "\nprocesses that exited by themselves (see the logs, -keep):\n")
		for _, e := range r.exited {
			fmt.Fprintln(out, "  "+e)
		}
	}
	if len(r.losses) > 0 {
		fmt.Fprintf(out, "\nLOST acknowledged actions (%d):\n", len(r.losses))
		for i, l := range r.losses {
			if i == 50 {
				fmt.Fprintf(out, "  ... %d more\n", len(r.losses)-50)
				break
			}
			fmt.Fprintln(out, "  "+l)
		}
	}
}

// codes formats errors by code, most first.
func codes(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return ks[i] < ks[j]
	})
	var b strings.Builder
	for i, k := range ks {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%d", k, m[k])
	}
	return b.String()
}
