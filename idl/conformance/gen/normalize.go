package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/conformance"
	edgeapi "github.com/noonhq/noon/idl/gen/edge"
	roomapi "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/methods"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// pushTypes are the structs of the pushes the sessions see.
var pushTypes = map[string]func() thrift.TStruct{
	"room.Event":       func() thrift.TStruct { return roomapi.NewEvent() },
	wire.EventDraining: func() thrift.TStruct { return edgeapi.NewDraining() },
	wire.EventLoggedOut: func() thrift.TStruct {
		return edgeapi.NewLoggedOut()
	},
}

// varying names the fields whose values vary per run, by placeholder
// kind: a string field's value is replaced by {KIND_n} wherever its bytes
// appear; an i64 field's by {KIND_n} over its compact varint.
var varying = map[string]string{
	"session_id": "SESSION", "broker_id": "BROKER",
	"user_id": "USER", "player": "USER", "host": "USER", "winner": "USER",
	"session_token": "TOKEN", "resume_token": "TOKEN",
	"room_id":      "ROOM",
	"expires_unix": "TIME_S", "created_unix_ms": "TIME_MS", "time_unix_ms": "TIME_MS",
}

// varValue is one varying value found in a payload.
type varValue struct {
	kind   string
	bytes  []byte // as they appear on the wire
	varint bool
	n      int64 // the value of a varint
}

// normalize turns recorded connections into a Session: payloads decoded
// (by the method of the request a reply answers, or the push type), the
// varying values replaced by placeholders.
func normalize(name, setup string, conns []*recConn) (conformance.Session, error) {
	s := conformance.Session{Name: name, Setup: setup, Notes: sessionNotes}
	type step struct {
		rec  recorded
		json []byte
		what string
	}
	var all [][]step
	var found []varValue
	seen := map[string]bool{}
	note := func(v varValue) {
		k := string(v.bytes)
		if len(v.bytes) == 0 || seen[k] {
			return
		}
		seen[k] = true
		found = append(found, v)
	}
	for _, c := range conns {
		var steps []step
		var pending []string
		for _, f := range c.frames {
			st := step{rec: f}
			var newT func() thrift.TStruct
			switch {
			case f.dir == conformance.DirSend:
				label := f.first
				if label == "" {
					label = "(empty method)"
				}
				pending = append(pending, label)
				st.what = label + " request"
				if m, ok := methods.Lookup(f.first); ok {
					newT = m.NewReq
				}
			case strings.HasPrefix(f.first, "@"):
				st.what = "push " + f.first
				newT = pushTypes[f.first[1:]]
			default:
				if len(pending) == 0 {
					return s, fmt.Errorf("a reply to no request")
				}
				method := pending[0]
				pending = pending[1:]
				if f.first != "" {
					st.what = method + " error reply"
				} else {
					st.what = method + " reply"
					if m, ok := methods.Lookup(method); ok {
						newT = m.NewReply
					}
				}
			}
			if newT != nil && len(f.body) > 0 {
				v := newT()
				if err := thriftx.Unmarshal(f.body, v); err != nil {
					return s, fmt.Errorf("%s: %w", st.what, err)
				}
				collect(reflect.ValueOf(v), "", note)
				j, err := conformance.ToJSON(v)
				if err != nil {
					return s, err
				}
				st.json = j
			} else if newT == nil && f.first == "echo.Echo" || strings.HasPrefix(st.what, "echo.Echo reply") {
				st.json, _ = json.Marshal(string(f.body))
			}
			steps = append(steps, st)
		}
		all = append(all, steps)
	}
	// Name the placeholders in order of first appearance, per kind.
	count := map[string]int{}
	names := make([]string, len(found))
	for i, v := range found {
		if v.varint {
			// Times are wildcards: two of them may be equal by chance
			// in one run and not in the next, so none is numbered.
			names[i] = v.kind
			if count[v.kind] > 0 {
				continue
			}
			count[v.kind]++
		} else {
			count[v.kind]++
			names[i] = fmt.Sprintf("%s_%d", v.kind, count[v.kind])
		}
		s.Placeholders = append(s.Placeholders, conformance.Placeholder{Name: names[i], Len: len(v.bytes), Description: descriptions[v.kind], Wildcard: v.varint})
	}
	// Replace longer values first, so a value inside another is not cut.
	order := make([]int, len(found))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(found[order[a]].bytes) > len(found[order[b]].bytes) })
	for ci, steps := range all {
		conn := conformance.Connection{Broker: conns[ci].broker}
		for _, st := range steps {
			h := placehold(st.rec.raw, found, names, order)
			n := st.what
			if st.json != nil {
				n += ": " + placeholdJSON(string(st.json), found, names, order)
			}
			if st.rec.first != "" && st.rec.dir == conformance.DirRecv && !strings.HasPrefix(st.rec.first, "@") {
				n += ": " + st.rec.first
			}
			conn.Steps = append(conn.Steps, conformance.Step{Dir: st.rec.dir, Hex: h, Note: n})
		}
		s.Connections = append(s.Connections, conn)
	}
	return s, nil
}

