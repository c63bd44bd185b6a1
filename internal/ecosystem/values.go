package ecosystem

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// str reads a field that must be a string.
func str(name string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", inputErr(name, "want a string, got %s", describe(v))
	}
	return s, nil
}

// boolean reads a field that must be true or false.
func boolean(name string, v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, inputErr(name, "want true or false, got %s", describe(v))
	}
	return b, nil
}

// numberText is the text of a value PM2 reads as a number: a JSON number,
// or a string (trimmed), as PM2 also accepts.
func numberText(v any) (string, bool) {
	switch t := v.(type) {
	case json.Number:
		return string(t), true
	case string:
		return strings.TrimSpace(t), true
	}
	return "", false
}

// integer reads a whole number, written as a number or, as PM2 accepts,
// as a string of digits.
func integer(name string, v any, unit string) (int64, error) {
	text, ok := numberText(v)
	if !ok {
		return 0, inputErr(name, "want a whole number%s, got %s", unit, describe(v))
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, inputErr(name, "%q: want a whole number%s", text, unit)
	}
	return n, nil
}

// millis reads a time in milliseconds, from lo to hi.
func millis(name string, v any, lo, hi int64) (int64, error) {
	ms, err := integer(name, v, " of milliseconds, e.g. 5000")
	if err != nil {
		return 0, err
	}
	if ms < lo || ms > hi {
		return 0, inputErr(name, "%d ms: want %d to %d milliseconds", ms, lo, hi)
	}
	return ms, nil
}

// duration writes milliseconds the way systemd and the instances read
// them: 5s, or 1500ms.
func duration(ms int64) string {
	if ms%1000 == 0 {
		return strconv.FormatInt(ms/1000, 10) + "s"
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// sizeForm is PM2's max_memory_restart: bytes, or a number of K, M or G
// (powers of 1024, as systemd reads them too).
var sizeForm = regexp.MustCompile(`^([0-9]{1,15})([KMG]?)$`)

// size reads max_memory_restart into systemd's form (e.g. 300M) and the
// number of bytes.
func size(name string, v any) (string, int64, error) {
	text, ok := numberText(v)
	if !ok {
		return "", 0, inputErr(name, "want bytes or a size such as 512M, got %s", describe(v))
	}
	m := sizeForm.FindStringSubmatch(text)
	if m == nil {
		return "", 0, inputErr(name, "%q: want a number of bytes, or a number followed by K, M or G, e.g. 512M or 1G", text)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30}[m[2]]
	if n == 0 || n > (1<<40)>>shift {
		return "", 0, inputErr(name, "%q: want more than 0 and at most 1T", text)
	}
	return strconv.FormatInt(n, 10) + m[2], n << shift, nil
}

// instanceCount reads instances as PM2 does: a number, "max" or 0 for one
// per CPU, -1 for one fewer than the CPUs (at least 1). Absent means 1.
func instanceCount(v any, cpus int) (int, error) {
	if v == nil {
		return 1, nil
	}
	if s, ok := v.(string); ok && strings.TrimSpace(s) == "max" {
		return max(cpus, 1), nil
	}
	n, err := integer("instances", v, `, "max", 0 (one per CPU) or -1 (one per CPU but one)`)
	if err != nil {
		return 0, err
	}
	switch {
	case n == 0:
		return max(cpus, 1), nil
	case n == -1:
		return max(cpus-1, 1), nil
	case n < 0:
		return 0, inputErr("instances", "%d: want a positive number, \"max\", 0 (one per CPU) or -1 (one per CPU but one)", n)
	case n > 10000:
		return 0, inputErr("instances", "%d: at most 10000", n)
	}
	return int(n), nil
}

// list reads args or node_args: an array, or a string that PM2 splits
// into words.
func list(name string, v any) ([]string, error) {
	switch t := v.(type) {
	case string:
		return splitWords(t), nil
	case []any:
		out := make([]string, 0, len(t))
		for i, e := range t {
			s, err := scalar(name+"["+strconv.Itoa(i)+"]", e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, inputErr(name, "want a string or an array of strings, got %s", describe(v))
}

// scalar renders a string, number or boolean as the text a process sees.
func scalar(name string, v any) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case json.Number:
		return string(t), nil
	case bool:
		return strconv.FormatBool(t), nil
	}
	return "", inputErr(name, "want a string, number or boolean, got %s", describe(v))
}

// splitWords splits a command line the way PM2 splits args given as a
// string: at white space, except inside quotes. A word that is quoted as
// a whole loses its quotes ("a b" → a b); quotes inside a word stay, as
// PM2 leaves them (--title="a b" → --title="a b").
func splitWords(s string) []string {
	var words []string
	r := []rune(s)
	for i := 0; i < len(r); {
		if unicode.IsSpace(r[i]) {
			i++
			continue
		}
		if q := r[i]; q == '"' || q == '\'' {
			end := indexRune(r, i+1, q)
			if end < 0 {
				words = append(words, string(r[i:]))
				break
			}
			words = append(words, string(r[i+1:end]))
			i = end + 1
			continue
		}
		start := i
		for i < len(r) && !unicode.IsSpace(r[i]) {
			if q := r[i]; q == '"' || q == '\'' {
				if end := indexRune(r, i+1, q); end >= 0 {
					i = end
				}
			}
			i++
		}
		words = append(words, string(r[start:i]))
	}
	return words
}

func indexRune(r []rune, from int, c rune) int {
	for i := from; i < len(r); i++ {
		if r[i] == c {
			return i
		}
	}
	return -1
}

// envName is what systemd accepts as an environment variable's name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// environment reads an env block: an object of NAME: value.
func environment(name string, v any) (map[string]string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, inputErr(name, "want an object of NAME: value, got %s", describe(v))
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		field := name + "." + k
		if !envName.MatchString(k) {
			return nil, inputErr(field, "not a valid variable name: use letters, digits and _, not starting with a digit")
		}
		if e == nil {
			continue // as in Node: JSON.stringify drops undefined, and null is no value
		}
		s, err := scalar(field, e)
		if err != nil {
			return nil, err
		}
		switch {
		case strings.ContainsRune(s, 0):
			return nil, inputErr(field, "contains a NUL character, which no environment can hold")
		case !utf8.ValidString(s):
			return nil, inputErr(field, "is not UTF-8 text, and systemd drops such an assignment")
		case len(k)+1+len(s) > maxArg:
			return nil, inputErr(field, "%s=value is %d bytes, and the kernel passes at most %d to a process: shorten it", k, len(k)+1+len(s), maxArg)
		}
		out[k] = s
	}
	return out, nil
}

// millisOf reads an optional time field; ok is false when it is absent.
func (b *builder) millisOf(name string, lo, hi int64) (ms int64, ok bool, err error) {
	v, present := b.fields[name]
	if !present {
		return 0, false, nil
	}
	ms, err = millis(name, v, lo, hi)
	return ms, err == nil, err
}

// itoa is strconv.Itoa for int64.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
