package main

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// sdkDist is the TypeScript SDK's build output, when built (make play).
const sdkDist = "../../clients/ts/dist/src"

// TestPlaySDKFresh: the SDK copy noon embeds (play/sdk, committed) is the
// .js files of clients/ts/dist/src byte for byte, when dist is built. It
// fails after a change to the SDK until `make play-sdk` (or `make play`)
// copies it again; without dist it skips.
func TestPlaySDKFresh(t *testing.T) {
	if _, err := os.Stat(sdkDist); err != nil {
		t.Skipf("%s not built (cd clients/ts && npm ci && npm run build, or make play): %v", sdkDist, err)
	}
	list := func(root string) []string {
		var files []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".js") {
				rel, _ := filepath.Rel(root, p)
				files = append(files, filepath.ToSlash(rel))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(files)
		return files
	}
	want, got := list(sdkDist), list("play/sdk")
	if !slices.Equal(want, got) {
		t.Fatalf("play/sdk has %v, clients/ts/dist/src %v: run make play-sdk", got, want)
	}
	for _, f := range want {
		a, err := os.ReadFile(filepath.Join(sdkDist, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join("play/sdk", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("play/sdk/%s differs from clients/ts/dist/src/%s: run make play-sdk and commit", f, f)
		}
	}
}

// importRe finds the relative module specifiers of the ES modules: static
// imports and re-exports (`from "./x.js"`) and bare imports (`import "./x.js"`).
var importRe = regexp.MustCompile(`(?m)(?:\bfrom|^\s*import)\s*"(\.{1,2}/[^"]+)"`)

// TestPlayHandler serves the embedded game: the page, its script with a
// JavaScript MIME type (browsers refuse modules without one), every
// module a module imports, GET and HEAD only.
func TestPlayHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle(PlayPath, playHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(method, p string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+p, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, h, body := get("GET", PlayPath); code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, `<script type="module" src="play.js">`) {
		t.Fatalf("GET %s: %d %v\n%s", PlayPath, code, h, body)
	}
	// Walk the module graph from play.js.
	seen := map[string]bool{}
	queue := []string{"play.js"}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if seen[f] {
			continue
		}
		seen[f] = true
		code, h, body := get("GET", PlayPath+f)
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") || h.Get("Cache-Control") != "no-cache" {
			t.Fatalf("GET %s%s: %d %v", PlayPath, f, code, h)
		}
		for _, m := range importRe.FindAllStringSubmatch(body, -1) {
			queue = append(queue, path.Join(path.Dir(f), m[1]))
		}
	}
	if !seen["sdk/index.js"] || !seen["sdk/session.js"] || !seen["sdk/gen/room.js"] {
		t.Fatalf("module graph from play.js: %v", seen)
	}
	if code, _, _ := get("GET", PlayPath+"play.css"); code != http.StatusOK {
		t.Errorf("GET play.css: %d", code)
	}
	if code, _, _ := get("GET", PlayPath+"nope.js"); code != http.StatusNotFound {
		t.Errorf("GET nope.js: %d", code)
	}
	if code, h, _ := get("POST", PlayPath); code != http.StatusMethodNotAllowed || h.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", code, h)
	}
}