// sessionNotes are the Notes of every session.
var sessionNotes = []string{
	"Recorded from a real platform (yellow, echo, login, room, the BrokerList and two brokers, in one process) through a recording TCP proxy in front of each broker, driven by the Go client.",
	"connections are opened in order, each to its broker; the steps of a connection run in order. send: a frame the client sends; recv: a frame the broker sends. hex is the whole frame, TotalLen included.",
	"{NAME} in a hex string stands for exactly len bytes (placeholders); the lengths around it (TotalLen, the Thrift string length) count those bytes. A fake broker replaying a session makes up a value of len bytes for a name the first time it sends it (for a wildcard, any compact varint of len bytes, e.g. 80 .. 80 01), sends the same value wherever the name appears again, and checks that the client sends it back where a send step has it (the resume token); wildcards match any len bytes.",
	"A push (first string \"@...\") may arrive between any two replies; a client must not take it for a reply. Replies come in request order.",
	"A connection followed by one to another broker: that broker hung up (the client lost it); the client reconnects to the other broker by itself and resumes the session with the token of its login (edge.Hello with resume_token).",
}

var descriptions = map[string]string{
	"SESSION": "a connection's session id (HelloReply.session_id), random per broker start and numbered per connection (its length may differ in another run).",
	"BROKER":  "the broker's instance id (HelloReply.broker_id), random per broker start.",
	"USER":    "a user id, made at login.Register; the same placeholder is the same user throughout the session.",
	"TOKEN":   "a session token, made at login.Login (LoginReply.session_token); a resume sends it back (HelloRequest.resume_token).",
	"ROOM":    "a room id, made at room.Create.",
	"TIME_S":  "a time in unix seconds (LoginReply.expires_unix), as the compact protocol's zigzag varint of the i64; a wildcard: each {TIME_S} may be another value.",
	"TIME_MS": "a time in unix milliseconds (created_unix_ms, time_unix_ms), as the compact protocol's zigzag varint of the i64; a wildcard: each {TIME_MS} may be another value.",
}

// collect calls note with every varying value in v (a generated struct).
func collect(v reflect.Value, field string, note func(varValue)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			collect(v.Elem(), field, note)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			tag, ok := v.Type().Field(i).Tag.Lookup("thrift")
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			collect(v.Field(i), name, note)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := range v.Len() {
			collect(v.Index(i), field, note)
		}
	case reflect.String:
		if k, ok := varying[field]; ok {
			note(varValue{kind: k, bytes: []byte(v.String())})
		}
	case reflect.Int64:
		if k, ok := varying[field]; ok && v.Int() != 0 {
			note(varValue{kind: k, bytes: varint(v.Int()), varint: true, n: v.Int()})
		}
	}
}

// varint is n as the compact protocol writes an i64.
func varint(n int64) []byte {
	u := uint64((n << 1) ^ (n >> 63))
	var b []byte
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

// placehold returns raw as hex with every found value replaced by its
// {NAME}.
func placehold(raw []byte, found []varValue, names []string, order []int) string {
	mask := make([]int, len(raw)) // 1 + index into found, at the start of a match
	taken := make([]bool, len(raw))
	for _, i := range order {
		v := found[i].bytes
		for off := 0; off+len(v) <= len(raw); {
			j := bytes.Index(raw[off:], v)
			if j < 0 {
				break
			}
			at := off + j
			free := true
			for k := at; k < at+len(v); k++ {
				free = free && !taken[k]
			}
			if free {
				mask[at] = i + 1
				for k := at; k < at+len(v); k++ {
					taken[k] = true
				}
			}
			off = at + 1
		}
	}
	var b strings.Builder
	for k := 0; k < len(raw); {
		if i := mask[k]; i > 0 {
			b.WriteString("{" + names[i-1] + "}")
			k += len(found[i-1].bytes)
			continue
		}
		fmt.Fprintf(&b, "%02x", raw[k])
		k++
	}
	return b.String()
}

// placeholdJSON replaces the found values in a note's JSON.
func placeholdJSON(j string, found []varValue, names []string, order []int) string {
	for _, i := range order {
		v := found[i]
		if v.varint {
			for _, end := range []string{",", "}"} {
				j = strings.ReplaceAll(j, fmt.Sprintf(":%d%s", v.n, end), `:"{`+names[i]+`}"`+end)
			}
			continue
		}
		q, _ := json.Marshal(string(v.bytes))
		j = strings.ReplaceAll(j, string(q), `"{`+names[i]+`}"`)
	}
	return j
}
