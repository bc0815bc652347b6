// Package deadline moves a connection's read or write deadline lazily.
//
// Setting a deadline modifies a runtime timer; a connection that sets one
// per read or write pays that on every message. A Lazy deadline moves only
// when the one set is sooner than asked for, and then half as far again,
// so a busy connection moves it about once per half a timeout and every
// wait still gets between the timeout and 1.5 times it.
package deadline

import "time"

// Lazy is the deadline last set on one connection's reads or writes. The
// zero Lazy has none set. Not safe for concurrent use: one per direction,
// moved by whoever reads (or writes) the connection.
type Lazy struct{ at time.Time }

// Extend makes the deadline at least want: if the one set is sooner, it
// calls set with want plus half of what is left until it, and reports
// set's error.
func (d *Lazy) Extend(set func(time.Time) error, want time.Time) error {
	if !d.at.Before(want) {
		return nil
	}
	at := want.Add(time.Until(want) / 2)
	if err := set(at); err != nil {
		return err
	}
	d.at = at
	return nil
}

// Forget records that the deadline was set otherwise: the next Extend sets
// it.
func (d *Lazy) Forget() { d.at = time.Time{} }
