package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/unitkit/unitkit/activation"
)

// TestRun checks the command line: -version prints the version and exits
// 0, -h exits 0, and unknown flags or arguments exit 2 with the usage.
func TestRun(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string // substring
	}{
		{[]string{"-version"}, 0, version + "\n", ""},
		{[]string{"--version"}, 0, version + "\n", ""},
		{[]string{"-h"}, 0, "", "usage: app [-version]"},
		{[]string{"-bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"-version=maybe"}, 2, "", "invalid boolean value"},
		{[]string{"serve"}, 2, "", `unexpected argument "serve"`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, &stdout, &stderr)
		if got := exitCode(err); got != tt.code {
			t.Errorf("run %q: exit %d (%v), want %d", tt.args, got, err, tt.code)
		}
		if stdout.String() != tt.stdout {
			t.Errorf("run %q: stdout %q, want %q", tt.args, stdout.String(), tt.stdout)
		}
		if !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("run %q: stderr %q lacks %q", tt.args, stderr.String(), tt.stderr)
		}
	}
}

// TestRunBadEnvironment checks that a misconfigured environment is
// reported on stderr as "app: ..." and exits 1.
func TestRunBadEnvironment(t *testing.T) {
	t.Setenv("DRAIN_TIMEOUT", "soon")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), nil, &stdout, &stderr)
	if got := exitCode(err); got != 1 {
		t.Errorf("exit %d (%v), want 1", got, err)
	}
	if !strings.HasPrefix(stderr.String(), "app: ") || !strings.Contains(stderr.String(), "DRAIN_TIMEOUT") {
		t.Errorf("stderr %q, want app: ... DRAIN_TIMEOUT ...", stderr.String())
	}
}

// TestExitCodeMemoryLimit checks that a stop for the memory limit exits
// 75, also when its drain was cut short, and is logged at Info unless
// requests were cut off.
func TestExitCodeMemoryLimit(t *testing.T) {
	memory := fmt.Errorf("serve: %w", fmt.Errorf("activation: %w (memory limit 4.0 MiB, rss 9.0 MiB)", activation.ErrMemoryLimit))
	cut := fmt.Errorf("serve: %w", fmt.Errorf("activation: %w; %w", activation.ErrMemoryLimit, activation.ErrDrainTimeout))
	drain := fmt.Errorf("serve: %w", activation.ErrDrainTimeout)
	for _, tc := range []struct {
		err   error
		code  int
		level slog.Level
	}{
		{memory, activation.ExitMemoryLimit, slog.LevelInfo},
		{cut, activation.ExitMemoryLimit, slog.LevelError},
		{drain, 1, slog.LevelError},
		{errors.New("listener failed"), 1, slog.LevelError},
	} {
		if got := exitCode(tc.err); got != tc.code {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
		if got := serveErrorLevel(tc.err); got != tc.level {
			t.Errorf("serveErrorLevel(%v) = %v, want %v", tc.err, got, tc.level)
		}
	}
	if activation.ExitMemoryLimit != 75 {
		t.Errorf("ExitMemoryLimit = %d, want 75 (EX_TEMPFAIL)", activation.ExitMemoryLimit)
	}
}
