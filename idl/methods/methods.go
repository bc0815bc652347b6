// Package methods is the catalogue of client-callable methods: for each, the
// Thrift request and reply structs (nil for raw bytes). noonctl uses it to
// translate JSON to and from the wire; documentation and tests use it to
// list the API.
package methods

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/thriftx"
)

// Method describes one method's payloads. A nil constructor means the
// payload is raw bytes (echo.Echo), written in JSON as a string.
type Method struct {
	Name     string
	NewReq   func() thrift.TStruct
	NewReply func() thrift.TStruct
}

var catalogue = map[string]Method{}

// Register adds m to the catalogue; services with their own IDL call it from
// an init function.
func Register(m Method) { catalogue[m.Name] = m }

func init() {
	for _, m := range []Method{
		{"edge.Hello", func() thrift.TStruct { return edge.NewHelloRequest() }, func() thrift.TStruct { return edge.NewHelloReply() }},
		{"echo.Echo", nil, nil},
		{"echo.Sleep", func() thrift.TStruct { return echo.NewSleepRequest() }, func() thrift.TStruct { return echo.NewSleepReply() }},
		{"echo.Fail", func() thrift.TStruct { return echo.NewFailRequest() }, func() thrift.TStruct { return echo.NewSleepReply() }},
		{"login.Register", func() thrift.TStruct { return login.NewRegisterRequest() }, func() thrift.TStruct { return login.NewRegisterReply() }},
		{"login.Login", func() thrift.TStruct { return login.NewLoginRequest() }, func() thrift.TStruct { return login.NewLoginReply() }},
		{"login.Validate", func() thrift.TStruct { return login.NewValidateRequest() }, func() thrift.TStruct { return login.NewValidateReply() }},
		{"login.Logout", func() thrift.TStruct { return login.NewLogoutRequest() }, func() thrift.TStruct { return login.NewLogoutReply() }},
		{"room.Create", func() thrift.TStruct { return room.NewCreateRequest() }, func() thrift.TStruct { return room.NewRoomState() }},
		{"room.Join", func() thrift.TStruct { return room.NewJoinRequest() }, func() thrift.TStruct { return room.NewRoomState() }},
		{"room.Leave", func() thrift.TStruct { return room.NewLeaveRequest() }, func() thrift.TStruct { return room.NewLeaveReply() }},
		{"room.Ready", func() thrift.TStruct { return room.NewReadyRequest() }, func() thrift.TStruct { return room.NewRoomState() }},
		{"room.Start", func() thrift.TStruct { return room.NewStartRequest() }, func() thrift.TStruct { return room.NewRoomState() }},
		{"room.List", func() thrift.TStruct { return room.NewListRequest() }, func() thrift.TStruct { return room.NewListReply() }},
		{"room.Get", func() thrift.TStruct { return room.NewGetRequest() }, func() thrift.TStruct { return room.NewRoomState() }},
		{"room.Act", func() thrift.TStruct { return room.NewActionRequest() }, func() thrift.TStruct { return room.NewActionReply() }},
	} {
		Register(m)
	}
}

// Lookup returns the named method.
func Lookup(name string) (Method, bool) {
	m, ok := catalogue[name]
	return m, ok
}

// Names lists every method, sorted.
func Names() []string {
	out := make([]string, 0, len(catalogue))
	for n := range catalogue {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// EncodeJSON turns a JSON request body into the method's wire payload.
func (m Method) EncodeJSON(body []byte) ([]byte, error) {
	if m.NewReq == nil {
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, fmt.Errorf("%s takes raw bytes: give a JSON string: %w", m.Name, err)
		}
		return []byte(s), nil
	}
	req := m.NewReq()
	if len(body) > 0 {
		if err := json.Unmarshal(body, req); err != nil {
			return nil, fmt.Errorf("%s: request JSON: %w", m.Name, err)
		}
	}
	return thriftx.Marshal(req)
}

// DecodeJSON turns the method's wire reply payload into JSON.
func (m Method) DecodeJSON(payload []byte) ([]byte, error) {
	if m.NewReply == nil {
		return json.Marshal(string(payload))
	}
	rep := m.NewReply()
	if err := thriftx.Unmarshal(payload, rep); err != nil {
		return nil, fmt.Errorf("%s: reply: %w", m.Name, err)
	}
	return json.Marshal(rep)
}
