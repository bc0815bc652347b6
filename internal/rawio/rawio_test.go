package rawio_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/rawio"
)

// pair returns both ends of a loopback TCP connection, each wrapped.
func pair(t *testing.T) (a, b *rawio.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	dc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-acc
	if sc == nil {
		t.Fatal("accept failed")
	}
	a, ok1 := rawio.Wrap(dc).(*rawio.Conn)
	b, ok2 := rawio.Wrap(sc).(*rawio.Conn)
	if !ok1 || !ok2 {
		t.Fatal("Wrap did not wrap a *net.TCPConn")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

// TestBigWriteWaits writes far more than the socket buffers hold: Write
// must wait for the reader (EAGAIN, then the poller) and deliver every byte
// in order.
func TestBigWriteWaits(t *testing.T) {
	a, b := pair(t)
	_ = a.SetWriteBuffer(16 << 10)
	_ = b.SetReadBuffer(16 << 10)
	want := pattern(8 << 20)
	errc := make(chan error, 1)
	go func() {
		n, err := a.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		errc <- err
		a.CloseWrite()
	}()
	expect(t, b, errc, want)
}

// expect reads b to its end, then checks the writer's error from errc and
// that what came is want.
func expect(t *testing.T, b *rawio.Conn, errc <-chan error, want []byte) {
	t.Helper()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
	}
}

// TestWriteBuffers writes more buffers than one writev takes, some empty,
// more bytes than the socket holds.
func TestWriteBuffers(t *testing.T) {
	a, b := pair(t)
	_ = a.SetWriteBuffer(16 << 10)
	var bufs net.Buffers
	var want []byte
	for i := range 3000 {
		p := pattern(i % 700)
		if i%5 == 0 {
			p = nil
		}
		bufs = append(bufs, p)
		want = append(want, p...)
	}
	errc := make(chan error, 1)
	go func() {
		n, err := a.WriteBuffers(&bufs)
		if err == nil && n != int64(len(want)) {
			err = io.ErrShortWrite
		}
		if err == nil && len(bufs) != 0 {
			err = errors.New("WriteBuffers left buffers")
		}
		errc <- err
		a.CloseWrite()
	}()
	expect(t, b, errc, want)
}

// TestReadDeadline: a read that waits past its deadline fails with a
// timeout, as a TCPConn's does; a write deadline likewise stops a write
// that the peer does not take.
func TestDeadlines(t *testing.T) {
	a, b := pair(t)
	_ = b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := b.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want a timeout", err)
	}
	// A write the peer stops taking ends at its deadline, counting what
	// it wrote. The deadline comes once the write has begun (b read a
	// byte of it), not at a time, so that a slow machine cannot pass it
	// before the first byte leaves.
	_ = a.SetWriteBuffer(16 << 10)
	_ = b.SetReadDeadline(time.Time{})
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := a.Write(make([]byte, 16<<20)) // b takes 1 byte of it
		done <- result{n, err}
	}()
	if _, err := io.ReadFull(b, make([]byte, 1)); err != nil {
		t.Fatalf("reading the write's first byte: %v", err)
	}
	_ = a.SetWriteDeadline(time.Now())
	r := <-done
	if !errors.As(r.err, &ne) || !ne.Timeout() {
		t.Fatalf("Write past the deadline: %d, %v, want a timeout", r.n, r.err)
	}
	if r.n <= 0 || r.n >= 16<<20 {
		t.Fatalf("Write past the deadline wrote %d bytes, want some", r.n)
	}
}

// TestCloseAndEOF: the peer's close is io.EOF; a read blocked when its own
// connection closes ends with net.ErrClosed.
func TestCloseAndEOF(t *testing.T) {
	a, b := pair(t)
	if _, err := a.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "hi" {
		t.Fatalf("ReadAll = %q, %v; want \"hi\", nil", got, err)
	}

	c, d := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := d.Read(make([]byte, 10))
		errc <- err
	}()
	// The read is blocked or about to be: either way it must end with
	// ErrClosed, never hang.
	d.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a closed connection: %v, want net.ErrClosed", err)
	}
	_ = c
	if _, err := d.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed connection: %v, want net.ErrClosed", err)
	}
}

// TestWrapOther leaves a connection that is not TCP as it is.
func TestWrapOther(t *testing.T) {
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if rawio.Wrap(p) != p {
		t.Fatal("Wrap wrapped a net.Pipe")
	}
}
