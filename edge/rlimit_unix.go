//go:build unix

package edge

import "syscall"

// fileLimit returns the process's soft limit on open files, or 0 when it
// cannot be read (an unlimited one is huge, and clampConnections ignores
// it).
func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}
