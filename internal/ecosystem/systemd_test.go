package ecosystem

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// trickyValues need quoting, escaping or doubling in a unit file; each is
// an argument and an environment value of the app that
// TestDropInsAsSystemdReadsThem imports.
var trickyValues = []string{
	"a b", `say "hi"`, `back\slash`, `ends in a backslash\`, "50% off", "%i", "$HOME ${X} $$",
	";", "a;b", "tab\there", "it's", "", " leading", "trailing ", "é ü", "--title=\"a b\"", "`x`", "#not a comment",
}

// trickyDirs are working directories that WorkingDirectory= takes as they
// are, or with % doubled.
var trickyDirs = []string{"/srv/my app", "/srv/50%", `/srv/a\b`, "/srv/a$b", "/srv/it's", "/srv/é"}

// TestDropInsAsSystemdReadsThem writes the drop-ins of imports with
// trickyValues and trickyDirs for a template in a temporary directory and
// asks systemd-analyze verify how systemd reads them: each value must come
// back exactly, and systemd must warn about nothing. It needs
// systemd-analyze (systemd 252 or later), but no running systemd.
func TestDropInsAsSystemdReadsThem(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil || testing.Short() {
		t.Skip("needs systemd-analyze, and is not short")
	}
	env := map[string]string{}
	for i, v := range trickyValues {
		env["V"+strconv.Itoa(i)] = v
	}
	for _, dir := range trickyDirs {
		t.Run(dir, func(t *testing.T) {
			files := machine()
			files[rel(dir)] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
			files[rel(dir)+"/server.js"] = &fstest.MapFile{Mode: 0o644}
			files["bin/sh"] = &fstest.MapFile{Mode: 0o755}
			data, err := json.Marshal(map[string]any{"script": "server.js", "interpreter": "/bin/sh", "args": trickyValues, "env": env})
			if err != nil {
				t.Fatal(err)
			}
			file, err := Parse(data, JSON)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Build(file, file.Apps[0], Options{Service: "uktest", Source: dir + "/eco.json", CPUs: 2, FS: files, LookPath: lookPath})
			if err != nil {
				t.Fatal(err)
			}
			got := verify(t, analyze, p.Files[0].Content)
			for _, w := range got.warnings {
				t.Errorf("systemd: %s", w)
			}
			if want := append([]string{"/bin/sh", dir + "/server.js"}, trickyValues...); !slices.Equal(got.argv, want) {
				t.Errorf("systemd reads ExecStart= as\n%q, want\n%q", got.argv, want)
			}
			if got.cwd != dir {
				t.Errorf("systemd reads WorkingDirectory= as %q, want %q", got.cwd, dir)
			}
			for k, v := range env {
				if got.env[k] != v {
					t.Errorf("systemd reads %s as %q, want %q", k, got.env[k], v)
				}
			}
		})
	}
}

// readBack is how systemd read a unit.
type readBack struct {
	argv      []string
	cwd       string
	env       map[string]string
	stateDirs []string
	warnings  []string // what systemd said about the drop-in's lines
}

// verify runs systemd-analyze verify on uktest@1.service with dropIn as
// its 50-import.conf and returns what systemd's dump of the unit says.
func verify(t *testing.T, analyze, dropIn string) readBack {
	t.Helper()
	dir := t.TempDir()
	unit := filepath.Join(dir, "uktest@.service")
	if err := os.WriteFile(unit, []byte("[Service]\nExecStart=/bin/false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(unit+".d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unit+".d", DropInName), []byte(dropIn), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, "verify", "--man=no", "--generators=no", filepath.Join(dir, "uktest@1.service"))
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=debug", "SYSTEMD_LOG_COLOR=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out.String())
	}
	var rb readBack
	rb.env = map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, DropInName+":") {
			rb.warnings = append(rb.warnings, line)
		}
		l := strings.TrimLeft(line, "\t")
		switch {
		case strings.HasPrefix(l, "Environment: "):
			k, v, _ := strings.Cut(strings.TrimPrefix(l, "Environment: "), "=")
			rb.env[k] = v
		case strings.HasPrefix(l, "StateDirectory: "):
			rb.stateDirs = append(rb.stateDirs, strings.TrimPrefix(l, "StateDirectory: "))
		case strings.HasPrefix(l, "WorkingDirectory: "):
			rb.cwd = strings.TrimPrefix(l, "WorkingDirectory: ")
		case strings.HasPrefix(l, "Command Line: "):
			argv, err := readCommandLine(strings.TrimPrefix(l, "Command Line: "))
			if err != nil {
				t.Fatal(err)
			}
			rb.argv = argv
		}
	}
	if rb.argv == nil {
		t.Fatalf("no command line in systemd's dump:\n%s", out.String())
	}
	return rb
}

// TestFindingsAsSystemdReadsThem shows, with systemd itself, how it read
// drop-ins that appctl import once wrote, and that the import now refuses
// what led to them.
func TestFindingsAsSystemdReadsThem(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil || testing.Short() {
		t.Skip("needs systemd-analyze, and is not short")
	}
	const head = "[Service]\nExecStart=\nExecStart=/bin/sh /srv/app/server.js\n"
	for _, tc := range []struct {
		name, dropIn string
		misread      func(readBack) bool
		data         string
		change       func(*Options)
		field, want  string // of the import's error
	}{
		{"cwd ending in a backslash joins the next line", head + "WorkingDirectory=/srv/app\\\n# env.A\nEnvironment=A=1\n",
			func(r readBack) bool { return r.cwd == "/srv/app Environment=A=1" && r.env["A"] == "" },
			`{"script": "/srv/app/server.js", "cwd": "/srv/app\\", "env": {"A": "1"}}`, nil, "cwd", "ends with a backslash"},
		{"cwd ending in a space loses it", head + "WorkingDirectory=/srv/app \n",
			func(r readBack) bool { return r.cwd == "/srv/app" },
			`{"script": "/srv/app/server.js", "cwd": "/srv/app "}`, nil, "cwd", "ends with a space"},
		{"a colon in the service name splits StateDirectory=", head + "StateDirectory=a:b/uploads\nBindPaths=/var/lib/a:b/uploads:/srv/app/uploads\n",
			func(r readBack) bool { return slices.Equal(r.stateDirs, []string{"a"}) && len(r.warnings) > 0 },
			`{"script": "server.js"}`, func(o *Options) { o.Service, o.Writable = "a:b", []string{"uploads"} }, "--writable", "service name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := verify(t, analyze, tc.dropIn); !tc.misread(got) {
				t.Errorf("systemd reads it as it is written: %+v", got)
			}
			_, err := build(t, tc.data, "", func(o *Options) {
				o.FS = machine()
				o.FS.(fstest.MapFS)["srv/app\\"] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
				o.FS.(fstest.MapFS)["srv/app "] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
				if tc.change != nil {
					tc.change(o)
				}
			})
			if err == nil {
				t.Fatal("the import is not refused")
			}
			if ie := inputError(t, err); ie.Field != tc.field || !strings.Contains(ie.Msg, tc.want) {
				t.Errorf("refused with %v, want field %s saying %q", err, tc.field, tc.want)
			}
		})
	}
}

// readCommandLine reads the command line of systemd's unit dump: words
// quoted with escapes where needed (\t, \n, \NNN in octal, backslash before
// anything else), then the substitution at the start: $$ is $, and any
// other $ would expand a variable.
func readCommandLine(s string) ([]string, error) {
	var argv []string
	for s != "" {
		var w strings.Builder
		if s[0] != '"' {
			word, rest, _ := strings.Cut(s, " ")
			w.WriteString(word)
			s = rest
		} else {
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] != '\\' {
					w.WriteByte(s[i])
					continue
				}
				i++
				switch {
				case i == len(s):
					return nil, fmt.Errorf("escape at the end of %q", s)
				case s[i] == 'n':
					w.WriteByte('\n')
				case s[i] == 't':
					w.WriteByte('\t')
				case s[i] >= '0' && s[i] <= '3' && i+2 < len(s):
					n, err := strconv.ParseUint(s[i:i+3], 8, 8)
					if err != nil {
						return nil, err
					}
					w.WriteByte(byte(n))
					i += 2
				default:
					w.WriteByte(s[i])
				}
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			s = strings.TrimPrefix(s[i+1:], " ")
		}
		word := w.String()
		if err := checkDoubled(word, '$'); err != nil {
			return nil, err
		}
		argv = append(argv, strings.ReplaceAll(word, "$$", "$"))
	}
	return argv, nil
}
