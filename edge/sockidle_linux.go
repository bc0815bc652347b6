//go:build linux

package edge

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/noonhq/noon/internal/rawio"
)

// sendQueueEmpty reports whether the socket has no byte waiting to be
// sent or acknowledged (SIOCOUTQ is 0): a write of up to a send buffer's
// default size then goes through without blocking.
func sendQueueEmpty(rc syscall.RawConn) bool {
	empty := false
	if err := rc.Control(func(fd uintptr) {
		n, err := rawio.IoctlInt(fd, unix.SIOCOUTQ)
		empty = err == nil && n == 0
	}); err != nil {
		return false
	}
	return empty
}
