// Command noongen generates, from the service blocks of idl/*.thrift, the
// method code of each service in a package beside thrift's structs
// (idl/gen/room/roomrpc for idl/room.thrift): the method-name constants,
// the method table (wire.Method), a typed server interface with its
// registration helper (Handlers), and typed client stubs; and the union of
// the tables, for idl/methods. With -thrift it also writes copies of the
// thrift files without their service blocks, which `make gen` hands to
// thrift: thrift's Go generator cannot skip a service's own client and
// processor code, and noon does not use it. `make gen` runs, before thrift:
//
//	go run ./internal/tools/noongen -out idl/gen -import github.com/noonhq/noon/idl/gen \
//	    -union idl/methods/methods_gen.go -thrift $tmp idl/*.thrift
//
// A service block is the subset noon uses: one per file, named by the file
// (idl/room.thrift's methods are room.<Method>), each method taking one
// request struct and returning a reply struct, or binary both ways (raw
// bytes):
//
//	service Room {
//	  RoomState Create(1: CreateRequest req)
//	}
package main

import (
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	out := flag.String("out", "idl/gen", "thrift's Go output directory: each service's file goes in its namespace's package below it")
	importBase := flag.String("import", "github.com/noonhq/noon/idl/gen", "the Go import path of -out")
	union := flag.String("union", "", "where to write the union of the method tables (package named by the directory); empty: not written")
	thriftDir := flag.String("thrift", "", "where to write each input with its service block blanked out, for thrift to compile (structs only); empty: not written")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: noongen [flags] file.thrift...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*out, *importBase, *union, *thriftDir, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "noongen:", err)
		os.Exit(1)
	}
}

// run parses every file, then writes the outputs; nothing is written when a
// file has an error.
func run(out, importBase, union, thriftDir string, paths []string) error {
	paths = append([]string(nil), paths...)
	sort.Strings(paths)
	type output struct {
		path string
		src  []byte
	}
	var (
		outs     []output
		files    []*File
		bases    = map[string]string{}
		prefixes = map[string]string{}
		packages = map[string]string{}
	)
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := Parse(p, src)
		if err != nil {
			return err
		}
		if thriftDir != "" {
			base := filepath.Base(p)
			if other, dup := bases[base]; dup {
				return fmt.Errorf("%s and %s have the same name: thrift would write one over the other", other, p)
			}
			bases[base] = p
			outs = append(outs, output{filepath.Join(thriftDir, base), Strip(src, f)})
		}
		if f.Service == nil {
			continue
		}
		if other, dup := prefixes[f.Prefix]; dup {
			return fmt.Errorf("%s and %s both declare the %s service", other, p, f.Prefix)
		}
		prefixes[f.Prefix] = p
		if other, dup := packages[f.Namespace]; dup {
			return fmt.Errorf("%s and %s both have namespace go %s: one service per Go package", other, p, f.Namespace)
		}
		packages[f.Namespace] = p
		files = append(files, f)
	}
	for _, f := range files {
		src, err := Generate(f, path.Join(importBase, f.GoDir()))
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		outs = append(outs, output{filepath.Join(out, filepath.FromSlash(f.RPCDir()), f.GoPackage()+"_methods.go"), src})
	}
	if union != "" {
		pkg := filepath.Base(filepath.Dir(union))
		if abs, err := filepath.Abs(union); err == nil {
			pkg = filepath.Base(filepath.Dir(abs))
		}
		pkg = strings.ReplaceAll(pkg, "-", "_")
		src, err := GenerateUnion(pkg, importBase, files)
		if err != nil {
			return err
		}
		outs = append(outs, output{union, src})
	}
	for _, o := range outs {
		if err := os.MkdirAll(filepath.Dir(o.path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(o.path, o.src, 0o644); err != nil {
			return err
		}
	}
	return nil
}
