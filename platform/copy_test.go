package platform

import (
	"reflect"
	"testing"
	"time"

	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
)

// TestCopySection: a section's copy (for a second instance in this
// process) equals it, durations and nested options included, and is not
// the same value.
func TestCopySection(t *testing.T) {
	sec := login.Module.NewSection()
	sec.Runtime().Concurrency = 77
	sec.Runtime().Heartbeat = 1500 * time.Millisecond
	cp, err := copySection(login.Module, sec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sec, cp) {
		t.Fatalf("copy differs:\n%+v\n%+v", sec, cp)
	}
	cp.Runtime().Concurrency = 1
	if sec.Runtime().Concurrency != 77 {
		t.Fatal("the copy shares the original")
	}
	rsec := room.Module.NewSection()
	rcp, err := copySection(room.Module, rsec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rsec, rcp) {
		t.Fatalf("room copy differs:\n%+v\n%+v", rsec, rcp)
	}
}
