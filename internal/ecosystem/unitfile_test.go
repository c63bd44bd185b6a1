package ecosystem

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// readWords is the reading side of quote, as systemd.syntax(7) describes
// it, for the words quote writes: %% is %, $$ is $ where dollar is set,
// a word is either bare or wholly in double quotes with C-style escapes.
// The sandbox scenarios check the same against systemd itself.
func readWords(line string, dollar bool) ([]string, error) {
	var words []string
	for i := 0; i < len(line); {
		switch {
		case line[i] == ' ':
			i++
			continue
		case line[i] == '"':
			var b strings.Builder
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] != '\\' {
					b.WriteByte(line[i])
					continue
				}
				i++
				if i == len(line) {
					return nil, fmt.Errorf("escape at the end of %q", line)
				}
				switch c := line[i]; c {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '\\', '"':
					b.WriteByte(c)
				case 'x':
					if i+2 >= len(line) {
						return nil, fmt.Errorf("short \\x in %q", line)
					}
					n, err := strconv.ParseUint(line[i+1:i+3], 16, 8)
					if err != nil {
						return nil, err
					}
					b.WriteByte(byte(n))
					i += 2
				default:
					return nil, fmt.Errorf("unknown escape \\%c in %q", c, line)
				}
			}
			if i == len(line) {
				return nil, fmt.Errorf("unterminated quote in %q", line)
			}
			i++
			if i < len(line) && line[i] != ' ' {
				return nil, fmt.Errorf("quote not followed by a space in %q", line)
			}
			words = append(words, b.String())
		default:
			end := strings.IndexByte(line[i:], ' ')
			if end < 0 {
				end = len(line) - i
			}
			w := line[i : i+end]
			if strings.ContainsAny(w, "\"'\\;") {
				return nil, fmt.Errorf("bare word %q has a character systemd reads specially", w)
			}
			words = append(words, w)
			i += end
		}
	}
	for k, w := range words {
		if err := checkDoubled(w, '%'); err != nil {
			return nil, err
		}
		w = strings.ReplaceAll(w, "%%", "%")
		if dollar {
			if err := checkDoubled(w, '$'); err != nil {
				return nil, err
			}
			w = strings.ReplaceAll(w, "$$", "$")
		}
		words[k] = w
	}
	return words, nil
}

// checkDoubled fails when c appears other than doubled: systemd would
// expand it.
func checkDoubled(w string, c byte) error {
	for i := 0; i < len(w); i++ {
		if w[i] == c {
			if i+1 == len(w) || w[i+1] != c {
				return fmt.Errorf("lone %c in %q", c, w)
			}
			i++
		}
	}
	return nil
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct {
		in     string
		dollar bool
		want   string
	}{
		{"plain", true, "plain"},
		{"", true, `""`},
		{"a b", true, `"a b"`},
		{"50%", true, "50%%"},
		{"$HOME", true, "$$HOME"},
		{"$HOME", false, "$HOME"},
		{`say "hi"`, false, `"say \"hi\""`},
		{`back\slash`, false, `"back\\slash"`},
		{"it's", false, `"it's"`},
		{";", true, `";"`},
		{"l1\nl2\tx\x01", false, `"l1\nl2\tx\x01"`},
		{"héllo", false, "héllo"},
		{"caf\xe9", true, `"caf\xe9"`}, // not UTF-8: escaped, not written as U+FFFD
	} {
		if got := quote(tc.in, tc.dollar); got != tc.want {
			t.Errorf("quote(%q, %v) = %s, want %s", tc.in, tc.dollar, got, tc.want)
		}
	}
}

func TestExecLineReadsBack(t *testing.T) {
	argv := []string{"/usr/bin/node", "--title=\"a b\"", "", "50%", "$X", "a b", ";", "\\", "x\ny"}
	got, err := readWords(execLine(argv), true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, argv) {
		t.Errorf("%s reads back as %q, want %q", execLine(argv), got, argv)
	}
}

// FuzzQuote checks that every word quote writes reads back as it was, on
// one line.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a b", "%i", "$$", `"\`, "\x00", "\n", "é", ";"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, word string, dollar bool) {
		if strings.ContainsRune(word, 0) {
			return // rejected before quoting: no environment or command line holds it
		}
		q := quote(word, dollar)
		if strings.ContainsAny(q, "\n\r") || !utf8.ValidString(q) {
			t.Fatalf("quote(%q) = %q spans lines or is not UTF-8, which systemd ignores", word, q)
		}
		got, err := readWords(q, dollar)
		if err != nil {
			t.Fatalf("quote(%q) = %s: %v", word, q, err)
		}
		if len(got) != 1 || got[0] != word {
			t.Fatalf("quote(%q) = %s reads back as %q", word, q, got)
		}
	})
}
