package services

import "github.com/noonhq/noon/internal/metrics"

// RegisterMetrics exports the server's counters to m (read at scrape time
// from Stats), under names prefixed "service_"; the registry's daemon label
// names the service.
func (s *Server) RegisterMetrics(m metrics.Sink) {
	counter := func(name, help string, f func(ServerStats) uint64) {
		m.CounterFunc(name, help, func() float64 { return float64(f(s.Stats())) })
	}
	m.GaugeFunc("service_in_flight", "Handlers running now.", func() float64 { return float64(s.InFlight()) })
	m.GaugeFunc("service_load", "In-flight requests over capacity, as reported to yellow.", s.Load)
	counter("service_requests_total", "Requests received, whatever the answer.", func(st ServerStats) uint64 { return st.Requests })
	counter("service_served_total", "Handler runs.", func(st ServerStats) uint64 { return st.Served })
	counter("service_errors_total", "Handler runs that returned an error.", func(st ServerStats) uint64 { return st.Errors })
	counter("service_panics_total", "Handler runs that panicked (answered internal).", func(st ServerStats) uint64 { return st.Panics })
	counter("service_overloaded_total", "Requests refused at capacity.", func(st ServerStats) uint64 { return st.Overloaded })
	counter("service_refused_total", "Requests refused while draining or closing.", func(st ServerStats) uint64 { return st.Refused })
	counter("service_expired_total", "Requests whose deadline had passed on arrival.", func(st ServerStats) uint64 { return st.Expired })
	counter("service_unknown_method_total", "Requests for a method with no handler.", func(st ServerStats) uint64 { return st.UnknownMethod })
	counter("service_inline_total", "Handlers of never-blocking methods run on their link's reading goroutine.", func(st ServerStats) uint64 { return st.Inline })
	counter("service_inprocess_links_total", "Links from callers of this process made without a socket (noon dev).", func(st ServerStats) uint64 { return st.InProcess })
	counter("service_replies_total", "Replies handed to the link to be written.", func(st ServerStats) uint64 { return st.Replies })
	counter("service_burst_replies_total", "Replies of inline handlers written with the rest of their read burst's (one write per burst).", func(st ServerStats) uint64 { return st.BurstReplies })
	counter("service_link_writes_total", "Writes of replies to link connections: replies / writes is how well they batch.", func(st ServerStats) uint64 { return st.LinkWrites })
	counter("service_inline_overruns_total", "Inline handlers that held their link's reader longer than the budget (two in a row stop inline runs for 10 s).", func(st ServerStats) uint64 { return st.InlineOverruns })
}
