package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// ApplyEnv sets fields of dst (a pointer to a struct) from the environment
// variables in environ (as os.Environ returns them: "NAME=value"). A field's
// variable is prefix, then the yaml names on its path, upper-cased and joined
// with "_" (dashes and dots also become "_"): with prefix "NOON", the field at
// broker.max_frame is NOON_BROKER_MAX_FRAME and yellow.heartbeat is
// NOON_YELLOW_HEARTBEAT. An empty prefix leaves the leading part out.
//
// Only fields set from one piece of text have a variable (see the package
// doc: scalars, durations, sizes, text unmarshalers, and comma-separated
// slices of those). Slices of structs and maps have none and are skipped; set
// them in the file or with [Set], which takes YAML for them. Variables under
// the prefix that name no field are ignored, since other tools share the
// prefix (NOON_TEST_POSTGRES). If two fields map to the same variable, setting
// it is an error.
//
// A variable set to the empty string sets a string to "" and a list to
// empty; for other types it is a bad value. A bad value is an error naming
// the variable and the field path, e.g.
//
//	config: env NOON_BROKER_MAX_FRAME (broker.max_frame): invalid byte size "2XB": unknown unit "XB" ...
//
// All bad variables are reported, joined; the good ones are still applied.
func ApplyEnv(prefix string, dst any, environ []string) error {
	root, err := target(dst)
	if err != nil {
		return err
	}
	vars := map[string][]string{} // variable -> dotted paths
	collectEnv(root, envName(prefix), "", vars, map[reflect.Type]bool{})

	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v // a later duplicate wins, as in os.Getenv
		}
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		val, ok := env[name]
		if !ok {
			continue
		}
		paths := vars[name]
		if len(paths) > 1 {
			errs = append(errs, fmt.Errorf("config: env %s is ambiguous: it names %s", name, strings.Join(paths, " and ")))
			continue
		}
		if err := setPath(root, strings.Split(paths[0], "."), val); err != nil {
			errs = append(errs, fmt.Errorf("config: env %s (%s): %w", name, paths[0], err))
		}
	}
	return errors.Join(errs...)
}

// EnvNames lists the environment variables [ApplyEnv] reads for dst under
// prefix, mapped to the dotted field path each one sets; for help output and
// docs.
func EnvNames(prefix string, dst any) (map[string]string, error) {
	root, err := target(dst)
	if err != nil {
		return nil, err
	}
	vars := map[string][]string{}
	collectEnv(root, envName(prefix), "", vars, map[reflect.Type]bool{})
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		out[k] = strings.Join(v, " ")
	}
	return out, nil
}

// collectEnv adds the variables of the leaves under v to vars; name and
// path are those of v itself. The walk follows v's type; v's value is only
// read where the keys depend on it ([Sections]), and may be a zero Value
// (under a nil pointer), which then has none. onStack guards against
// recursive types.
func collectEnv(v reflect.Value, name, path string, vars map[string][]string, onStack map[reflect.Type]bool) {
	t := v.Type()
	if isLeaf(t) {
		if path != "" {
			vars[name] = append(vars[name], path)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
		if v.IsValid() && !v.IsNil() {
			v = v.Elem()
		} else {
			v = reflect.Zero(t)
		}
	}
	if secs, ok := sectionsOf(v); ok {
		for _, key := range slices.Sorted(maps.Keys(secs.ConfigSections())) {
			if sec, ok := section(secs, key); ok {
				collectEnv(sec, joinEnv(name, key), joinPath(path, key), vars, onStack)
			}
		}
		return
	}
	if t.Kind() != reflect.Struct || onStack[t] {
		return // slices of structs, maps, interfaces: not from the environment
	}
	onStack[t] = true
	defer delete(onStack, t)
	for _, f := range structFields(t) {
		fv := v.Field(f.index)
		if f.inline {
			collectEnv(fv, name, path, vars, onStack)
			continue
		}
		collectEnv(fv, joinEnv(name, f.name), joinPath(path, f.name), vars, onStack)
	}
}

// joinEnv appends the variable part of yaml name key to name.
func joinEnv(name, key string) string {
	if name == "" {
		return envName(key)
	}
	return name + "_" + envName(key)
}

// envName upper-cases s and turns dashes and dots into underscores.
func envName(s string) string {
	return strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(s))
}
