package autoscale

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/internal/herd"
)

// settingName is what a controller's instance name may be: it is also a
// path under /run (RuntimeDirectory=%p/%i) and words of its ExecStart=.
var settingName = regexp.MustCompile(`^[0-9]{1,7}-[0-9]{1,7}:cpu[0-9]{1,3}:window[0-9hms.]+(:queue[0-9]{1,7})?$`)

// checkSetting fails unless s names the controller of any app's herd as
// systemd takes a unit name: letters, digits and ":-_." only, and at most
// 255 bytes with the longest app name.
func checkSetting(t *testing.T, s string) {
	t.Helper()
	if !settingName.MatchString(s) {
		t.Fatalf("setting %q is not a plain instance name", s)
	}
	longest, err := herd.NewApp(strings.Repeat("a", 64))
	if err != nil {
		t.Fatal(err)
	}
	if unit := longest.Autoscaler(s); len(unit) > 255 {
		t.Fatalf("unit %s is longer than systemd's 255 bytes", unit)
	}
}

// FuzzSpec renders every valid setting as the controller's instance name
// and parses it back: the same setting, and a name systemd takes.
func FuzzSpec(f *testing.F) {
	f.Add(1, 4, 70, 0, int64(60000))
	f.Add(0, 8, 50, 16, int64(1500))
	f.Add(0, 64, 100, 1_000_000, int64(3600000))
	f.Add(3, 3, 1, 0, int64(0))
	f.Fuzz(func(t *testing.T, lo, hi, cpu, queue int, windowMs int64) {
		if windowMs > int64(MaxWindow/time.Millisecond) || windowMs < -int64(MaxWindow/time.Millisecond) {
			return
		}
		s := Spec{Min: lo, Max: hi, CPU: cpu, Window: time.Duration(windowMs) * time.Millisecond, Queue: queue}
		if err := s.Validate(64); err != nil {
			return
		}
		name := s.String()
		checkSetting(t, name)
		got, err := ParseSpec(name, 64)
		if err != nil || got != s {
			t.Fatalf("ParseSpec(%q) = %+v, %v; want %+v", name, got, err, s)
		}
	})
}

// FuzzParseSpec parses arbitrary instance names: what it accepts is
// exactly what String renders, valid, and a name systemd takes.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"1-4:cpu70:window1m0s", "0-8:cpu50:window1.5s:queue16", "1-4:cpu70:window60s", "01-4:cpu70:window1m0s", "1-4:cpu70:window+1m0s", "1-4:cpu70:window1m0.0001s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ParseSpec(name, 64)
		if err != nil {
			return
		}
		if s.String() != name || s.Validate(64) != nil {
			t.Fatalf("ParseSpec(%q) = %+v, which renders as %q", name, s, s.String())
		}
		checkSetting(t, name)
	})
}

// FuzzParseRange holds MIN-MAX to its grammar: whole numbers of at most
// seven digits, read as written.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"1-4", "0-8", "+1-4", "1-4-5", "1 -4", "1-99999999", "0x1-4", "١-٤"} {
		f.Add(s)
	}
	valid := regexp.MustCompile(`^([0-9]{1,7})-([0-9]{1,7})$`)
	f.Fuzz(func(t *testing.T, arg string) {
		lo, hi, err := ParseRange(arg)
		m := valid.FindStringSubmatch(arg)
		if (err == nil) != (m != nil) {
			t.Fatalf("ParseRange(%q) = %d, %d, %v", arg, lo, hi, err)
		}
		if m != nil && (strconv.Itoa(lo) != trimZeros(m[1]) || strconv.Itoa(hi) != trimZeros(m[2])) {
			t.Fatalf("ParseRange(%q) = %d, %d", arg, lo, hi)
		}
	})
}

// trimZeros drops the leading zeros of a number in digits.
func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
