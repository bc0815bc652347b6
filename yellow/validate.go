package yellow

import (
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// Limits on one instance record. Yellow holds every record in memory and
// sends all of them in a snapshot, so each field is bounded well above any
// honest use and far below what would make a snapshot unwieldy.
const (
	// MaxServiceNameLen bounds a service name: names are short words
	// ("login", "room") that also appear in method names and metric labels.
	MaxServiceNameLen = 64
	// MaxIDLen bounds an instance id: room for a hostname plus a pid, a
	// pod name or a UUID, with margin.
	MaxIDLen = 128
	// MaxVersionLen bounds the version label: a semver or a git describe.
	MaxVersionLen = 64
	// MaxEndpointLen bounds an endpoint: "tcp://" + a 253-byte DNS name +
	// ":65535".
	MaxEndpointLen = 6 + 253 + 6
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

const serviceRule = "[a-z][a-z0-9_-]{0,63}"

// ValidateServiceName checks a service name against [a-z][a-z0-9_-]{0,63}.
func ValidateServiceName(s string) error {
	if s == "" {
		return fieldErr("service", "required")
	}
	if !validServiceName(s) {
		return fieldErr("service", "must match %s, got %q", serviceRule, snippet(s))
	}
	return nil
}

func validServiceName(s string) bool {
	if len(s) == 0 || len(s) > MaxServiceNameLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
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
		return fieldErr("id", "must be printable with no spaces, got %q", snippet(id))
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

// ValidateEndpoint checks a ZeroMQ endpoint another process will dial:
// "tcp://host:port" with port 1..65535 and a host that is not a wildcard
// ("*", 0.0.0.0, ::). field names the field in the error.
func ValidateEndpoint(field, ep string) error {
	if ep == "" {
		return fieldErr(field, "required")
	}
	if len(ep) > MaxEndpointLen {
		return fieldErr(field, "at most %d bytes, got %d", MaxEndpointLen, len(ep))
	}
	rest, ok := strings.CutPrefix(ep, "tcp://")
	if !ok {
		return fieldErr(field, "must be tcp://host:port, got %q", snippet(ep))
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil || host == "" {
		return fieldErr(field, "must be tcp://host:port, got %q", snippet(ep))
	}
	if isWildcard(host) {
		return fieldErr(field, "host must not be a wildcard, got %q", snippet(ep))
	}
	if !validHost(host) {
		return fieldErr(field, "bad host, got %q", snippet(ep))
	}
	if !validPort(port) {
		return fieldErr(field, "port must be 1..65535, got %q", snippet(ep))
	}
	return nil
}

// validateHostPort checks client_addr: "host:port", port 1..65535.
func validateHostPort(field, addr string) error {
	if len(addr) > MaxEndpointLen {
		return fieldErr(field, "at most %d bytes, got %d", MaxEndpointLen, len(addr))
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || !validHost(host) {
		return fieldErr(field, "must be host:port, got %q", snippet(addr))
	}
	if !validPort(port) {
		return fieldErr(field, "port must be 1..65535, got %q", snippet(addr))
	}
	return nil
}

func isWildcard(host string) bool {
	if host == "*" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// ValidHost reports whether host is a host another process can dial: an
// IP address or a DNS-style name, not a wildcard ("*", 0.0.0.0, ::).
func ValidHost(host string) bool { return !isWildcard(host) && validHost(host) }

// validHost accepts an IP address or a DNS-style name.
func validHost(host string) bool {
	if net.ParseIP(host) != nil {
		return true
	}
	if len(host) > 253 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
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
	if err := ValidateEndpoint("router", inst.GetRouter()); err != nil {
		return err
	}
	if inst.GetPub() != "" {
		if err := ValidateEndpoint("pub", inst.GetPub()); err != nil {
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
		return fieldErr("version", "must be printable with no spaces, got %q", snippet(v))
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
		if err := validateHostPort("client_addr", a); err != nil {
			return err
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
			return fieldErr("meta", "key %q must be 1..%d bytes", snippet(k), MaxMetaKeyLen)
		}
		if v := m[k]; len(v) > MaxMetaValueLen {
			return fieldErr("meta", "value of %q is %d bytes, at most %d", k, len(v), MaxMetaValueLen)
		}
	}
	return nil
}

// validateHeartbeat checks what a HEARTBEAT must carry: service, id, a
// valid load and a state that is unset (keep) or READY / DRAINING.
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
		return validateState(s)
	}
	return nil
}

func cutTCP(ep string) (string, bool) { return strings.CutPrefix(ep, "tcp://") }

func splitHostPort(s string) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(s)
	return host, port, err == nil
}
