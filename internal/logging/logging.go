// Package logging sets up log/slog for noon's daemons: options for level and
// format, a level that can change at runtime, a logger for tests that writes
// to t.Log, and Snippet for logging a short quoted prefix of bad input.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/noonhq/noon/internal/config"
)

// Levels and formats Options accepts.
const (
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"

	FormatText = "text"
	FormatJSON = "json"
)

// Options configures a daemon's logger.
type Options struct {
	// Level is the lowest level logged: debug, info, warn or error.
	// Empty means info.
	Level string `yaml:"level"`
	// Format is text (logfmt-like key=value) or json (one object per line).
	// Empty means text.
	Format string `yaml:"format"`

	// LevelVar, when set, is the level New's logger checks on every record:
	// New stores the parsed Level in it, and a later LevelVar.Set changes the
	// level of the running logger (e.g. from an admin command). When nil, New
	// makes a private one and the level is fixed.
	LevelVar *slog.LevelVar `yaml:"-"`
}

// DefaultOptions returns the default logging options: info, text.
func DefaultOptions() Options {
	return Options{Level: LevelInfo, Format: FormatText}
}

// Validate checks Level and Format; field paths are "level" and "format".
func (o Options) Validate() error {
	var errs config.Errors
	if _, err := ParseLevel(o.Level); err != nil {
		errs.Add(config.FieldError{Field: "level", Msg: err.Error()})
	}
	switch strings.ToLower(o.Format) {
	case "", FormatText, FormatJSON:
	default:
		errs.Addf("format", "must be one of text|json, got %q", o.Format)
	}
	return errs.Err()
}

// ParseLevel parses debug, info, warn (or warning) or error, in any case;
// the empty string is info.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case LevelDebug:
		return slog.LevelDebug, nil
	case "", LevelInfo:
		return slog.LevelInfo, nil
	case LevelWarn, "warning":
		return slog.LevelWarn, nil
	case LevelError:
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be one of debug|info|warn|error, got %q", s)
}

// New returns a logger writing records to w in opts.Format at opts.Level (see
// [Options.LevelVar] for changing it at runtime). It fails on bad options with
// the same errors as Validate.
func New(opts Options, w io.Writer) (*slog.Logger, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	level, _ := ParseLevel(opts.Level)
	lv := opts.LevelVar
	if lv == nil {
		lv = new(slog.LevelVar)
	}
	lv.Set(level)
	ho := &slog.HandlerOptions{Level: lv}
	if strings.ToLower(opts.Format) == FormatJSON {
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return slog.New(slog.NewTextHandler(w, ho)), nil
}
