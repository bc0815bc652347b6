package yellow

import (
	"math"
	"slices"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/wire"
)

// Limits on one instance record. Yellow holds every record in memory and
// sends all of them in a snapshot, so each field is bounded well above any
// honest use and far below what would make a snapshot unwieldy.
const (
	// MaxServiceNameLen bounds a service name: names are short words
	// ("login", "room") that also appear in method names and metric labels.
	MaxServiceNameLen = wire.MaxNameLen
	// MaxIDLen bounds an instance id: room for a hostname plus a pid, a
	// pod name or a UUID, with margin.
	MaxIDLen = 128
	// MaxVersionLen bounds the version label: a semver or a git describe.
	MaxVersionLen = 64
	// MaxEndpointLen bounds an endpoint: "tcp://" + a 253-byte DNS name +
	// ":65535".
	MaxEndpointLen = wire.MaxEndpointLen
	// MaxCapacity bounds capacity (concurrent requests of one instance): a
	// million is beyond any one process and keeps load arithmetic exact.
	MaxCapacity = 1_000_000
	// MaxLoad bounds load. Load is nominally in [0,1] but a broker may
	// report its own measure (connections); a million covers that while
	// rejecting garbage such as Inf.
	MaxLoad = 1e6
	// MaxMetaEntries bounds the meta labels: they are a few free-form tags
	// (zone, build), not a data store.
	MaxMetaEntries = 16
	// MaxMetaKeyLen bounds a meta key, like a Prometheus label name.
	MaxMetaKeyLen = 64
	// MaxMetaValueLen bounds a meta value: a short label, not a document.
	MaxMetaValueLen = 256
)

// ValidateServiceName checks a service name against wire.NameRule.
func ValidateServiceName(s string) error {
	if err := wire.ValidateName(s); err != nil {
		return fieldErr("service", "%v", err)
	}
	return nil
}

// ValidateID checks an instance id: 1..MaxIDLen bytes of printable,
// non-space UTF-8.
func ValidateID(id string) error {
	switch {
	case id == "":
		return fieldErr("id", "required")
	case len(id) > MaxIDLen:
		return fieldErr("id", "at most %d bytes, got %d", MaxIDLen, len(id))
	case !printableNoSpace(id):
		return fieldErr("id", "must be printable with no spaces, got %q", wire.Snippet(id))
	}
	return nil
}

func printableNoSpace(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// validateEndpoint checks a ZeroMQ endpoint another process will dial
// (wire.ValidateDialEndpoint); field names the field in the error.
func validateEndpoint(field, ep string) error {
	if err := wire.ValidateDialEndpoint(ep); err != nil {
		return fieldErr(field, "%v", err)
	}
	return nil
}

func validateLoad(l float64) error {
	if math.IsNaN(l) || math.IsInf(l, 0) || l < 0 || l > MaxLoad {
		return fieldErr("load", "must be a finite number in [0, %d], got %v", int(MaxLoad), l)
	}
	return nil
}

func validateState(s platformpb.InstanceState) error {
	if s != platformpb.InstanceState_INSTANCE_STATE_READY && s != platformpb.InstanceState_INSTANCE_STATE_DRAINING {
		return fieldErr("state", "must be READY or DRAINING, got %s", s)
	}
	return nil
}

// ValidateInstance checks every rule on a full registration record and
// returns a *FieldError naming the first field that breaks one. maxBytes
// bounds the record's encoded size (0 means DefaultMaxRecordBytes).
func ValidateInstance(inst *platformpb.Instance, maxBytes int) error {
	if inst == nil {
		return fieldErr("instance", "required")
	}
	if err := ValidateServiceName(inst.GetService()); err != nil {
		return err
	}
	if err := ValidateID(inst.GetId()); err != nil {
		return err
	}
	if err := validateEndpoint("router", inst.GetRouter()); err != nil {
		return err
	}
	if inst.GetPub() != "" {
		if err := validateEndpoint("pub", inst.GetPub()); err != nil {
			return err
		}
	}
	switch k := inst.GetKind(); k {
	case platformpb.ServiceKind_SERVICE_KIND_STATELESS, platformpb.ServiceKind_SERVICE_KIND_STATEFUL, platformpb.ServiceKind_SERVICE_KIND_BROKER:
	case platformpb.ServiceKind_SERVICE_KIND_UNSPECIFIED:
		return fieldErr("kind", "must be set")
	default:
		return fieldErr("kind", "unknown value %d", int32(k))
	}
	if v := inst.GetVersion(); len(v) > MaxVersionLen {
		return fieldErr("version", "at most %d bytes, got %d", MaxVersionLen, len(v))
	} else if v != "" && !printableNoSpace(v) {
		return fieldErr("version", "must be printable with no spaces, got %q", wire.Snippet(v))
	}
	if c := inst.GetCapacity(); c > MaxCapacity {
		return fieldErr("capacity", "at most %d, got %d", MaxCapacity, c)
	}
	if err := validateLoad(inst.GetLoad()); err != nil {
		return err
	}
	if err := validateState(inst.GetState()); err != nil {
		return err
	}
	if a := inst.GetClientAddr(); a != "" {
		if err := wire.ValidateDialAddr(a); err != nil {
			return fieldErr("client_addr", "%v", err)
		}
	}
	if err := validateMeta(inst.GetMeta()); err != nil {
		return err
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRecordBytes
	}
	if n := proto.Size(inst); n > maxBytes {
		return fieldErr("instance", "encoded size %d bytes, at most %d", n, maxBytes)
	}
	return nil
}

func validateMeta(m map[string]string) error {
	if len(m) > MaxMetaEntries {
		return fieldErr("meta", "at most %d entries, got %d", MaxMetaEntries, len(m))
	}
	// Sorted so that the error names the same key every time.
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" || len(k) > MaxMetaKeyLen {
			return fieldErr("meta", "key %q must be 1..%d bytes", wire.Snippet(k), MaxMetaKeyLen)
		}
		if v := m[k]; len(v) > MaxMetaValueLen {
			return fieldErr("meta", "value of %q is %d bytes, at most %d", k, len(v), MaxMetaValueLen)
		}
	}
	return nil
}

// validateHeartbeat checks what a HEARTBEAT must carry: service, id, a
// valid load, a state that is unset (keep) or READY / DRAINING, and meta
// that is empty (keep) or within the bounds of a registration's (the
// record's encoded size with it is checked against the registry's bound
// when it is applied).
func validateHeartbeat(inst *platformpb.Instance) error {
	if inst == nil {
		return fieldErr("instance", "required")
	}
	if err := ValidateServiceName(inst.GetService()); err != nil {
		return err
	}
	if err := ValidateID(inst.GetId()); err != nil {
		return err
	}
	if err := validateLoad(inst.GetLoad()); err != nil {
		return err
	}
	if s := inst.GetState(); s != platformpb.InstanceState_INSTANCE_STATE_UNSPECIFIED {
		if err := validateState(s); err != nil {
			return err
		}
	}
	return validateMeta(inst.GetMeta())
}
