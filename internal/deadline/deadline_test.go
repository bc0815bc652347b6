package deadline

import (
	"errors"
	"testing"
	"time"
)

func TestExtend(t *testing.T) {
	var d Lazy
	var sets []time.Time
	set := func(at time.Time) error { sets = append(sets, at); return nil }
	now := time.Now()
	want := now.Add(10 * time.Second)
	if err := d.Extend(set, want); err != nil || len(sets) != 1 {
		t.Fatalf("first Extend: %v, %d sets", err, len(sets))
	}
	if sets[0].Before(want) || sets[0].After(now.Add(15*time.Second+time.Second)) {
		t.Fatalf("set %v, want between %v and about 1.5 times the timeout", sets[0], want)
	}
	// Asked for no later than what is set: nothing moves.
	if err := d.Extend(set, want.Add(time.Second)); err != nil || len(sets) != 1 {
		t.Fatalf("Extend within the set deadline moved it: %d sets", len(sets))
	}
	// Past it: it moves.
	if err := d.Extend(set, sets[0].Add(time.Second)); err != nil || len(sets) != 2 {
		t.Fatalf("Extend past the set deadline: %v, %d sets", err, len(sets))
	}
	d.Forget()
	if err := d.Extend(set, now); err != nil || len(sets) != 3 {
		t.Fatalf("Extend after Forget: %v, %d sets", err, len(sets))
	}
	// A failed set records nothing.
	boom := errors.New("closed")
	d.Forget()
	if err := d.Extend(func(time.Time) error { return boom }, want); !errors.Is(err, boom) {
		t.Fatalf("Extend with a failing set: %v", err)
	}
	if err := d.Extend(set, want); err != nil || len(sets) != 4 {
		t.Fatalf("Extend after a failed set did not set: %d sets", len(sets))
	}
}
