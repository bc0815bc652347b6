package main

import (
	"io"
	"net"
	"sync"
	"time"
)

// pgProxy is a TCP proxy in front of the shared Postgres: cut closes every
// connection through it and refuses new ones until restore, which is how
// the suite simulates a Postgres restart without touching the server
// other tests share.
type pgProxy struct {
	l        net.Listener
	upstream string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newPGProxy(upstream string) (*pgProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &pgProxy{l: l, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is host:port of the proxy.
func (p *pgProxy) Addr() string { return p.l.Addr().String() }

func (p *pgProxy) accept() {
	defer p.wg.Done()
	for {
		nc, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			nc.Close() // refused, as by a server that is down
			continue
		}
		p.wg.Add(1)
		go p.serve(nc)
	}
}

func (p *pgProxy) serve(nc net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		nc.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		nc.Close()
		up.Close()
		return
	}
	p.conns[nc], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, nc)
	go pipe(nc, up)
	<-done
	nc.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, nc)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Cut closes every open connection and refuses new ones until Restore.
func (p *pgProxy) Cut() {
	p.mu.Lock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Restore lets connections through again.
func (p *pgProxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// Close stops the proxy and closes its connections.
func (p *pgProxy) Close() {
	p.l.Close()
	p.Cut()
	p.wg.Wait()
}
