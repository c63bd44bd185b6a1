package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// count is what appctl scale was asked for: an absolute number, a change
// (+N, -N), or max.
type count struct {
	n        int  // the number, or the change when relative
	relative bool // +N or -N
	max      bool // one instance per available CPU
}

// parseCount parses the argument of appctl scale: N, +N, -N or max, with N
// a whole number. A change of zero is rejected: it would do nothing.
func parseCount(s string) (count, error) {
	if s == "max" {
		return count{max: true}, nil
	}
	digits, sign := s, 0
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		digits, sign = rest, 1
	} else if rest, ok := strings.CutPrefix(s, "-"); ok {
		digits, sign = rest, -1
	}
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return count{}, fmt.Errorf("invalid count %q: want a whole number N, +N, -N or max", s)
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n > 1_000_000 {
		return count{}, fmt.Errorf("invalid count %q: too large", s)
	}
	if sign == 0 {
		return count{n: n}, nil
	}
	if n == 0 {
		return count{}, fmt.Errorf("invalid count %q: a change of zero does nothing; give N, +N or -N with N at least 1", s)
	}
	return count{n: sign * n, relative: true}, nil
}

// resolve turns the count into the number of instances wanted, given how
// many run now, the CPUs available and the upper limit.
func (c count) resolve(current, cpus, limit int) (int, error) {
	want := c.n
	switch {
	case c.max:
		want = cpus
	case c.relative:
		want = current + c.n
	}
	if want < 0 {
		return 0, fmt.Errorf("scale %+d from %d running instances would leave %d", c.n, current, want)
	}
	if want > limit {
		return 0, fmt.Errorf("scale to %d exceeds the limit of %d instances (raise it with --limit or APPCTL_MAX_INSTANCES)", want, limit)
	}
	return want, nil
}
