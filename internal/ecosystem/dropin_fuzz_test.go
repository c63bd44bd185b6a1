package ecosystem

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"

	"github.com/unitkit/unitkit/internal/herd"
)

// unitLine is one Key=Value line of a drop-in.
type unitLine struct {
	key, value string
}

// unitKey is what a setting's name looks like.
var unitKey = regexp.MustCompile(`^[A-Z][A-Za-z]+$`)

// readDropIn reads a drop-in of one section strictly: it fails on all
// that systemd would read otherwise than the text says (systemd.syntax(7)):
// a line that is not UTF-8 (systemd ignores it), a carriage return or NUL
// (which end a line for systemd), white space around a value (stripped),
// a setting ending in a backslash (the next line is joined to it), a line
// of 1 MiB or more (the unit fails), a setting outside the section.
// Comments may end in a backslash: systemd skips them before it joins
// lines.
func readDropIn(content, section string) ([]unitLine, error) {
	switch {
	case !utf8.ValidString(content):
		return nil, errors.New("not UTF-8")
	case strings.ContainsAny(content, "\r\x00"):
		return nil, errors.New("a carriage return or NUL")
	case !strings.HasSuffix(content, "\n"):
		return nil, errors.New("no final newline")
	}
	var out []unitLine
	in := false
	for i, l := range strings.Split(strings.TrimSuffix(content, "\n"), "\n") {
		if len(l) >= maxLine {
			return nil, fmt.Errorf("line %d: %d bytes", i+1, len(l))
		}
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
			continue
		case l == "["+section+"]":
			in = true
			continue
		case !in:
			return nil, fmt.Errorf("line %d: %q before [%s]", i+1, l, section)
		}
		k, v, ok := strings.Cut(l, "=")
		switch {
		case !ok || !unitKey.MatchString(k):
			return nil, fmt.Errorf("line %d: %q is not Key=Value", i+1, l)
		case strings.Trim(v, " \t") != v:
			return nil, fmt.Errorf("line %d: white space around the value %q", i+1, v)
		case (len(v)-len(strings.TrimRight(v, `\`)))%2 == 1:
			return nil, fmt.Errorf("line %d: %q ends in a backslash, which joins the next line", i+1, l)
		}
		out = append(out, unitLine{k, v})
	}
	return out, nil
}

// bareWord is a value systemd reads as it is in a list of paths: no white
// space, quotes, backslash, specifier, variable, colon or separator.
var bareWord = regexp.MustCompile(`^[^\s"'\\%$:;]+$`)

// readPath reads a setting that takes the rest of the line as a path, with
// %% for %.
func readPath(v string) (string, error) {
	if err := checkDoubled(v, '%'); err != nil {
		return "", err
	}
	return strings.ReplaceAll(v, "%%", "%"), nil
}

// importInput is what FuzzImportDropIns feeds an import.
type importInput struct {
	Script      string            `json:"script"`
	Interpreter string            `json:"interpreter"`
	Args        []string          `json:"args"`
	Cwd         string            `json:"cwd,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
}

// wantDropIn is what the service's drop-in must say.
type wantDropIn struct {
	argv     []string
	cwd      string
	env      map[string]string // "%i" for the instance specifier
	dir      string            // the --writable directory relative to cwd, or ""
	service  string
	instance string // the instance variable
}

// FuzzImportDropIns imports an app whose paths, arguments, environment,
// --writable directory and service name are fuzzed, and checks that either
// the import is refused with an *InputError, or its drop-ins read back,
// by readDropIn and the words and paths systemd parses, as exactly the
// values given.
func FuzzImportDropIns(f *testing.F) {
	for _, s := range [][8]string{
		{"/srv/app", "server.js", "/usr/bin/node", "--port=80", "a b", "GREETING", `say "hi" 50% $HOME`, "uploads"},
		{"/srv/app\\", "s", "/usr/bin/python3", "", ";", "PORT", "8080", ""},
		{"/srv/app ", "s", "/bin/x", "\\", "x\ny", "A", "\xff", ""},
		{"/home/u/app", "bin/www", "/opt/my app/node", "%i", "$$", "NODE_OPTIONS", "--max-old-space-size=256", "logs"},
		{"/srv/caf\xe9", "s.js", "/usr/bin/node", "", "", "", "", "data"},
		{"rel/dir", "../s.js", "/usr/bin/nodejs", "-", "'", "B_1", "\t", "a/b"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], "app", s[0] == "rel/dir")
	}
	f.Add("/srv/app", "server.js", "/usr/bin/node", "", "", "", "", "uploads", "a:b", false)
	f.Fuzz(func(t *testing.T, cwd, script, interp, arg1, arg2, envKey, envVal, writable, service string, cwdField bool) {
		if _, err := herd.NewApp(service); err != nil {
			return // appctl refuses it before any import
		}
		in := importInput{Script: script, Interpreter: path.Clean("/" + interp), Args: []string{arg1, arg2}}
		source := path.Join("/srv/eco", "ecosystem.config.js")
		if cwdField {
			in.Cwd = cwd
		} else {
			cwd = path.Clean("/" + cwd)
			source = path.Join(cwd, "ecosystem.config.js")
		}
		if envKey != "" {
			in.Env = map[string]string{envKey: envVal}
		}
		data, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &in); err != nil { // the values as Parse reads them
			t.Fatal(err)
		}
		want := wantDropIn{cwd: path.Clean(path.Join(path.Dir(source), in.Cwd)), service: service, instance: "NODE_APP_INSTANCE"}
		if path.IsAbs(in.Cwd) {
			want.cwd = path.Clean(in.Cwd)
		}
		scriptPath := path.Clean(path.Join(want.cwd, in.Script))
		if path.IsAbs(in.Script) {
			scriptPath = path.Clean(in.Script)
		}
		want.argv = append([]string{in.Interpreter, scriptPath}, in.Args...)
		files := fstest.MapFS{}
		addFile(files, want.cwd, fs.ModeDir|0o755)
		addFile(files, scriptPath, 0o644)
		addFile(files, in.Interpreter, 0o755)
		var o []string
		if writable != "" {
			o = []string{writable}
			full := path.Join(want.cwd, writable)
			if path.IsAbs(writable) {
				full = path.Clean(writable)
			}
			want.dir = strings.TrimPrefix(full, want.cwd+"/")
			addFile(files, full, fs.ModeDir|0o755)
		}
		file, err := Parse(data, JSON)
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		plan, err := Build(file, file.Apps[0], Options{
			Service: service, Source: source, Writable: o, CPUs: 2, FS: files,
			LookPath: func(string) (string, error) { return "", exec.ErrNotFound },
		})
		if err != nil {
			inputError(t, err)
			return
		}
		want.env = map[string]string{want.instance: "%i"}
		if isNode(in.Interpreter) {
			want.env["NODE_OPTIONS"] = "--require " + PreloadPath(service)
		}
		for k, v := range in.Env {
			switch {
			case k == "NODE_OPTIONS" && isNode(in.Interpreter):
				if v != "" {
					want.env[k] += " " + v
				}
			case k != want.instance:
				want.env[k] = v
			}
		}
		checkServiceDropIn(t, plan.Files[0].Content, want)
		if len(plan.Files) > 1 {
			checkSocketDropIn(t, plan.Files[1].Content, plan.Port)
		}
	})
}

// addFile puts a file or directory with mode at the absolute path p in
// files, unless fstest.MapFS cannot hold that name.
func addFile(files fstest.MapFS, p string, mode fs.FileMode) {
	if name := rel(p); name != "." && fs.ValidPath(name) {
		files[name] = &fstest.MapFile{Data: []byte("\x7fELF"), Mode: mode}
	}
}

// checkServiceDropIn reads the service drop-in back and compares every
// setting that carries a value given with it.
func checkServiceDropIn(t *testing.T, content string, want wantDropIn) {
	t.Helper()
	lines, err := readDropIn(content, "Service")
	if err != nil {
		t.Fatalf("%v in:\n%s", err, content)
	}
	env := map[string]string{}
	var argv []string
	var cwd string
	for _, l := range lines {
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("%s=%s: %s, in:\n%s", l.key, l.value, fmt.Sprintf(format, args...), content)
		}
		switch l.key {
		case "ExecStart":
			if l.value == "" {
				argv = nil
				continue
			}
			words, err := readWords(l.value, true)
			if err != nil {
				fail("%v", err)
			}
			argv = words
		case "WorkingDirectory":
			if cwd, err = readPath(l.value); err != nil {
				fail("%v", err)
			}
		case "Environment":
			if l.value == want.instance+"=%i" {
				env[want.instance] = "%i"
				continue
			}
			words, err := readWords(l.value, false)
			if err != nil || len(words) != 1 {
				fail("%q, %v: want one word", words, err)
			}
			k, v, _ := strings.Cut(words[0], "=")
			env[k] = v
		case "StateDirectory", "LogsDirectory":
			if l.value != want.service+"/"+want.dir || !bareWord.MatchString(l.value) {
				fail("want the bare word %s/%s", want.service, want.dir)
			}
		case "BindPaths":
			src, dst, ok := strings.Cut(l.value, ":")
			if !ok || !bareWord.MatchString(src) || !bareWord.MatchString(dst) || dst != path.Join(want.cwd, want.dir) ||
				(src != path.Join("/var/lib", want.service, want.dir) && src != path.Join("/var/log", want.service, want.dir)) {
				fail("want SRC:%s, each a bare word", path.Join(want.cwd, want.dir))
			}
		case "BindReadOnlyPaths":
			if !bareWord.MatchString(l.value) || !path.IsAbs(l.value) {
				fail("want an absolute path as a bare word")
			}
		case "ProtectHome", "NotifyAccess", "MemoryDenyWriteExecute":
			if !slices.Contains([]string{"ProtectHome=tmpfs", "NotifyAccess=all", "MemoryDenyWriteExecute=no"}, l.key+"="+l.value) {
				fail("unexpected value")
			}
		default:
			fail("not a setting this import writes")
		}
	}
	if !slices.Equal(argv, want.argv) {
		t.Fatalf("ExecStart= reads as %q, want %q, in:\n%s", argv, want.argv, content)
	}
	if cwd != want.cwd {
		t.Fatalf("WorkingDirectory= reads as %q, want %q, in:\n%s", cwd, want.cwd, content)
	}
	if fmt.Sprint(env) != fmt.Sprint(want.env) {
		t.Fatalf("Environment= reads as %q, want %q, in:\n%s", env, want.env, content)
	}
}

// checkSocketDropIn reads the socket drop-in back: the address reset, then
// the port.
func checkSocketDropIn(t *testing.T, content string, port int) {
	t.Helper()
	lines, err := readDropIn(content, "Socket")
	if err != nil {
		t.Fatalf("%v in:\n%s", err, content)
	}
	if want := []unitLine{{"ListenStream", ""}, {"ListenStream", strconv.Itoa(port)}}; !slices.Equal(lines, want) {
		t.Fatalf("socket drop-in reads as %q, want %q", lines, want)
	}
}

// TestReadDropIn checks the checker: each of these drop-ins reads
// otherwise than its text says.
func TestReadDropIn(t *testing.T) {
	for _, content := range []string{
		"[Service]\nWorkingDirectory=/srv/a\\\n# next\nEnvironment=A=1\n",
		"[Service]\nWorkingDirectory=/srv/a \n",
		"[Service]\nEnvironment=A=1\r\n",
		"[Service]\nEnvironment=A=\xff\n",
		"Environment=A=1\n",
		"[Service]\nEnvironment=A=1",
		"[Service]\n Environment=A=1\n",
		"[Socket]\nListenStream=80\n",
	} {
		if lines, err := readDropIn(content, "Service"); err == nil {
			t.Errorf("%q reads as %q, want an error", content, lines)
		}
	}
	lines, err := readDropIn("# a\\\n[Service]\n; b\nExecStart=\nEnvironment=\"A=\\\\\"\n", "Service")
	if err != nil || len(lines) != 2 {
		t.Errorf("got %q, %v", lines, err)
	}
}
