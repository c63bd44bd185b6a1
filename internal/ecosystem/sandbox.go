package ecosystem

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// hiddenBy names the sandbox setting of app@.service that hides p from
// the instances, or "" when they see it (read-only, ProtectSystem=strict).
func hiddenBy(p string) string {
	for _, root := range []string{"/home", "/root", "/run/user"} {
		if within(p, root) {
			return "ProtectHome"
		}
	}
	for _, root := range []string{"/tmp", "/var/tmp"} {
		if within(p, root) {
			return "PrivateTmp"
		}
	}
	return ""
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// checkReadable makes sure the instances' dynamic user, which owns none
// of the app's files and is in none of their groups, can reach and read
// them: others need x on every directory above, r and x on cwd, r on the
// script. Files in cwd that others cannot read are only noted: some are
// meant to be private.
func (b *builder) checkReadable(script, interp string) error {
	if err := b.othersMay("cwd", b.cwd, 0o005); err != nil {
		return err
	}
	if err := b.othersMay("script", script, 0o004); err != nil {
		return err
	}
	if interp != "" {
		if err := b.othersMay("interpreter", interp, 0o001); err != nil {
			return err
		}
	}
	b.noteUnreadable()
	return nil
}

// othersMay checks that others have perm on p and x on every directory
// above it.
func (b *builder) othersMay(field, p string, perm fs.FileMode) error {
	for dir := path.Dir(p); ; dir = path.Dir(dir) {
		fi, err := b.stat(dir)
		if err != nil {
			return inputErr(field, "%s: %v", dir, unwrapPathErr(err))
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return b.permErr(field, dir, fi.Mode(), "o+x")
		}
		if dir == "/" {
			break
		}
	}
	fi, err := b.stat(p)
	if err != nil {
		return inputErr(field, "%s: %v", p, unwrapPathErr(err))
	}
	if fi.Mode().Perm()&perm != perm {
		want := map[fs.FileMode]string{0o005: "o+rx", 0o004: "o+r", 0o001: "o+x"}[perm]
		return b.permErr(field, p, fi.Mode(), want)
	}
	return nil
}

func (b *builder) permErr(field, p string, mode fs.FileMode, want string) error {
	return inputErr(field, "%s (mode %s) keeps out the instances, which run as a dynamic user that owns none of the app's files: "+
		"chmod %s %s, and make the app's files readable by others (chmod -R o+rX %s), or move the app to /srv or /opt", p, mode.Perm(), want, p, b.cwd)
}

// unreadableLimit bounds the walk over the app's files.
const unreadableLimit = 20000

// noteUnreadable notes up to three files under cwd that others cannot
// read.
func (b *builder) noteUnreadable() {
	var bad []string
	seen := 0
	_ = fs.WalkDir(b.o.FS, rel(b.cwd), func(p string, d fs.DirEntry, err error) error {
		seen++
		if err != nil || seen > unreadableLimit || len(bad) >= 3 {
			return fs.SkipAll
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		need := fs.FileMode(0o004)
		if d.IsDir() {
			need = 0o005
		}
		if fi.Mode().Perm()&need != need {
			bad = append(bad, "/"+p)
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if len(bad) > 0 {
		b.note(fmt.Sprintf("The instances cannot read %s (not readable by others); if the app needs them: chmod -R o+rX %s.",
			strings.Join(bad, ", "), b.cwd))
	}
}

// sandbox grants what the app needs beyond app@.service's sandbox: its
// directory where the sandbox hides it, and the --writable directories.
func (b *builder) sandbox() error {
	var bind []string
	for _, p := range b.neededPaths() {
		if hiddenBy(p) == "" || slices.ContainsFunc(bind, func(d string) bool { return within(p, d) }) {
			continue
		}
		if !safePath(p) {
			return inputErr("cwd", "%s is hidden by the sandbox and cannot be bound into it: its name has white space, a colon, a quote, a backslash, %% or $; move the app to /srv or /opt", p)
		}
		bind = append(bind, p)
	}
	protectHome := false
	for _, p := range bind {
		if hiddenBy(p) == "ProtectHome" && !protectHome {
			protectHome = true
			b.p.Grants = append(b.p.Grants, Setting{Lines: []string{"ProtectHome=tmpfs"},
				Note: "the app is under " + topDir(p) + ": /home, /root and /run/user become empty and read-only, but for what is bound below"})
		}
		why := "the app, read-only: ProtectHome= hides it otherwise"
		if hiddenBy(p) == "PrivateTmp" {
			why = "the app, read-only: PrivateTmp=yes gives the instances an empty /tmp otherwise"
		}
		b.p.Grants = append(b.p.Grants, Setting{Lines: []string{"BindReadOnlyPaths=" + p}, Note: why})
	}
	return b.writable()
}

// neededPaths are what the instances must see: cwd, and where the
// interpreter and the script are installed when elsewhere.
func (b *builder) neededPaths() []string {
	paths := []string{b.cwd}
	for _, p := range b.progs {
		if !within(p, b.cwd) {
			paths = append(paths, installDir(p))
		}
	}
	return paths
}

// installDir is the directory to bind for a program: its directory, or
// the one above a bin/ (a Node version installed by nvm lives in
// ~/.nvm/versions/node/vX/bin/node and needs its lib/ too).
func installDir(p string) string {
	dir := path.Dir(p)
	if path.Base(dir) == "bin" {
		return path.Dir(dir)
	}
	return dir
}

// topDir is the hidden tree p is in, e.g. /home.
func topDir(p string) string {
	for _, root := range []string{"/run/user", "/home", "/root", "/var/tmp", "/tmp"} {
		if within(p, root) {
			return root
		}
	}
	return p
}

// writable grants each --writable directory: a state (or, for log and
// logs, logs) directory owned by the instances' dynamic user, bound over
// the directory next to the code. All instances share it: systemd names
// the dynamic user of every NAME@N after NAME.
func (b *builder) writable() error {
	var seen []string
	for _, w := range b.o.Writable {
		dir, err := b.writableDir(w)
		if err != nil {
			return err
		}
		if slices.Contains(seen, dir) {
			continue
		}
		seen = append(seen, dir)
		kind, root := "StateDirectory", "/var/lib"
		if base := path.Base(dir); base == "log" || base == "logs" {
			kind, root = "LogsDirectory", "/var/log"
		}
		if !safePath(b.o.Service) {
			return inputErr("--writable", "the service name %q cannot be part of StateDirectory= and BindPaths=, which read a colon as a separator: import under a name of letters, digits, _ . and - (--app)", b.o.Service)
		}
		name := b.o.Service + "/" + dir
		src, dst := path.Join(root, name), path.Join(b.cwd, dir)
		b.p.Grants = append(b.p.Grants, Setting{
			Field: "--writable", Value: dir,
			Lines: []string{kind + "=" + name, "BindPaths=" + src + ":" + dst},
			Note:  "the instances write " + dst + ", which is " + src + ", owned by their dynamic user and kept across restarts",
		})
		b.note("Instances see " + src + " at " + dst + ", not what " + dst + " holds now. To carry its files over, after the import: cp -a " + dst + "/. " + src + "/ && chown -R --reference=" + src + " " + src)
	}
	if len(b.o.Writable) == 0 {
		b.note("Instances cannot write under " + b.cwd + " (ProtectSystem=strict, and they own none of its files). If the app writes there (uploads, caches, SQLite), import again with --writable DIR.")
	}
	return nil
}

// writableDir checks a --writable directory: relative to cwd, inside it,
// existing.
func (b *builder) writableDir(w string) (string, error) {
	dir := path.Clean(w)
	if path.IsAbs(dir) {
		r, ok := strings.CutPrefix(dir, b.cwd+"/")
		if !ok {
			return "", inputErr("--writable", "%s is not under the app's cwd %s: name a directory next to the code, relative to cwd", w, b.cwd)
		}
		dir = r
	}
	if dir == "." || dir == ".." || strings.HasPrefix(dir, "../") {
		return "", inputErr("--writable", "%q: name a directory inside the app's cwd %s, e.g. --writable uploads (not cwd itself: it would hide the code)", w, b.cwd)
	}
	if !safePath(dir) || !safePath(b.cwd) {
		return "", inputErr("--writable", "%q: a name with white space, a colon, a quote, a backslash, %% or $ cannot be bound", w)
	}
	full := path.Join(b.cwd, dir)
	fi, err := b.stat(full)
	if err != nil {
		return "", inputErr("--writable", "%s: %v; create it first (mkdir -p %s)", full, unwrapPathErr(err), full)
	}
	if !fi.IsDir() {
		return "", inputErr("--writable", "%s is not a directory", full)
	}
	return dir, nil
}
