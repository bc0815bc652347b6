// Package rawio reads and writes non-blocking sockets with raw system
// calls.
//
// Go's own socket reads and writes go through syscall.Syscall, which tells
// the scheduler that the goroutine may block: it gives up its P's running
// state and, when the runtime's monitor thread (sysmon) is asleep because
// every P was idle, wakes it with a futex. A server at low load goes idle
// between requests, so almost every request paid that wake (and sysmon's
// sleep after it): measured with perf on the broker at one connection,
// about 17 us of a 133 us round trip's CPU on a 2-vCPU VM, more than the
// TLS of its link. A read or write of a non-blocking socket never blocks
// (it returns EAGAIN instead), so it may use syscall.RawSyscall, which
// skips the scheduler's bookkeeping; waiting for readiness stays with the
// runtime's poller (syscall.RawConn), deadlines included.
//
// Under the race detector the ordinary calls are used instead: they tell
// the detector that what one goroutine wrote to a socket happens before
// what another reads from it, which raw calls would hide.
package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Read reads once from the non-blocking descriptor fd into p.
func Read(fd uintptr, p []byte) (int, error) { return read(fd, p) }

// Write writes once from p to the non-blocking descriptor fd.
func Write(fd uintptr, p []byte) (int, error) { return write(fd, p) }

// IoctlInt makes the ioctl req, whose result is an int, on fd (e.g.
// SIOCOUTQ: the bytes of a socket not yet sent or acknowledged).
func IoctlInt(fd, req uintptr) (int, error) { return ioctlInt(fd, req) }

// Conn is a TCP connection whose Read and Write make raw system calls, and
// WriteBuffers one raw writev, waiting for readiness through the runtime's
// poller under the connection's deadlines. Everything else is the
// *net.TCPConn's. Reads may run alongside writes; concurrent reads (or
// writes) take turns.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu  sync.Mutex
	rp   []byte
	rn   int
	rerr error
	rfn  func(uintptr) bool

	wmu  sync.Mutex
	wp   []byte
	wn   int
	werr error
	wfn  func(uintptr) bool
	wv   [][]byte
	wvn  int64
	iov  []syscall.Iovec
	wvfn func(uintptr) bool
}

// Wrap returns c with raw reads and writes when it is a *net.TCPConn, and
// c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		if rw := New(tc); rw != nil {
			return rw
		}
	}
	return c
}

// New returns tc with raw reads and writes, or nil if tc has no
// descriptor (closed).
func New(tc *net.TCPConn) *Conn {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	rw := &Conn{TCPConn: tc, rc: rc}
	rw.rfn = rw.readFn
	rw.wfn = rw.writeFn
	rw.wvfn = rw.writevFn
	return rw
}

// Listener accepts connections wrapped by Wrap.
type Listener struct{ net.Listener }

// Accept waits for the next connection and wraps it.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// RawConn returns the connection's syscall.RawConn, for callers that make
// raw calls of their own (Read and Write above) through the poller.
func (c *Conn) RawConn() syscall.RawConn { return c.rc }

// Read reads into p: what the socket holds, or, when it holds nothing, what
// arrives first, until the read deadline.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rp, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.rfn)
	n, rerr := c.rn, c.rerr
	c.rp = nil
	if err != nil {
		return n, opError("read", c.TCPConn, err)
	}
	if rerr != nil {
		return n, rerr
	}
	return n, nil
}

func (c *Conn) readFn(fd uintptr) bool {
	for {
		n, err := read(fd, c.rp)
		switch {
		case n > 0:
			c.rn = n
			return true
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err == nil:
			c.rerr = io.EOF
		default:
			c.rerr = opError("read", c.TCPConn, os.NewSyscallError("read", err))
		}
		return true
	}
}

// Write writes all of p, waiting for the socket to take it until the write
// deadline.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wp, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.wfn)
	n, werr := c.wn, c.werr
	c.wp = nil
	if err != nil {
		return n, opError("write", c.TCPConn, err)
	}
	return n, werr
}

func (c *Conn) writeFn(fd uintptr) bool {
	for c.wn < len(c.wp) {
		n, err := write(fd, c.wp[c.wn:])
		if n > 0 {
			c.wn += n
		}
		if wait, stop := c.wrote("write", n, err); wait || stop {
			return stop
		}
	}
	return true
}

// wrote sorts the result of a raw write: progress or EINTR (go on), EAGAIN
// (wait for the poller), or the end, with c.werr set.
func (c *Conn) wrote(op string, n int, err error) (wait, stop bool) {
	switch {
	case n > 0, err == syscall.EINTR:
		return false, false
	case err == syscall.EAGAIN:
		return true, false
	case err == nil:
		c.werr = io.ErrShortWrite
	default:
		c.werr = opError(op, c.TCPConn, os.NewSyscallError(op, err))
	}
	return false, true
}

// maxIov is the most buffers one writev takes (Linux's IOV_MAX).
const maxIov = 1024

// WriteBuffers writes every buffer of bufs in order, with one writev when
// the socket takes them all, until the write deadline. It consumes bufs
// (as net.Buffers.WriteTo does).
func (c *Conn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wv, c.wvn, c.werr = *bufs, 0, nil
	err := c.rc.Write(c.wvfn)
	n, werr := c.wvn, c.werr
	*bufs = c.wv
	c.wv = nil
	clear(c.iov)
	if err != nil {
		return n, opError("write", c.TCPConn, err)
	}
	return n, werr
}

func (c *Conn) writevFn(fd uintptr) bool {
	for {
		for len(c.wv) > 0 && len(c.wv[0]) == 0 {
			c.wv = c.wv[1:]
		}
		if len(c.wv) == 0 {
			return true
		}
		c.iov = c.iov[:0]
		for _, b := range c.wv {
			if len(b) == 0 {
				continue
			}
			if len(c.iov) == maxIov {
				break
			}
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			c.iov = append(c.iov, v)
		}
		n, err := writev(fd, c.iov)
		if n > 0 {
			c.wvn += int64(n)
			consume(&c.wv, int64(n))
		}
		if wait, stop := c.wrote("writev", n, err); wait || stop {
			return stop
		}
	}
}

// consume drops the first n bytes of *v.
func consume(v *[][]byte, n int64) {
	for len(*v) > 0 {
		ln0 := int64(len((*v)[0]))
		if ln0 > n {
			(*v)[0] = (*v)[0][n:]
			return
		}
		n -= ln0
		(*v)[0] = nil
		*v = (*v)[1:]
	}
}

// opError wraps err as the net package does for a TCPConn's, so that
// errors.Is(err, net.ErrClosed) and net.Error's Timeout hold as before.
func opError(op string, c *net.TCPConn, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// SetDeadline, SetReadDeadline and SetWriteDeadline are the TCPConn's:
// the raw calls wait through the same poller, under the same deadlines.
var _ interface {
	SetDeadline(time.Time) error
} = (*Conn)(nil)
