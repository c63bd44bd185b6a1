package activation

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
	slogjournal "github.com/systemd/slog-journal"
)

// NewLogger returns the structured logger an instance should use.
//
// When stderr is connected to journald ($JOURNAL_STREAM matches, as under
// systemd), records go to the journal over its native protocol with proper
// priorities, and attribute keys become journal fields: "request_id" is
// stored as REQUEST_ID. Otherwise records are written to stderr as text, or
// as JSON when $LOG_FORMAT=json. $LOG_LEVEL (debug, info, warn, error) sets
// the minimum level; the default is info.
func NewLogger() (*slog.Logger, error) {
	return newLogger(osEnv, os.Stderr)
}

func newLogger(env lookupFunc, stderr io.Writer) (*slog.Logger, error) {
	level, err := parseLogLevel(env)
	if err != nil {
		return nil, err
	}
	format, err := parseLogFormat(env)
	if err != nil {
		return nil, err
	}
	if isJournal, _ := journal.StderrIsJournalStream(); isJournal && stderr == os.Stderr {
		h, err := slogjournal.NewHandler(&slogjournal.Options{
			Level:        level,
			ReplaceAttr:  func(_ []string, a slog.Attr) slog.Attr { a.Key = journalField(a.Key); return a },
			ReplaceGroup: journalField,
		})
		if err == nil {
			return slog.New(h), nil
		}
		// No journal socket after all: fall back to stderr, which journald reads.
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(stderr, opts)), nil
}

func parseLogLevel(env lookupFunc) (slog.Level, error) {
	v, _ := env("LOG_LEVEL")
	switch lowerASCII(v) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", v)
}

func parseLogFormat(env lookupFunc) (string, error) {
	v, _ := env("LOG_FORMAT")
	switch v {
	case "", "text":
		return "text", nil
	case "json":
		return "json", nil
	}
	return "", fmt.Errorf("LOG_FORMAT=%q: want text or json", v)
}

// journalField maps an attribute key to a valid journal field name
// (^[A-Z_][A-Z0-9_]*$, no leading underscore, which marks trusted fields):
// "request_id" → "REQUEST_ID", "http.method" → "HTTP_METHOD".
func journalField(key string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(key) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	f := strings.TrimLeft(b.String(), "_0123456789")
	if f == "" {
		return "FIELD"
	}
	if len(f) > 64 {
		f = f[:64]
	}
	return f
}
