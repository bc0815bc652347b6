//go:build !race && linux

package rawio

import (
	"syscall"
	"unsafe"
)

// Each call converts its pointer to uintptr in the syscall.RawSyscall call
// expression itself, as unsafe.Pointer's rule (4) requires: a shared
// wrapper taking uintptrs would let the object (ioctlInt's v is on the
// stack) move or die between the conversion and the call. Hence the
// repetition.

func read(fd uintptr, p []byte) (int, error) {
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func write(fd uintptr, p []byte) (int, error) {
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func writev(fd uintptr, iov []syscall.Iovec) (int, error) {
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func ioctlInt(fd, req uintptr) (int, error) {
	var v int32
	_, _, e := syscall.RawSyscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(&v)))
	if e != 0 {
		return 0, e
	}
	return int(v), nil
}
