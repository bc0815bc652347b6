//go:build !linux

package edge

import "syscall"

// sendQueueEmpty cannot tell here: WebSocket replies always go through
// the connection's writer.
func sendQueueEmpty(syscall.RawConn) bool { return false }
