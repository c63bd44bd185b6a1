package herd

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DefaultApp is the service managed when no other is named.
const DefaultApp = "app"

// App names one service herd and derives its unit names: NAME.socket,
// NAME@N.service, NAME.target and NAME-persist@N.service.
type App struct{ name string }

// appName is what a unit-name prefix may contain (systemd.unit(5) allows
// more; these are the characters that need no escaping), and it may not
// start with a dash or a dot.
var appName = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.:-]{0,63}$`)

// NewApp validates name against systemd's unit-name rules, so that no other
// unit can be named through it (no '@', '/', globs or white space).
func NewApp(name string) (App, error) {
	if !appName.MatchString(name) || strings.Contains(name, "..") {
		return App{}, usagef("invalid app name %q: use letters, digits and _ . : - (at most 64, not starting with - or .)", name)
	}
	return App{name: name}, nil
}

// Name returns the service's name.
func (a App) Name() string { return a.name }

// Socket is the listening socket unit.
func (a App) Socket() string { return a.name + ".socket" }

// Target is the unit that groups the instances started at boot.
func (a App) Target() string { return a.name + ".target" }

// Template is the instance template unit.
func (a App) Template() string { return a.name + "@.service" }

// Instance is the unit of instance n.
func (a App) Instance(n int) string { return a.name + "@" + strconv.Itoa(n) + ".service" }

// Persist is the one-shot unit that records n as the instance count.
func (a App) Persist(n int) string { return a.name + "-persist@" + strconv.Itoa(n) + ".service" }

// instanceOf returns the instance part of an instance unit name ("3" for
// app@3.service) and whether unit is an instance of this app at all.
func (a App) instanceOf(unit string) (string, bool) { return instancePart(unit, a.name+"@") }

// instancePart returns what lies between prefix and ".service" in unit,
// and whether unit is such an instance at all.
func instancePart(unit, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(unit, prefix)
	if !ok {
		return "", false
	}
	inst, ok := strings.CutSuffix(rest, ".service")
	return inst, ok && inst != ""
}

// number returns the instance number of unit, or 0 if its instance name is
// not a positive number.
func (a App) number(unit string) int {
	inst, ok := a.instanceOf(unit)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(inst)
	if err != nil || n <= 0 || strconv.Itoa(n) != inst {
		return 0
	}
	return n
}

// ResolveInstance turns an operator's reference to an instance ("3",
// "app@3" or "app@3.service") into its unit name.
func (a App) ResolveInstance(ref string) (string, error) {
	unit := ref
	if !strings.Contains(ref, "@") {
		unit = a.name + "@" + ref
	}
	if !strings.HasSuffix(unit, ".service") {
		unit += ".service"
	}
	if a.number(unit) == 0 {
		return "", usagef("invalid instance %q: give its number, e.g. 3 or %s", ref, a.Instance(3))
	}
	return unit, nil
}

// UsageError is a mistake in what the operator asked for; the command
// exits 2 and nothing was changed.
type UsageError struct {
	msg string
	err error
}

// Error returns the message.
func (e *UsageError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return e.msg
}

// Unwrap returns the wrapped error, if any.
func (e *UsageError) Unwrap() error { return e.err }

// Usage marks err as a usage error.
func Usage(err error) error { return &UsageError{err: err} }

func usagef(format string, args ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, args...)}
}

// Instances says "1 instance" or "n instances".
func Instances(n int) string {
	if n == 1 {
		return "1 instance"
	}
	return strconv.Itoa(n) + " instances"
}
