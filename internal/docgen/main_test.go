package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The generated man page covers every command and the completions exist.
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if err := generate(dir); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "man1", "appctl.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"scale", "status", "top", "reload", "restart", "start", "stop", "logs", "metrics"} {
		if !strings.Contains(string(page), "appctl-"+verb) {
			t.Errorf("appctl.1 does not refer to appctl-%s", verb)
		}
		if _, err := os.Stat(filepath.Join(dir, "man1", "appctl-"+verb+".1")); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "man1", "appctl-persist.1")); err == nil {
		t.Error("the internal persist command got a man page")
	}
	for _, f := range []string{"appctl.bash", "_appctl", "appctl.fish"} {
		if fi, err := os.Stat(filepath.Join(dir, "completions", f)); err != nil || fi.Size() == 0 {
			t.Errorf("completion %s: %v", f, err)
		}
	}
}
