package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadFile decodes the YAML file at path into dst, a pointer to a struct that
// already holds the defaults; keys the file leaves out keep them. Decoding is
// strict: an unknown key, a duplicate key, a value of the wrong type or a
// second YAML document is an error. Durations are strings in Go syntax
// ("1s", "250ms"; a bare number is rejected); sizes are [ByteSize]. An empty
// file (or one with only comments) changes nothing.
//
// Errors name the file, the line and the dotted key, one per line, e.g.
//
//	config: noon.yaml:12: unknown key "broker.max_frmae"
//	config: noon.yaml:14: yellow.heartbeat: cannot unmarshal !!str `1x` into time.Duration
func LoadFile(path string, dst any) error {
	if _, err := target(dst); err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return decodeYAML(path, data, dst)
}

// decodeYAML is LoadFile on data read from name.
func decodeYAML(name string, data []byte, dst any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(dst)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return yamlError(name, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return yamlError(name, data, err)
		}
		return fmt.Errorf("config: %s:%d: a second YAML document; a config file holds one", name, extra.Line)
	}
	return nil
}

var (
	// lineMsg splits the decoder's "line N: message".
	lineMsg = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	// fieldNotFound is the decoder's message for an unknown key.
	fieldNotFound = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
)

// yamlError rewrites a decoder error as "config: file:line: key: message"
// lines, looking the dotted key up by line in the document's node tree.
func yamlError(name string, data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// A syntax error ("yaml: line 3: did not find expected key").
		msg := err.Error()
		if m := lineMsg.FindStringSubmatch(msg); m != nil {
			return fmt.Errorf("config: %s:%s: %s", name, m[1], m[2])
		}
		return fmt.Errorf("config: %s: %s", name, strings.TrimPrefix(msg, "yaml: "))
	}
	paths := linePaths(data)
	errs := make([]error, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := lineMsg.FindStringSubmatch(e)
		if m == nil {
			errs = append(errs, fmt.Errorf("config: %s: %s", name, e))
			continue
		}
		line, msg := m[1], m[2]
		n, _ := strconv.Atoi(line)
		path := paths[n]
		if f := fieldNotFound.FindStringSubmatch(msg); f != nil {
			if path == "" {
				path = f[1]
			}
			errs = append(errs, fmt.Errorf("config: %s:%s: unknown key %q", name, line, path))
			continue
		}
		if path != "" {
			msg = path + ": " + msg
		}
		errs = append(errs, fmt.Errorf("config: %s:%s: %s", name, line, msg))
	}
	return errors.Join(errs...)
}

// linePaths maps a line of a YAML document to the dotted path of the key (or
// list item) on it; lines holding several keys are left out.
func linePaths(data []byte) map[int]string {
	out := map[int]string{}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return out
	}
	ambiguous := map[int]bool{}
	note := func(line int, path string) {
		if old, ok := out[line]; ok && old != path {
			ambiguous[line] = true
		}
		out[line] = path
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				note(k.Line, p)
				if v.Kind == yaml.ScalarNode && v.Line != k.Line {
					note(v.Line, p)
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Kind == yaml.ScalarNode {
					note(c.Line, p)
				}
				walk(c, p)
			}
		}
	}
	walk(&doc, "")
	for line := range ambiguous {
		delete(out, line)
	}
	return out
}

// Load fills dst, a pointer to a struct that already holds the defaults, from
// the layers in increasing precedence: the YAML file (skipped when file is
// ""), the environment variables of environ under envPrefix (skipped when
// envPrefix is ""; pass os.Environ()), then each "path=value" of sets in order.
// The caller then applies the flags it parsed explicitly and calls [Validate].
func Load(dst any, file, envPrefix string, environ []string, sets []string) error {
	if _, err := target(dst); err != nil {
		return err
	}
	if file != "" {
		if err := LoadFile(file, dst); err != nil {
			return err
		}
	}
	if envPrefix != "" {
		if err := ApplyEnv(envPrefix, dst, environ); err != nil {
			return err
		}
	}
	return SetFlag(sets).Apply(dst)
}
