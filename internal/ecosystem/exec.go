package ecosystem

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"unicode"
)

// byExtension is the interpreter PM2 picks from the script's extension
// when none is given (PM2's lib/API/interpreter.json; .cjs and .mjs are
// Node's too).
var byExtension = map[string]string{
	".js": "node", ".cjs": "node", ".mjs": "node",
	".sh": "bash", ".py": "python", ".rb": "ruby", ".php": "php", ".pl": "perl",
	".coffee": "coffee", ".ls": "lsc", ".ts": "bun", ".tsx": "bun",
}

// command builds ExecStart= from script, interpreter, node_args and args.
func (b *builder) command() error {
	script, err := b.script()
	if err != nil {
		return err
	}
	interp, how, err := b.interpreter(script)
	if err != nil {
		return err
	}
	var argv []string
	fieldsUsed := []string{"script"}
	if interp == "" {
		if err := b.executable("script", script); err != nil {
			return err
		}
		argv = []string{script}
		if v, ok := b.fields["node_args"]; ok {
			b.p.Unmapped = append(b.p.Unmapped, Unmapped{Field: "node_args", Value: shorten(v), Reason: "interpreter is none: the script runs without one"})
		}
	} else {
		argv = []string{interp}
		if v, ok := b.fields["node_args"]; ok {
			words, err := list("node_args", v)
			if err != nil {
				return err
			}
			argv = append(argv, words...)
			fieldsUsed = append(fieldsUsed, "node_args")
		}
		argv = append(argv, script)
	}
	if _, ok := b.fields["interpreter"]; ok {
		fieldsUsed = append(fieldsUsed, "interpreter")
	}
	if v, ok := b.fields["args"]; ok {
		words, err := list("args", v)
		if err != nil {
			return err
		}
		argv = append(argv, words...)
		fieldsUsed = append(fieldsUsed, "args")
	}
	for _, a := range argv {
		if strings.ContainsRune(a, 0) {
			return inputErr("args", "contains a NUL character, which no command line can hold")
		}
		if len(a) > maxArg {
			return inputErr("args", "an argument of %d bytes, and the kernel passes at most %d to a process: shorten it", len(a), maxArg)
		}
	}
	b.p.Node = interp != "" && isNode(interp)
	b.progs = []string{script}
	if interp != "" {
		b.progs = append(b.progs, interp)
	}
	b.p.Mapped = append(b.p.Mapped, Setting{
		Field: strings.Join(fieldsUsed, ", "), Value: shorten(b.fields["script"]), Note: how,
		Lines: []string{"ExecStart=", "ExecStart=" + execLine(argv)},
	}, b.cwdSetting)
	return b.checkReadable(script, interp)
}

// script resolves the script against cwd, or finds it in $PATH when it is
// a bare name not in cwd (script: 'npm', args: 'start'), as PM2 does.
func (b *builder) script() (string, error) {
	v, ok := b.fields["script"]
	if !ok {
		return "", inputErr("script", "missing: name the file PM2 starts, e.g. script: 'server.js'")
	}
	s, err := str("script", v)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(s) == "" {
		return "", inputErr("script", "empty: name the file PM2 starts, e.g. script: 'server.js'")
	}
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return "", inputErr("script", "%q is a command line (PM2 runs it with bash -c): put the program in script and its arguments in args, e.g. script: 'npm', args: 'start'", s)
	}
	p := s
	if !path.IsAbs(s) {
		p = path.Join(b.cwd, s)
		if _, err := b.stat(p); errors.Is(err, fs.ErrNotExist) && !strings.Contains(s, "/") {
			if found, err := b.o.LookPath(s); err == nil && path.IsAbs(found) {
				p = found
			}
		}
	}
	p = path.Clean(p)
	fi, err := b.stat(p)
	if err != nil {
		return "", inputErr("script", "%s (%q from cwd %s): %v; check the path, or set cwd", p, s, b.cwd, unwrapPathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return "", inputErr("script", "%s is not a file", p)
	}
	return p, nil
}

// interpreter returns the program that runs the script ("" for none) and
// how it was chosen.
func (b *builder) interpreter(script string) (string, string, error) {
	name, how := "", ""
	if v, ok := b.fields["interpreter"]; ok {
		s, err := str("interpreter", v)
		if err != nil {
			return "", "", err
		}
		name = s
	}
	switch {
	case name == "none":
		return "", "interpreter none: the script is executed itself", nil
	case name == "":
		name = byExtension[path.Ext(script)]
		how = "interpreter " + name + ", as PM2 picks it for " + path.Ext(script) + " files"
		if name == "" {
			if b.isELF(script) {
				return "", "a binary, executed itself (PM2's interpreter none)", nil
			}
			name, how = "node", "interpreter node, PM2's default"
		}
	case strings.Contains(name, "@"):
		return "", "", inputErr("interpreter", "%q: appctl does not install Node versions; give the node binary's absolute path", name)
	}
	if path.IsAbs(name) {
		if err := b.executable("interpreter", name); err != nil {
			return "", "", err
		}
		return path.Clean(name), how, nil
	}
	candidates := []string{name}
	if name == "python" {
		candidates = append(candidates, "python3") // as PM2 falls back
	}
	for _, c := range candidates {
		if p, err := b.o.LookPath(c); err == nil && path.IsAbs(p) {
			return path.Clean(p), how, nil
		}
	}
	return "", "", inputErr("interpreter", "%s is not installed (not found in $PATH): install it, or set interpreter to its absolute path", name)
}

// isNode reports whether the interpreter is Node.js.
func isNode(interp string) bool {
	base := path.Base(interp)
	return base == "node" || base == "nodejs"
}

// isELF reports whether the file is a binary program.
func (b *builder) isELF(p string) bool {
	f, err := b.o.FS.Open(rel(p))
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4)
	_, err = io.ReadFull(f, head)
	return err == nil && bytes.Equal(head, []byte("\x7fELF"))
}

// executable checks that a program exists and others may run it: the
// instances' dynamic user owns none of the machine's files.
func (b *builder) executable(field, p string) error {
	fi, err := b.stat(p)
	if err != nil {
		return inputErr(field, "%s: %v", p, unwrapPathErr(err))
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o001 == 0 {
		return inputErr(field, "%s is not a program others may run (mode %s): the instances run as a dynamic user; chmod o+rx %s", p, fi.Mode().Perm(), p)
	}
	return nil
}

func (b *builder) isDir(field, p string) error {
	fi, err := b.stat(p)
	if err != nil {
		return inputErr(field, "%s: %v", p, unwrapPathErr(err))
	}
	if !fi.IsDir() {
		return inputErr(field, "%s is not a directory", p)
	}
	return nil
}

func (b *builder) stat(p string) (fs.FileInfo, error) { return fs.Stat(b.o.FS, rel(p)) }

// rel turns an absolute path into a name in an fs.FS rooted at /.
func rel(p string) string {
	r := strings.TrimPrefix(path.Clean(p), "/")
	if r == "" {
		return "."
	}
	return r
}

// unwrapPathErr drops the fs.PathError's own path, which names the file
// without its leading slash.
func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, fs.ErrNotExist) {
			return errors.New("does not exist")
		}
		return pe.Err
	}
	return err
}
