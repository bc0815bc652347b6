// Package archtest holds no code, only a test of the module's import rules
// (what may import what), run with the go command:
//
//   - nothing under internal/ imports a daemon package (broker, yellow,
//     edge/..., services/..., cmd/...);
//   - the broker does not import the service runtime (services): it depends
//     on the client-side router;
//   - no service (services/<name>/...) imports another service's packages,
//     and a service imports of the module only the runtime, wire, idl/...,
//     internal/... and yellow;
//   - wire, at the bottom of the graph, imports of the module only
//     idl/gen/platformpb and internal/thriftx.
//
// Only what the packages themselves import counts, not their tests: a
// broker test may well start a service.
package archtest
