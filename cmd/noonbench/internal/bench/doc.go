// Package bench holds the pieces of noonbench, noon's load generator: a raw
// TCP echo server speaking pandaparty frames and a two-hop frame relay (the
// two baselines every broker is measured against), a closed-loop load
// runner that drives any of them (or a broker) through the Go client
// (edge/client), the same closed loop around any operation (RunLoop: a
// login through the broker, an HTTP request), an idle-connection opener that spreads its sockets over
// several 127.0.0.x source addresses, and the process measurements (CPU
// time from getrusage, heap and stack from the Go runtime, RSS from
// /proc/self/status).
//
// Everything here targets loopback only (127.0.0.0/8): every address is
// checked, and every run is bounded in connections and time and stops by
// itself. The numbers are for comparing scenarios measured in the same run
// on the same machine, not absolute figures: the load generator shares the
// process, and so the CPU, with what it measures.
package bench
