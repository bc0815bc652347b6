// Package freeport picks TCP ports for the daemons that tests and test
// harnesses (noonchaos) start as processes, which must be told their ports
// before they bind them.
//
// A port is picked below 32768: Linux takes the local port of outgoing
// connections, and the port of every bind of port 0, from 32768 up
// (ip_local_port_range), so a port picked there could be taken by another
// daemon's admin listener or by any connection before the process it was
// meant for binds it. And a port is never picked twice in one process, as
// each pick's listener is closed before the next.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Reserve keeps Pick from returning a port of [lo, hi]: ports a caller
// derives itself (e.g. noon cluster's from its -port-offset).
func Reserve(lo, hi int) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for p := lo; p <= hi; p++ {
		handedOut.ports[p] = true
	}
}

// take marks port handed out; false if it was already.
func take(port int) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports[port] {
		return false
	}
	handedOut.ports[port] = true
	return true
}

// Pick returns a TCP port of 20000-31999 free on host ("127.0.0.1", or ""
// for every interface) a moment ago and not picked or reserved before in
// this process.
func Pick(host string) (int, error) {
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
		if err != nil {
			continue
		}
		l.Close()
		if take(port) {
			return port, nil
		}
	}
	return 0, errors.New("freeport: no free port below the ephemeral range")
}
