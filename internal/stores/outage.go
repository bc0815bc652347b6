package stores

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// IsOutage reports whether err is a store being unreachable rather than a
// bug or a refusal: a network error (refused, reset, timed out, closed), a
// Postgres connect error or connection-class SQLSTATE (08xxx, shutdown,
// too many connections), an EOF on a closed connection, the Redis pool
// being closed, exhausted or timed out, Redis loading its data set, or a
// context deadline that a store call ran into (a store client's own
// timeout; a caller whose own deadline passed should check its context
// first, see services.StoreError). A request that failed this way may be
// retried once the store is back: services answer it `unavailable`.
func IsOutage(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &ne), errors.As(err, &ce):
		return true
	case errors.As(err, &pe):
		return len(pe.Code) == 5 && pe.Code[:2] == "08" ||
			pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted),
		errors.Is(err, context.DeadlineExceeded):
		return true
	case redis.IsLoadingError(err), pgconn.Timeout(err):
		return true
	}
	return false
}
