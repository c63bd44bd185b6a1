package ecosystem

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of what systemd and the kernel take.
const (
	// maxLine is systemd's LONG_LINE_MAX: a longer line in a unit file
	// fails the whole unit.
	maxLine = 1 << 20
	// maxArg is the kernel's MAX_ARG_STRLEN less the final NUL: a longer
	// argument or NAME=value fails the start (E2BIG).
	maxArg = 32*4096 - 1
	// maxPath and maxName are PATH_MAX and NAME_MAX less the NUL, as
	// systemd checks the paths of WorkingDirectory= and the like.
	maxPath = 4095
	maxName = 255
)

// quote writes one word of a unit file setting so that systemd reads it
// back unchanged (systemd.syntax(7)): % is doubled (specifiers), and so is
// $ where systemd substitutes variables (ExecStart=); a word with white
// space, quotes, backslashes, control characters or bytes that are not
// UTF-8, or an empty one, is put in double quotes with C-style escapes.
func quote(word string, dollar bool) string {
	w := strings.ReplaceAll(word, "%", "%%")
	if dollar {
		w = strings.ReplaceAll(w, "$", "$$")
	}
	if w != "" && w != ";" && utf8.ValidString(w) && !strings.ContainsFunc(w, needsQuotes) {
		return w
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(w); {
		r, size := utf8.DecodeRuneInString(w[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02x`, w[i]) // systemd takes the byte back as it is
			i++
			continue
		}
		i += size
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func needsQuotes(r rune) bool {
	return r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\' || r == ';'
}

// execLine is an ExecStart= value: each word quoted.
func execLine(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = quote(a, true)
	}
	return strings.Join(words, " ")
}

// envLine is an Environment= setting for one variable.
func envLine(name, value string) string {
	return "Environment=" + quote(name+"="+value, false)
}

// safePath reports whether a path can be written as it is in a setting
// that takes a list of paths (BindPaths=, StateDirectory=), where white
// space separates items and a colon separates source from destination.
func safePath(p string) bool {
	return validPath(p) && !strings.ContainsFunc(p, func(r rune) bool {
		return needsQuotes(r) || r == ':' || r == '%' || r == '$'
	})
}

// plainPath reports whether a path can be written on one line as it is:
// UTF-8 text without control characters.
func plainPath(p string) bool {
	return utf8.ValidString(p) && !strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// validPath reports whether systemd takes p as a path: UTF-8, at most
// maxPath bytes, each name at most maxName.
func validPath(p string) bool {
	if !utf8.ValidString(p) || len(p) > maxPath {
		return false
	}
	for _, name := range strings.Split(p, "/") {
		if len(name) > maxName {
			return false
		}
	}
	return true
}

// workingDirectory checks that a directory can be a WorkingDirectory=,
// which takes the rest of the line as it is: a valid path on one line,
// not ending in white space, which systemd strips, or in a backslash,
// which joins the next line to it.
func workingDirectory(p string) error {
	switch {
	case !plainPath(p):
		return fmt.Errorf("%q has control characters or bytes that are not UTF-8, which systemd refuses in a path", p)
	case !validPath(p):
		return fmt.Errorf("%q is longer than systemd takes (%d bytes, %d per name)", p, maxPath, maxName)
	case strings.HasSuffix(p, " "):
		return fmt.Errorf("%q ends with a space, which systemd would drop: rename the directory", p)
	case strings.HasSuffix(p, `\`):
		return fmt.Errorf("%q ends with a backslash, which would join the next line of the drop-in to it: rename the directory", p)
	}
	return nil
}

// dropIn renders a drop-in: a header comment, one section, and each
// setting's lines after a comment naming the PM2 field it comes from.
func dropIn(header []string, section string, settings []Setting) string {
	var b strings.Builder
	for _, h := range header {
		b.WriteString("# " + h + "\n")
	}
	b.WriteString("\n[" + section + "]\n")
	for _, s := range settings {
		if len(s.Lines) == 0 {
			continue
		}
		b.WriteString("# " + s.comment() + "\n")
		for _, l := range s.Lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
