// Command gen writes the conformance vectors of idl/conformance (see
// package conformance): `go run ./idl/conformance/gen` from the module
// root, or `make gen`. -check compares instead of writing and fails when
// a file would change.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

func main() {
	out := flag.String("out", "idl/conformance", "the directory to write")
	check := flag.Bool("check", false, "compare with the files in -out instead of writing; exit 1 on a difference")
	noSessions := flag.Bool("no-sessions", false, "leave sessions/ alone (they are recorded from a platform run)")
	flag.Parse()
	files, err := generate(context.Background(), !*noSessions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if *check {
		if diff := compare(*out, files); len(diff) > 0 {
			for _, d := range diff {
				fmt.Fprintln(os.Stderr, "gen:", d)
			}
			os.Exit(1)
		}
		return
	}
	if err := write(*out, files, !*noSessions); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// generate returns every file by its path under idl/conformance.
func generate(ctx context.Context, sessions bool) (map[string][]byte, error) {
	files := map[string][]byte{}
	add := func(name string, v any) error {
		b, err := marshal(v)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		files[name] = b
		return nil
	}
	if err := add("frames.json", frames()); err != nil {
		return nil, err
	}
	tf, err := thriftFiles()
	if err != nil {
		return nil, err
	}
	for _, f := range tf {
		if err := add(filepath.Join("thrift", f.Service+".json"), f); err != nil {
			return nil, err
		}
	}
	bl, err := brokerLists()
	if err != nil {
		return nil, err
	}
	if err := add("brokerlist.json", bl); err != nil {
		return nil, err
	}
	if sessions {
		ss, err := recordSessions(ctx)
		if err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
		for _, s := range ss {
			if err := add(filepath.Join("sessions", s.Name+".json"), s); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

// marshal is indented JSON without HTML escaping, ending in a newline.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// write replaces the generated files under dir (thrift/, and sessions/
// when they were generated) with files.
func write(dir string, files map[string][]byte, sessions bool) error {
	subs := []string{"thrift"}
	if sessions {
		subs = append(subs, "sessions")
	}
	for _, sub := range subs {
		old, _ := filepath.Glob(filepath.Join(dir, sub, "*.json"))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for _, name := range sortedKeys(files) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// compare lists the differences between files and what dir holds.
func compare(dir string, files map[string][]byte) []string {
	var diff []string
	for _, name := range sortedKeys(files) {
		old, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case err != nil:
			diff = append(diff, fmt.Sprintf("%s: %v", name, err))
		case !bytes.Equal(old, files[name]):
			diff = append(diff, name+" is stale: run make gen ("+firstDiff(old, files[name])+")")
		}
	}
	subs := []string{"thrift"}
	if _, ok := files[filepath.Join("sessions", "hello.json")]; ok {
		subs = append(subs, "sessions")
	}
	for _, sub := range subs {
		old, _ := filepath.Glob(filepath.Join(dir, sub, "*.json"))
		for _, f := range old {
			rel, _ := filepath.Rel(dir, f)
			if _, ok := files[rel]; !ok {
				diff = append(diff, rel+" is no longer generated: run make gen")
			}
		}
	}
	return diff
}

// firstDiff describes the first line where a file's old and new contents
// differ, so a stale file found in CI says what changed.
func firstDiff(old, new []byte) string {
	ol, nl := bytes.Split(old, []byte("\n")), bytes.Split(new, []byte("\n"))
	for i := 0; i < max(len(ol), len(nl)); i++ {
		var o, n []byte
		if i < len(ol) {
			o = ol[i]
		}
		if i < len(nl) {
			n = nl[i]
		}
		if !bytes.Equal(o, n) {
			return fmt.Sprintf("line %d: was %q, now %q", i+1, clip(o), clip(n))
		}
	}
	return "same lines"
}

// clip shortens a line for firstDiff.
func clip(b []byte) []byte {
	const n = 300
	if len(b) > n {
		return append(b[:n:n], "..."...)
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
