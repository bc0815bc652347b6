package main

import (
	"encoding/json"
	"sort"

	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/idl/conformance"
)

// brokerLists is brokerlist.json: bodies as edge/brokerlist serves them
// (Go's encoding/json of brokerlist.List: keys sorted), hand-written
// variations a client must accept, and bodies it must reject.
func brokerLists() (conformance.BrokerLists, error) {
	out := conformance.BrokerLists{
		Notes: []string{
			"GET /brokerlist answers {\"version\": \"0.1.0\", \"brokerList\": {\"<host:port>\": <load>, ...}}: every ready broker's client address and its load, a non-negative number rounded to 4 decimals (lower is better). Unknown fields are ignored; the version is not checked.",
			"A client orders the brokers by load, ascending, ties by address compared byte-wise (\"10.0.0.10:1055\" < \"10.0.0.2:1055\"), and connects to the first (pick); when it fails it tries the next. order is that order, pick its first; an empty list has pick \"\" and the client fails with no brokers.",
			"Reconnecting after losing a broker (avoid), a client tries the others first, in order, and the lost one last (order_avoiding).",
			"malformed: bodies a client must reject (no broker is picked): not JSON, no brokerList object, a load that is not a number. A body over 1 MiB (1048576 bytes) is also rejected; it is not listed here.",
		},
	}
	served := func(name string, list map[string]float64, avoid string) error {
		b, err := json.Marshal(brokerlist.List{Version: brokerlist.Version, Brokers: list})
		if err != nil {
			return err
		}
		out.Valid = append(out.Valid, validCase(name, string(b), list, avoid))
		return nil
	}
	for _, c := range []struct {
		name  string
		list  map[string]float64
		avoid string
	}{
		{"one broker", map[string]float64{"127.0.0.1:1055": 0.067}, ""},
		{"least loaded", map[string]float64{"10.0.0.1:1055": 0.5, "10.0.0.2:1055": 0.0418, "10.0.0.3:1055": 0.067}, "10.0.0.2:1055"},
		{"ties by address, byte-wise", map[string]float64{"10.0.0.2:1055": 0.25, "10.0.0.10:1055": 0.25, "10.0.0.3:1055": 0.1}, "10.0.0.3:1055"},
		{"all idle", map[string]float64{"b.example.com:1055": 0, "a.example.com:1055": 0}, "a.example.com:1055"},
		{"empty", map[string]float64{}, ""},
	} {
		if err := served(c.name, c.list, c.avoid); err != nil {
			return out, err
		}
	}
	for _, c := range []struct {
		name, body string
		list       map[string]float64
	}{
		{"integer loads, whitespace", "{ \"version\" : \"0.1.0\",\n  \"brokerList\" : { \"h1:1\" : 2, \"h2:1\" : 1 } }", map[string]float64{"h1:1": 2, "h2:1": 1}},
		{"unknown fields, other version, exponent", `{"brokerList":{"h1:1":1e-3,"h2:1":0.01},"version":"9.9.9","region":"eu"}`, map[string]float64{"h1:1": 0.001, "h2:1": 0.01}},
		{"no version", `{"brokerList":{"h:1":0.5}}`, map[string]float64{"h:1": 0.5}},
	} {
		out.Valid = append(out.Valid, validCase(c.name, c.body, c.list, ""))
	}
	out.Malformed = []conformance.BrokerListBad{
		{Name: "empty body", Body: "", Reason: "not JSON"},
		{Name: "html", Body: "<html>502 Bad Gateway</html>", Reason: "not JSON"},
		{Name: "truncated", Body: `{"version":"0.1.0","brokerList":{"h:1":0.5`, Reason: "not JSON"},
		{Name: "no brokerList", Body: `{"version":"0.1.0"}`, Reason: "no brokerList object"},
		{Name: "null brokerList", Body: `{"version":"0.1.0","brokerList":null}`, Reason: "no brokerList object"},
		{Name: "brokerList is an array", Body: `{"version":"0.1.0","brokerList":["h:1"]}`, Reason: "brokerList is not an object"},
		{Name: "top level array", Body: `[{"h:1":0.5}]`, Reason: "not an object"},
		{Name: "load is a string", Body: `{"version":"0.1.0","brokerList":{"h:1":"0.5"}}`, Reason: "a load is not a number"},
		{Name: "load is an object", Body: `{"version":"0.1.0","brokerList":{"h:1":{"load":0.5}}}`, Reason: "a load is not a number"},
	}
	return out, nil
}

// validCase orders list as a client must.
func validCase(name, body string, list map[string]float64, avoid string) conformance.BrokerListCase {
	order := make([]string, 0, len(list))
	for a := range list {
		order = append(order, a)
	}
	sort.Slice(order, func(i, j int) bool {
		if list[order[i]] != list[order[j]] {
			return list[order[i]] < list[order[j]]
		}
		return order[i] < order[j]
	})
	c := conformance.BrokerListCase{Name: name, Body: body, Order: order}
	if len(order) > 0 {
		c.Pick = order[0]
	}
	if avoid != "" {
		c.Avoid = avoid
		for _, a := range order {
			if a != avoid {
				c.OrderAvoiding = append(c.OrderAvoiding, a)
			}
		}
		c.OrderAvoiding = append(c.OrderAvoiding, avoid)
	}
	return c
}
