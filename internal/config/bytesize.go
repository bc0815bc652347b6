package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a size in bytes. In YAML, environment variables and flags it is
// written as a plain integer (1048576) or as a number with a unit: binary
// units KiB, MiB, GiB, TiB, PiB, EiB (powers of 1024; the bare K, M, G, T, P, E
// mean the same), decimal units KB, MB, GB, TB, PB, EB (powers of 1000), or B.
// Units are case-insensitive, a space may separate number and unit, and a
// fraction is allowed when the result is a whole number of bytes ("1.5KiB" is
// 1536). Negative sizes and sizes over math.MaxInt64 are rejected.
//
// *ByteSize implements [flag.Value], [encoding.TextUnmarshaler] and
// [yaml.Unmarshaler]; ByteSize implements [fmt.Stringer] and
// [encoding.TextMarshaler], so a value round-trips through its String form.
type ByteSize int64

// Byte-size units.
const (
	Byte ByteSize = 1
	KiB           = 1024 * Byte
	MiB           = 1024 * KiB
	GiB           = 1024 * MiB
	TiB           = 1024 * GiB
	PiB           = 1024 * TiB
	EiB           = 1024 * PiB
	KB            = 1000 * Byte
	MB            = 1000 * KB
	GB            = 1000 * MB
	TB            = 1000 * GB
	PB            = 1000 * TB
	EB            = 1000 * PB
)

// byteUnits maps a lower-cased unit to its size.
var byteUnits = map[string]ByteSize{
	"": Byte, "b": Byte,
	"k": KiB, "kib": KiB, "kb": KB,
	"m": MiB, "mib": MiB, "mb": MB,
	"g": GiB, "gib": GiB, "gb": GB,
	"t": TiB, "tib": TiB, "tb": TB,
	"p": PiB, "pib": PiB, "pb": PB,
	"e": EiB, "eib": EiB, "eb": EB,
}

// formatUnits is the order String tries units in: binary first, then decimal,
// largest first.
var formatUnits = []struct {
	size ByteSize
	name string
}{
	{EiB, "EiB"}, {PiB, "PiB"}, {TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"},
	{EB, "EB"}, {PB, "PB"}, {TB, "TB"}, {GB, "GB"}, {MB, "MB"}, {KB, "KB"},
}

// maxByteSizeText bounds the text ParseByteSize looks at; no valid size is
// anywhere near this long, and it keeps big-number arithmetic cheap.
const maxByteSizeText = 64

// ParseByteSize parses a byte size such as "1048576", "64KiB", "2MB" or
// "1.5 GiB". See [ByteSize] for the syntax.
func ParseByteSize(s string) (ByteSize, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("invalid byte size: empty")
	}
	if len(s) > maxByteSizeText {
		return 0, fmt.Errorf("invalid byte size %.20q...: too long", orig)
	}
	if s[0] == '-' {
		return 0, fmt.Errorf("invalid byte size %q: negative", orig)
	}
	// Split the number (digits, optional fraction) from the unit.
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[:i]
	fracPart := ""
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		fracPart = s[i+1 : j]
		i = j
	}
	if intPart == "" && fracPart == "" {
		return 0, fmt.Errorf("invalid byte size %q: want a number with an optional unit, e.g. 64KiB", orig)
	}
	unitText := strings.TrimSpace(s[i:])
	unit, ok := byteUnits[strings.ToLower(unitText)]
	if !ok {
		return 0, fmt.Errorf("invalid byte size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", orig, unitText)
	}

	// value = (intPart + fracPart/10^len(fracPart)) * unit, exactly.
	num, ok := new(big.Int).SetString(intPart+fracPart, 10)
	if !ok { // intPart+fracPart is non-empty and all digits
		return 0, fmt.Errorf("invalid byte size %q", orig)
	}
	num.Mul(num, big.NewInt(int64(unit)))
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(fracPart))), nil)
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Sign() != 0 {
		return 0, fmt.Errorf("invalid byte size %q: not a whole number of bytes", orig)
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("invalid byte size %q: over the maximum of %d bytes", orig, int64(math.MaxInt64))
	}
	return ByteSize(q.Int64()), nil
}

// String formats b with the largest unit that divides it exactly, preferring
// binary units: 1048576 is "1MiB", 2000000 is "2MB", 1500 is "1500B", 0 is "0".
func (b ByteSize) String() string {
	if b == 0 {
		return "0"
	}
	for _, u := range formatUnits {
		if b%u.size == 0 {
			return fmt.Sprintf("%d%s", int64(b/u.size), u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}

// Set parses s into b; it makes *ByteSize a [flag.Value].
func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText implements [encoding.TextMarshaler] with the String form.
func (b ByteSize) MarshalText() ([]byte, error) {
	return []byte(b.String()), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with [ParseByteSize].
func (b *ByteSize) UnmarshalText(text []byte) error {
	return b.Set(string(text))
}

// UnmarshalYAML implements [yaml.Unmarshaler]: it accepts an integer or a
// string scalar, and reports a bad value with its line like the decoder's own
// type errors do.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal a YAML %s into config.ByteSize", n.Line, kindName(n.Kind))}}
	}
	if err := b.Set(n.Value); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	return nil
}

// kindName names a YAML node kind for error messages.
func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.AliasNode:
		return "alias"
	case yaml.DocumentNode:
		return "document"
	default:
		return "scalar"
	}
}
