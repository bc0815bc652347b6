package wire

import "net"

// MetaAdmin is the yellow meta label every daemon instance (service
// instance, broker) publishes with the host:port of its admin HTTP
// (/metrics, /healthz), so that operators' tools (noonctl top, the
// console) find what to scrape from yellow alone.
const MetaAdmin = "admin"

// AdminLabel returns the value of the MetaAdmin label for an admin HTTP
// bound on addr ("host:port"): a wildcard host becomes advertiseHost (the
// host the instance publishes for its other endpoints), or 127.0.0.1 when
// that is empty too. "" for an empty or malformed addr.
func AdminLabel(addr, advertiseHost string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return ""
	}
	if IsWildcard(host) {
		host = advertiseHost
		if host == "" || IsWildcard(host) {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port)
}

// EndpointHost returns the host of a ZeroMQ endpoint "tcp://host:port", ""
// when it is not one.
func EndpointHost(ep string) string {
	host, _, err := SplitEndpoint(ep)
	if err != nil {
		return ""
	}
	return host
}
