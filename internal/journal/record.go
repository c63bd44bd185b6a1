package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// socketUnit is the name of app's socket unit.
func socketUnit(app string) string { return app + ".socket" }

// instanceUnit is the name of the unit of app's instance inst.
func instanceUnit(app, inst string) string { return app + "@" + inst + ".service" }

// sliceName returns the slice systemd puts the instances of the template
// app@.service in: "system-" + the escaped app name + ".slice".
func sliceName(app string) string { return "system-" + escapeUnitName(app) + ".slice" }

// escapeUnitName escapes s for use in a unit name as systemd-escape does
// (systemd.unit(5)): ASCII letters, digits, ':', '_' and '.' stay, except a
// leading '.'; '/' becomes '-'; every other byte, '-' included, becomes
// \xNN with lower-case hex digits.
func escapeUnitName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i > 0, c == ':', c == '_', isAlnum(c):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// filter decides whether rec, a record decoded from journalctl -o json,
// belongs to o's service. It returns the unit the record is about and its
// instance ("" for the socket). The unit is the record's _SYSTEMD_UNIT
// (the unit of the process that logged it, set by journald), or for
// messages from PID 1 the UNIT field that systemd sets; UNIT of other
// processes is ignored, as any process may log that field. Other records
// of PID 1 are dropped, and so is the socket when o.Instance is set.
func filter(rec map[string]any, o Options) (unit, instance string, ok bool) {
	if u, inst, ok := matchUnit(str(rec, "_SYSTEMD_UNIT"), o); ok {
		return u, inst, true
	}
	if str(rec, "_PID") == "1" {
		return matchUnit(str(rec, "UNIT"), o)
	}
	return "", "", false
}

// matchUnit reports whether unit is o's socket or one of its instances
// (only instance o.Instance if set), and returns the instance.
func matchUnit(unit string, o Options) (string, string, bool) {
	if unit == socketUnit(o.App) {
		return unit, "", o.Instance == ""
	}
	rest, ok := strings.CutPrefix(unit, o.App+"@")
	if !ok {
		return "", "", false
	}
	inst, ok := strings.CutSuffix(rest, ".service")
	if !ok || inst == "" || (o.Instance != "" && inst != o.Instance) {
		return "", "", false
	}
	return unit, inst, true
}

// entry is a record of the service, decoded.
type entry struct {
	time     time.Time // zero if the record has none
	unit     string
	instance string // "" for the socket
	priority int
	message  string
	pid      int
	fields   map[string]string
}

// decode returns the entry of rec, a record about unit and instance.
func decode(rec map[string]any, unit, instance string) entry {
	e := entry{unit: unit, instance: instance, priority: 6, fields: map[string]string{}}
	if us, err := strconv.ParseInt(str(rec, "__REALTIME_TIMESTAMP"), 10, 64); err == nil {
		e.time = time.UnixMicro(us)
	}
	if p, err := strconv.Atoi(str(rec, "PRIORITY")); err == nil {
		e.priority = p
	}
	e.pid, _ = strconv.Atoi(str(rec, "_PID"))
	e.message = str(rec, "MESSAGE")
	for k, v := range rec {
		if s, ok := value(v); ok && isCustom(k) {
			e.fields[k] = s
		}
	}
	return e
}

// notCustom are the fields without a leading "_" that are not the app's own.
var notCustom = map[string]bool{
	"MESSAGE": true, "PRIORITY": true, "SYSLOG_IDENTIFIER": true,
	"SYSLOG_FACILITY": true, "SYSLOG_TIMESTAMP": true, "CODE_FILE": true,
	"CODE_LINE": true, "CODE_FUNC": true, "UNIT": true, "MESSAGE_ID": true,
	"INVOCATION_ID": true,
}

// isCustom reports whether the field named k goes into the JSON "fields".
func isCustom(k string) bool {
	return !strings.HasPrefix(k, "_") && !notCustom[k]
}

// str returns field k of rec as a string, "" if missing.
func str(rec map[string]any, k string) string {
	s, _ := value(rec[k])
	return s
}

// value returns a field value of journalctl's JSON as a string. journalctl
// gives a string, an array of byte values for data that is not UTF-8, an
// array of such values for a field that occurs more than once (the last
// is taken), or null for data it leaves out.
func value(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []any:
		if b, ok := byteArray(v); ok {
			return strings.ToValidUTF8(string(b), "\uFFFD"), true
		}
		if len(v) > 0 {
			return value(v[len(v)-1])
		}
	}
	return "", false
}

