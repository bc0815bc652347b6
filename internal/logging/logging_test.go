package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{DefaultOptions(), ""},
		{Options{}, ""},
		{Options{Level: "DEBUG", Format: "json"}, ""},
		{Options{Level: "warning"}, ""},
		{Options{Level: "loud"}, `config: level: must be one of debug|info|warn|error, got "loud"`},
		{Options{Format: "xml"}, `config: format: must be one of text|json, got "xml"`},
		{Options{Level: "x", Format: "y"}, `config: level: must be one of debug|info|warn|error, got "x"; format: must be one of text|json, got "y"`},
	}
	for _, tt := range tests {
		got := ""
		if err := tt.opts.Validate(); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.opts, got, tt.want)
		}
	}
	if _, err := New(Options{Level: "x"}, new(bytes.Buffer)); err == nil {
		t.Error("New accepted a bad level")
	}
}

func TestNewText(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(DefaultOptions(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("started", "addr", ":1055")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, `level=INFO msg=started addr=:1055`) {
		t.Errorf("got %q", out)
	}
}

func TestNewJSONAndLevelVar(t *testing.T) {
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	log, err := New(Options{Level: "warn", Format: "json", LevelVar: lv}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("dropped")
	if buf.Len() != 0 {
		t.Fatalf("info logged at warn: %q", buf.String())
	}
	lv.Set(slog.LevelDebug) // at runtime, also for derived loggers
	log.With("session", "s1").Debug("now shown", "n", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %q", err, buf.String())
	}
	if rec["msg"] != "now shown" || rec["level"] != "DEBUG" || rec["session"] != "s1" || rec["n"] != 1.0 {
		t.Errorf("got %v", rec)
	}
}
