package ecosystem

import (
	"fmt"
	"strings"
)

// quote writes one word of a unit file setting so that systemd reads it
// back unchanged (systemd.syntax(7)): % is doubled (specifiers), and so is
// $ where systemd substitutes variables (ExecStart=); a word with white
// space, quotes, backslashes or control characters, or an empty one, is
// put in double quotes with C-style escapes.
func quote(word string, dollar bool) string {
	w := strings.ReplaceAll(word, "%", "%%")
	if dollar {
		w = strings.ReplaceAll(w, "$", "$$")
	}
	if w != "" && w != ";" && !strings.ContainsFunc(w, needsQuotes) {
		return w
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range w {
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
	return !strings.ContainsFunc(p, func(r rune) bool {
		return needsQuotes(r) || r == ':' || r == '%' || r == '$'
	})
}

// plainPath reports whether a path can be a WorkingDirectory=: no
// control characters (the setting takes the rest of the line as it is).
func plainPath(p string) bool {
	return !strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f })
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
