package ecosystem

import (
	"errors"
	"io/fs"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"
)

// machine is the file system the tests build plans against.
func machine() fstest.MapFS {
	file := func(data string, mode fs.FileMode) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(data), Mode: mode}
	}
	dir := func(mode fs.FileMode) *fstest.MapFile { return &fstest.MapFile{Mode: fs.ModeDir | mode} }
	return fstest.MapFS{
		"srv/app":                       dir(0o755),
		"srv/app/server.js":             file("require('node:http')", 0o644),
		"srv/app/bin/www":               file("#!/usr/bin/env node\n", 0o755),
		"srv/app/server":                file("\x7fELF\x02\x01", 0o755),
		"srv/app/script.py":             file("print(1)", 0o644),
		"srv/app/tool.sh":               file("echo", 0o644),
		"srv/app/uploads":               dir(0o755),
		"srv/app/logs":                  dir(0o755),
		"srv/app/README":                file("", 0o644),
		"srv/app/.env":                  file("SECRET=1", 0o600),
		"srv/private":                   dir(0o750),
		"srv/private/server.js":         file("", 0o644),
		"srv/secret/server.js":          file("", 0o600),
		"usr/bin/node":                  file("\x7fELF", 0o755),
		"usr/bin/python3":               file("\x7fELF", 0o755),
		"usr/bin/bash":                  file("\x7fELF", 0o755),
		"usr/bin/npm":                   file("#!/usr/bin/env node\n", 0o755),
		"home":                          dir(0o755),
		"home/deploy":                   dir(0o751),
		"home/deploy/app":               dir(0o755),
		"home/deploy/app/server.js":     file("", 0o644),
		"home/deploy/app/uploads":       dir(0o755),
		"home/deploy/.nvm/v20/bin/node": file("\x7fELF", 0o755),
		"home/closed":                   dir(0o700),
		"home/closed/app/server.js":     file("", 0o644),
		"tmp/t/app.js":                  file("", 0o644),
		"opt/my app/server.js":          file("", 0o644),
	}
}

// lookPath finds node, python3, bash and npm in /usr/bin.
func lookPath(name string) (string, error) {
	switch name {
	case "node", "python3", "bash", "npm":
		return "/usr/bin/" + name, nil
	}
	return "", exec.ErrNotFound
}

// options are the defaults for an app at /srv/app.
func options() Options {
	return Options{Service: "app", Source: "/srv/app/ecosystem.config.js", CPUs: 4, FS: machine(), LookPath: lookPath}
}

// build parses a JSON ecosystem file and builds the plan of its one app
// (or the one named only).
func build(t *testing.T, data string, only string, change func(*Options)) (*Plan, error) {
	t.Helper()
	f, err := Parse([]byte(data), JSON)
	if err != nil {
		return nil, err
	}
	app, err := f.Pick(only)
	if err != nil {
		return nil, err
	}
	o := options()
	if change != nil {
		change(&o)
	}
	return Build(f, app, o)
}

// mustBuild is build that fails the test on an error.
func mustBuild(t *testing.T, data string, change func(*Options)) *Plan {
	t.Helper()
	p, err := build(t, data, "", change)
	if err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return p
}

// service is the service drop-in's content.
func (p *Plan) service() string { return p.Files[0].Content }

// socketFile is the socket drop-in's content, "" when there is none.
func (p *Plan) socketFile() string {
	if len(p.Files) < 2 {
		return ""
	}
	return p.Files[1].Content
}

// unmapped returns the reason given for a field not mapped, "" if it is
// not listed.
func (p *Plan) unmapped(field string) string {
	for _, u := range p.Unmapped {
		if u.Field == field {
			return u.Reason
		}
	}
	return ""
}

// hasLine reports whether content has exactly this line.
func hasLine(content, line string) bool {
	for _, l := range strings.Split(content, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// inputError returns err as an *InputError, failing the test otherwise.
func inputError(t *testing.T, err error) *InputError {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *InputError", err, err)
	}
	return ie
}
