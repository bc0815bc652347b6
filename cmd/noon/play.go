package main

import (
	"embed"
	"io/fs"
	"net/http"
)

// The browser game `noon dev` serves at PlayPath on the BrokerList's HTTP
// server (README, Play in the browser): play/index.html, play.css and
// play.js, an ES module on the TypeScript SDK's compiled ESM, which
// `make play-sdk` copies from clients/ts/dist/src to play/sdk (committed, so
// that `make run` needs no npm; TestPlaySDKFresh fails when the copy is
// stale). Served from the BrokerList's origin, the page fetches
// /brokerlist without CORS and finds the broker's WebSocket from it.
//
//go:embed play
var playFiles embed.FS

// PlayPath is where the game is served.
const PlayPath = "/play/"

// playHandler serves the embedded play directory under PlayPath: GET and
// HEAD only, revalidated on every load (a rebuilt noon serves new files).
func playHandler() http.Handler {
	sub, err := fs.Sub(playFiles, "play")
	if err != nil {
		panic(err) // the embedded directory is there by construction
	}
	files := http.StripPrefix(PlayPath, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
