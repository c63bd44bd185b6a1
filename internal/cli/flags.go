package cli

import (
	"errors"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// decimal is an int flag written in decimal digits, with a minus sign if
// negative. pflag's own int flags read a number in Go's syntax, so that
// --cpu 070 would be 56 percent, --limit 0x10 sixteen and --queue 1_000 a
// thousand; here each is refused with what to write instead.
type decimal struct{ n *int }

// decimalFlag points a decimal flag at n, with def as its default.
func decimalFlag(n *int, def int) pflag.Value {
	*n = def
	return decimal{n}
}

// String returns the number in decimal.
func (d decimal) String() string { return strconv.Itoa(*d.n) }

// Type names the flag's kind in the help text, as pflag's int flags do.
func (d decimal) Type() string { return "int" }

// Set parses s: digits, after a minus sign if negative.
func (d decimal) Set(s string) error {
	if !isDigits(strings.TrimPrefix(s, "-")) {
		return errors.New("want a whole number in decimal digits, e.g. 70")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("too large")
	}
	*d.n = n
	return nil
}

// isDigits reports whether s is non-empty and made of ASCII digits only:
// no sign, space, underscore or base prefix.
func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// ownFlagsSet returns the names of the flags of cmd itself, not those it
// inherits (--app), that the command line sets.
func ownFlagsSet(cmd *cobra.Command) []string {
	var names []string
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			names = append(names, "--"+f.Name)
		}
	})
	return names
}
