//go:build tools

// Package tools pins the modules the project depends on before code imports
// them, and the code generators `make gen` runs, so that `go mod tidy` keeps
// them and `go install` uses the versions in go.mod.
package tools

import (
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/apache/thrift/lib/go/thrift"
	_ "github.com/coder/websocket"
	_ "github.com/go-zeromq/zmq4"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/crypto/argon2"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
	_ "google.golang.org/protobuf/proto"
)
