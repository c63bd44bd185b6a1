package tests

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/tests/sandbox"
)

// rpmlintConfig is the configuration the .rpm packages are checked with.
const rpmlintConfig = "../packaging/rpmlint.toml"

// rpmlintSummary is rpmlint's last line, e.g. "1 packages and 0 specfiles
// checked; 0 errors, 0 warnings, 0 badness; has taken 0.9 s".
var rpmlintSummary = regexp.MustCompile(`\d+ packages and \d+ specfiles checked; (\d+) errors, (\d+) warnings[^=\n]*`)

// rpmlintFilter is one entry of the configuration's Filters, which it
// writes one per line in single quotes.
var rpmlintFilter = regexp.MustCompile(`^\s*'([^']+)',\s*$`)

// The .rpm of every architecture passes rpmlint with the project's
// configuration: no error, no warning the configuration does not filter,
// and no filter left that matches nothing.
//
// rpmlint runs inside a sandbox only. Debian's rpmlint unpacks a package
// with cpio in a temporary directory, but nfpm writes the payload's paths
// absolute (/usr/bin/app, where rpmbuild writes ./usr/bin/app), so cpio
// puts the files in / of the machine — and rpmlint then checks an empty
// directory. Here the payload is unpacked into the sandbox's / first and
// rpmlint is pointed there (ExtractDir = "/", which it takes as "already
// unpacked"), so it checks the files themselves: ELF headers, man pages.
func TestRPMLint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the packages")
	}
	if _, err := exec.LookPath("rpmlint"); err != nil {
		t.Skip("rpmlint check skipped: rpmlint is not installed (apt-get install rpmlint)")
	}
	config, err := os.ReadFile(rpmlintConfig)
	if err != nil {
		t.Fatal(err)
	}
	var filters []*regexp.Regexp
	for sc := bufio.NewScanner(bytes.NewReader(config)); sc.Scan(); {
		if m := rpmlintFilter.FindStringSubmatch(sc.Text()); m != nil {
			re, err := regexp.Compile(m[1])
			if err != nil {
				t.Fatalf("%s: filter %q: %v", rpmlintConfig, m[1], err)
			}
			filters = append(filters, re)
		}
	}
	dist := t.TempDir()
	if err := buildPackages(dist, release{"app", "1.0.0", "./cmd/app"}, "amd64 arm64", "rpm", "1700000000"); err != nil {
		t.Fatal(err)
	}
	rpms, _ := filepath.Glob(filepath.Join(dist, "*.rpm"))
	if len(rpms) != 2 {
		t.Fatalf("built %v, want 2 packages", rpms)
	}

	s := sandbox.New(t)
	// The project's configuration, and the same without its filters (an
	// .override. file replaces lists instead of adding to them).
	for path, data := range map[string]string{
		"/tmp/rpmlint/unitkit.toml":                      string(config),
		"/tmp/rpmlint/extract.toml":                      "ExtractDir = \"/\"\n",
		"/tmp/rpmlint-unfiltered/unitkit.toml":           string(config),
		"/tmp/rpmlint-unfiltered/extract.toml":           "ExtractDir = \"/\"\n",
		"/tmp/rpmlint-unfiltered/nofilter.override.toml": "Filters = []\n",
	} {
		if err := s.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	used := make([]bool, len(filters))
	for _, rpm := range rpms {
		name := filepath.Base(rpm)
		inside := "/tmp/" + name
		if err := s.CopyFile(rpm, inside, 0o644); err != nil {
			t.Fatal(err)
		}
		// Both architectures' packages hold the same paths: each replaces
		// the previous one's files.
		s.MustRun(t, "sh", "-c", "cd / && rpm2cpio "+inside+" | cpio -idmu --quiet")
		if _, err := s.ReadFile("/usr/bin/appctl"); err != nil {
			t.Fatalf("%s not unpacked: %v", name, err)
		}
		out, summary := rpmlint(t, s, "/tmp/rpmlint", inside)
		t.Logf("rpmlint %s: %s", name, summary[0])
		if summary[1] != "0" || summary[2] != "0" {
			t.Errorf("rpmlint %s: %s errors, %s warnings that %s does not filter:\n%s",
				name, summary[1], summary[2], rpmlintConfig, out)
		}
		out, summary = rpmlint(t, s, "/tmp/rpmlint-unfiltered", inside)
		t.Logf("rpmlint %s without the filters: %s", name, summary[0])
		for _, line := range strings.Split(out, "\n") {
			for i, f := range filters {
				used[i] = used[i] || f.MatchString(line)
			}
		}
	}
	for i, f := range filters {
		if !used[i] {
			t.Errorf("%s: filter '%s' matches nothing rpmlint reports: remove it", rpmlintConfig, f)
		}
	}
}

// rpmlint runs rpmlint inside s with the configuration directory config
// on the package pkg, and returns its output and summary line's matches.
func rpmlint(t *testing.T, s *sandbox.Sandbox, config, pkg string) (string, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// rpmlint exits non-zero on errors: the summary line counts them.
	out, _ := s.Command(ctx, "rpmlint", "-c", config, pkg).CombinedOutput()
	m := rpmlintSummary.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("rpmlint -c %s %s: no summary line in:\n%s", config, pkg, out)
	}
	m[0] = strings.TrimSpace(m[0])
	return strings.TrimSpace(string(out)), m
}