// byteArray returns the bytes of an array of numbers 0–255.
func byteArray(v []any) ([]byte, bool) {
	b := make([]byte, 0, len(v))
	for _, x := range v {
		f, ok := x.(float64)
		if !ok || f < 0 || f > 255 || f != float64(int(f)) {
			return nil, false
		}
		b = append(b, byte(f))
	}
	return b, len(v) > 0
}

// formatLine decodes one line of journalctl -o json output and formats the
// record as o asks if it is one of o's.
func formatLine(w io.Writer, line []byte, o Options) error {
	rec, err := decodeLine(line)
	if err != nil || rec == nil {
		return err
	}
	unit, instance, ok := filter(rec, o)
	if !ok {
		return nil
	}
	return writeEntry(w, decode(rec, unit, instance), o)
}

// decodeLine decodes one line of journalctl -o json output. Lines that are
// not JSON objects (journalctl writes none, but a blank one may end the
// output) give nil.
func decodeLine(line []byte) (map[string]any, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return nil, nil
	}
	var rec map[string]any
	if err := json.Unmarshal(line, &rec); err != nil {
		return nil, fmt.Errorf("decoding journalctl output: %w", err)
	}
	return rec, nil
}

// writeEntry writes e to w as o asks.
func writeEntry(w io.Writer, e entry, o Options) error {
	var err error
	if o.JSON {
		err = writeJSON(w, e)
	} else {
		err = writeText(w, e, o)
	}
	if err != nil {
		return fmt.Errorf("writing record: %w", err)
	}
	return nil
}

// jsonRecord is the stable JSON schema of a record (see the package doc).
type jsonRecord struct {
	Time     string            `json:"time"`
	Unit     string            `json:"unit"`
	Instance string            `json:"instance"`
	Priority int               `json:"priority"`
	Message  string            `json:"message"`
	PID      int               `json:"pid"`
	Fields   map[string]string `json:"fields"`
}

// writeJSON writes e as one line of JSON.
func writeJSON(w io.Writer, e entry) error {
	r := jsonRecord{
		Unit: e.unit, Instance: e.instance, Priority: e.priority,
		Message: e.message, PID: e.pid, Fields: e.fields,
	}
	if !e.time.IsZero() {
		r.Time = e.time.UTC().Format(time.RFC3339Nano)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// prefixWidth is the width the instance prefix is padded to.
const prefixWidth = 8

// ANSI escape sequences of the text output.
const (
	reset  = "\x1b[0m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
)

// palette holds the instance colours; red and yellow are left out, as they
// mark priorities.
var palette = []string{
	"\x1b[36m", "\x1b[32m", "\x1b[35m", "\x1b[34m",
	"\x1b[96m", "\x1b[92m", "\x1b[95m", "\x1b[94m",
}

// writeText writes e as one line: local time, instance prefix, message.
func writeText(w io.Writer, e entry, o Options) error {
	var b strings.Builder
	if e.time.IsZero() {
		b.WriteString("--:--:--.---")
	} else {
		b.WriteString(e.time.Format("15:04:05.000"))
	}
	b.WriteByte(' ')
	prefix := "socket"
	if e.instance != "" {
		prefix = o.App + "@" + e.instance
	}
	pad := strings.Repeat(" ", max(0, prefixWidth-utf8.RuneCountInString(prefix)))
	msg := sanitize(e.message)
	if o.Color {
		b.WriteString(instanceColor(e.instance) + prefix + reset + pad + " ")
		b.WriteString(priorityColor(e.priority, msg))
	} else {
		b.WriteString(prefix + pad + " " + msg)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// instanceColor returns the colour of an instance: numbered instances take
// the palette in turn, so neighbours differ; other names by hash.
func instanceColor(instance string) string {
	if n, err := strconv.Atoi(instance); err == nil && n >= 0 {
		return palette[n%len(palette)]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(instance))
	return palette[h.Sum32()%uint32(len(palette))]
}

// priorityColor returns msg coloured for priority p: red for err and worse,
// yellow for warning, else as is.
func priorityColor(p int, msg string) string {
	switch {
	case p <= 3:
		return red + msg + reset
	case p == 4:
		return yellow + msg + reset
	}
	return msg
}

// sanitize makes s safe to print as one line on a terminal: trailing
// newlines are removed, bytes that are not UTF-8 become U+FFFD, and control
// characters other than tab (C0, DEL and C1, which could move the cursor or
// start escape sequences) are shown escaped, like \n or \x1b.
func sanitize(s string) string {
	s = strings.ToValidUTF8(strings.TrimRight(s, "\r\n"), "\uFFFD")
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !isControl(r):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < utf8.RuneSelf:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// isControl reports whether r is a control character other than tab.
func isControl(r rune) bool {
	return r != '\t' && (r < 0x20 || r == 0x7f || 0x80 <= r && r <= 0x9f)
}
