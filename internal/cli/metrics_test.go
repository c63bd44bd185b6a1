package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// A --textfile that node_exporter would not read, or an argument, is a
// usage error (exit 2) found before systemd is asked anything.
func TestMetricsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"metrics", "--textfile", "/tmp/app.txt"},
		{"metrics", "--textfile", ""},
		{"metrics", "--textfile", "/tmp/.prom"},
		{"metrics", "--textfile", "/tmp/app.prom/"},
		{"metrics", "now"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitUsage, stderr.String())
		}
		if stdout.Len() != 0 || !strings.Contains(stderr.String(), "Try '") {
			t.Errorf("%q: stdout %q, stderr %q", args, stdout.String(), stderr.String())
		}
	}
}

func TestCheckTextfile(t *testing.T) {
	for path, ok := range map[string]bool{
		"/var/lib/prometheus/node-exporter/app.prom": true,
		"app.prom":        true,
		"/x/app.prom.tmp": false,
		"/x/app":          false,
		"/x/.prom":        false,
		"":                false,
		"/x/app.prom/":    false,
	} {
		if err := checkTextfile(path); (err == nil) != ok {
			t.Errorf("checkTextfile(%q) = %v, want ok=%v", path, err, ok)
		}
	}
}
