// Package methods is the catalogue of client-callable methods: for each, the
// Thrift request and reply structs (nil for raw bytes). noonctl uses it to
// translate JSON to and from the wire; documentation and tests use it to
// list the API.
package methods

import (
	"sort"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/wire"
)

// Method describes one method's payloads (wire.Method).
type Method = wire.Method

var catalogue = map[string]Method{}

// Register adds m to the catalogue; services with their own IDL call it from
// an init function.
func Register(m Method) { catalogue[m.Name] = m }

func init() {
	for _, m := range []Method{
		{Name: "edge.Hello", NewReq: func() thrift.TStruct { return edge.NewHelloRequest() }, NewReply: func() thrift.TStruct { return edge.NewHelloReply() }},
		{Name: "echo.Echo", NewReq: nil, NewReply: nil},
		{Name: "echo.Sleep", NewReq: func() thrift.TStruct { return echo.NewSleepRequest() }, NewReply: func() thrift.TStruct { return echo.NewSleepReply() }},
		{Name: "echo.Fail", NewReq: func() thrift.TStruct { return echo.NewFailRequest() }, NewReply: func() thrift.TStruct { return echo.NewSleepReply() }},
		{Name: "login.Register", NewReq: func() thrift.TStruct { return login.NewRegisterRequest() }, NewReply: func() thrift.TStruct { return login.NewRegisterReply() }},
		{Name: "login.Login", NewReq: func() thrift.TStruct { return login.NewLoginRequest() }, NewReply: func() thrift.TStruct { return login.NewLoginReply() }},
		{Name: "login.Validate", NewReq: func() thrift.TStruct { return login.NewValidateRequest() }, NewReply: func() thrift.TStruct { return login.NewValidateReply() }},
		{Name: "login.Logout", NewReq: func() thrift.TStruct { return login.NewLogoutRequest() }, NewReply: func() thrift.TStruct { return login.NewLogoutReply() }},
		{Name: "room.Create", NewReq: func() thrift.TStruct { return room.NewCreateRequest() }, NewReply: func() thrift.TStruct { return room.NewRoomState() }},
		{Name: "room.Join", NewReq: func() thrift.TStruct { return room.NewJoinRequest() }, NewReply: func() thrift.TStruct { return room.NewRoomState() }},
		{Name: "room.Leave", NewReq: func() thrift.TStruct { return room.NewLeaveRequest() }, NewReply: func() thrift.TStruct { return room.NewLeaveReply() }},
		{Name: "room.Ready", NewReq: func() thrift.TStruct { return room.NewReadyRequest() }, NewReply: func() thrift.TStruct { return room.NewRoomState() }},
		{Name: "room.Start", NewReq: func() thrift.TStruct { return room.NewStartRequest() }, NewReply: func() thrift.TStruct { return room.NewRoomState() }},
		{Name: "room.List", NewReq: func() thrift.TStruct { return room.NewListRequest() }, NewReply: func() thrift.TStruct { return room.NewListReply() }},
		{Name: "room.Get", NewReq: func() thrift.TStruct { return room.NewGetRequest() }, NewReply: func() thrift.TStruct { return room.NewRoomState() }},
		{Name: "room.Act", NewReq: func() thrift.TStruct { return room.NewActionRequest() }, NewReply: func() thrift.TStruct { return room.NewActionReply() }},
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
