//go:build race || !linux

package rawio

import (
	"syscall"
	"unsafe"
)

func read(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Read(int(fd), p)
	if n < 0 {
		n = 0
	}
	return n, err
}

func write(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Write(int(fd), p)
	if n < 0 {
		n = 0
	}
	return n, err
}

func writev(fd uintptr, iov []syscall.Iovec) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func ioctlInt(fd, req uintptr) (int, error) {
	var v int32
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(&v)))
	if e != 0 {
		return 0, e
	}
	return int(v), nil
}
