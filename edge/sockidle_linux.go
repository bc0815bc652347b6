//go:build linux

package edge

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// sendQueueEmpty reports whether the socket has no byte waiting to be
// sent or acknowledged (SIOCOUTQ is 0): a write of up to a send buffer's
// default size then goes through without blocking.
func sendQueueEmpty(rc syscall.RawConn) bool {
	var (
		n    int
		ierr error
	)
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
		return false
	}
	return ierr == nil && n == 0
}
