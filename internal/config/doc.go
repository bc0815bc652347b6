// Package config holds the generic mechanics of noon's configuration: strict
// YAML loading, environment and -set overrides, a byte-size type, and
// validation helpers. It knows no daemon; each daemon package exports its own
// Options struct with `yaml:"snake_case"` tags and the top-level config file
// struct of cmd/noon composes them.
//
// Precedence, lowest to highest (STYLE.md, Config):
//
//	defaults (filled in by the caller) < file < environment < -set < explicit flags
//
// [Load] applies the first four layers; the caller then applies the flags it
// parsed explicitly and runs [Validate].
//
// Names follow the yaml tags of the struct: a field tagged `yaml:"max_frame"`
// inside a field tagged `yaml:"broker"` has the path "broker.max_frame" (for
// [Set] and error messages) and, with prefix "NOON", the environment variable
// NOON_BROKER_MAX_FRAME. A field without a yaml tag uses its lower-cased Go
// name, as go.yaml.in/yaml/v3 does; `yaml:"-"` hides a field from all of it,
// and `yaml:",inline"` structs add no name of their own.
//
// A section whose keys are known only at run time (cmd/noon's services: one
// key per service module, each its own options struct) implements
// [Sections]; its entries are then addressed like struct fields:
// "services.login.session_ttl", NOON_SERVICES_LOGIN_SESSION_TTL.
//
// Values given as text (environment, -set) are converted the same way for
// every source: string; bool (strconv.ParseBool, plus yes/no/on/off); signed
// and unsigned integers (decimal, or 0x / 0o / 0b prefixed) with range checks;
// floats; [time.Duration] in Go syntax ("1s", "250ms"); [ByteSize] ("64KiB",
// "2MB", "1048576"); any type implementing [encoding.TextUnmarshaler]; and
// slices of those, written comma-separated ("a, b, c"; empty text is an empty
// slice). Pointers to those types are allocated on first set.
package config
