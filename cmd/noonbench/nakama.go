package main

// The Nakama row of the like-for-like scenario (-nakama BIN): Nakama run
// from a binary the operator built (`go build` of
// github.com/heroiclabs/nakama/v3, e.g. v3.40.0: issue 15's reference), on
// Postgres, with a Lua RPC that returns its payload, loaded over its
// realtime WebSocket (JSON envelopes, one RPC at a time per connection,
// each connection its own device account): the shape issue 15 measured
// Nakama in, side by side with noon in one run. Nakama is one process, so
// its "hop" CPU is the whole server's, like noon dev's.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

const (
	// lflNakama is the row of Nakama's WebSocket RPC echo.
	lflNakama = "nakama"
	// roleNakama names the Nakama child process.
	roleNakama = "nakama"
	// nakamaServerKey is Nakama's default server key, which its device
	// authentication takes as the HTTP basic user.
	nakamaServerKey = "defaultkey"
	// nakamaEchoLua is the runtime module: an RPC "echo" that returns its
	// payload (issue 15's "Lua function in-process").
	nakamaEchoLua = `local nk = require("nakama")
local function echo(context, payload)
  return payload
end
nk.register_rpc(echo, "echo")
`
	// maxNakamaReply bounds a reply the load generator reads.
	maxNakamaReply = 1 << 20
)

// startNakama migrates Nakama's database and starts the server on free
// loopback ports with the echo module; it returns the process and the HTTP
// base URL (the WebSocket is its /ws).
func startNakama(ctx context.Context, cfg config, stderr io.Writer) (*childProc, string, error) {
	dir, err := os.MkdirTemp("", "noonbench-nakama-")
	if err != nil {
		return nil, "", err
	}
	mods := filepath.Join(dir, "modules")
	err = os.MkdirAll(mods, 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(mods, "echo.lua"), []byte(nakamaEchoLua), 0o644)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(mctx, cfg.nakama, "migrate", "up", "--database.address", cfg.nakamaDB).CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", fmt.Errorf("nakama migrate up: %w: %s", err, lastLine(out))
	}
	port, err := freePortTriple()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	cmd := exec.Command(cfg.nakama,
		"--name", "noonbench", "--database.address", cfg.nakamaDB,
		"--runtime.path", mods, "--data_dir", dir,
		"--socket.address", "127.0.0.1", "--socket.port", strconv.Itoa(port),
		"--console.address", "127.0.0.1", "--console.port", strconv.Itoa(port+1),
		"--logger.level", "INFO", "--logger.stdout", "true")
	c, err := startProc(ctx, roleNakama, cmd, stderr, nakamaReady)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	c.term = true
	c.cleanup = func() { _ = os.RemoveAll(dir) }
	go func() { _, _ = io.Copy(io.Discard, c.out) }() // its logs
	return c, "http://127.0.0.1:" + strconv.Itoa(port), nil
}

// nakamaReady reads Nakama's JSON log lines up to "Startup done".
func nakamaReady(out *bufio.Reader) ([]string, error) {
	for range 10 * maxBannerLines {
		line, err := out.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("no \"Startup done\" (%v)", err)
		}
		var l struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch {
		case l.Msg == "Startup done":
			return nil, nil
		case l.Level == "fatal":
			return nil, errors.New(strings.TrimSpace(line))
		}
	}
	return nil, errors.New("no \"Startup done\" in its first log lines")
}

// freePortTriple returns a port p of 127.0.0.1 such that p-1 (Nakama's
// gRPC), p (its HTTP and WebSocket) and p+1 (its console) were free.
func freePortTriple() (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := p > 1024 && p < 65535
		for _, q := range []int{p - 1, p, p + 1} {
			if !ok {
				break
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("no three free consecutive ports for Nakama")
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// nakamaConn is one Nakama realtime connection of its own device account.
type nakamaConn struct {
	ws   *websocket.Conn
	cid  uint64
	msg  []byte
	dead bool
}

// dialNakama authenticates a new device account over HTTP and opens its
// realtime WebSocket.
func dialNakama(ctx context.Context, base string) (*nakamaConn, error) {
	var id [12]byte
	_, _ = rand.Read(id[:])
	body := `{"id":"noonbench-` + hex.EncodeToString(id[:]) + `"}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v2/account/authenticate/device?create=true", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(nakamaServerKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("device authentication: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxNakamaReply))
	if err != nil {
		return nil, err
	}
	var session struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &session) != nil || session.Token == "" {
		return nil, fmt.Errorf("device authentication: HTTP %d: %s", resp.StatusCode, lastLine(b))
	}
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?lang=en&status=false&format=json&token="+session.Token, nil)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	ws.SetReadLimit(maxNakamaReply)
	return &nakamaConn{ws: ws}, nil
}

// Call sends one RPC envelope and reads its answer (the only message in
// flight on the connection).
func (c *nakamaConn) Call(ctx context.Context, payload []byte) ([]byte, error) {
	c.cid++
	cid := strconv.FormatUint(c.cid, 10)
	// The payload is plain ASCII letters: it needs no JSON escaping.
	c.msg = append(append(append(append(c.msg[:0], `{"cid":"`...), cid...), `","rpc":{"id":"echo","payload":"`...), payload...)
	c.msg = append(c.msg, `"}}`...)
	if err := c.ws.Write(ctx, websocket.MessageText, c.msg); err != nil {
		c.dead = true
		return nil, err
	}
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		c.dead = true
		return nil, err
	}
	var env struct {
		Cid string `json:"cid"`
		Rpc *struct {
			Payload string `json:"payload"`
		} `json:"rpc"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("nakama reply: %w", err)
	}
	switch {
	case env.Error != nil:
		return nil, fmt.Errorf("nakama error %d: %s", env.Error.Code, env.Error.Message)
	case env.Cid != cid || env.Rpc == nil:
		c.dead = true // out of step: this worker stops
		return nil, fmt.Errorf("nakama reply to cid %q, want an rpc reply to %q: %s", env.Cid, cid, bytes.TrimSpace(data[:min(len(data), 200)]))
	}
	return []byte(env.Rpc.Payload), nil
}

func (c *nakamaConn) Broken() bool { return c.dead }

func (c *nakamaConn) Close() error { return c.ws.CloseNow() }
