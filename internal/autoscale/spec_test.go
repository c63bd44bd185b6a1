package autoscale

import (
	"strings"
	"testing"
	"time"
)

func TestSpecRoundTrip(t *testing.T) {
	for _, s := range []Spec{
		{Min: 1, Max: 4, CPU: 70, Window: time.Minute},
		{Min: 0, Max: 8, CPU: 50, Window: 1500 * time.Millisecond, Queue: 16},
		{Min: 3, Max: 3, CPU: 100, Window: 0},
	} {
		got, err := ParseSpec(s.String(), 64)
		if err != nil || got != s {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", s.String(), got, err, s)
		}
	}
}

func TestParseSpecRefusesOtherSpellings(t *testing.T) {
	for _, name := range []string{
		"", "1-4", "1-4:cpu70", "01-4:cpu70:window1m0s", "1-4:cpu70:window60s",
		"1-4:cpu70:window1m0s:queue0", "1-4:cpu070:window1m0s", "4-1:cpu70:window1m0s",
		"1-4:cpu0:window1m0s", "1-100:cpu70:window1m0s", "1-4:cpu70:window1m0s:extra",
		"-1-4:cpu70:window1m0s", "1-4:cpu70:window-1s", "../x:cpu70:window1m0s",
	} {
		if s, err := ParseSpec(name, 64); err == nil {
			t.Errorf("ParseSpec(%q) = %+v, want an error", name, s)
		}
	}
}

func TestValidateSaysWhatToChange(t *testing.T) {
	for _, c := range []struct {
		s    Spec
		want string
	}{
		{Spec{Min: 4, Max: 1, CPU: 70, Window: time.Minute}, "MIN 4 is above MAX 1"},
		{Spec{Min: -86, Max: 8, CPU: 50, Window: time.Minute}, "MIN is -86"}, // rendered as a setting ParseSpec refuses: found by FuzzSpec
		{Spec{Min: 0, Max: 0, CPU: 70, Window: time.Minute}, "MAX is 0"},
		{Spec{Min: 1, Max: 65, CPU: 70, Window: time.Minute}, "exceeds the limit of 64"},
		{Spec{Min: 1, Max: 4, CPU: 101, Window: time.Minute}, "--cpu 101"},
		{Spec{Min: 1, Max: 4, CPU: 70, Window: -time.Second}, "--window -1s"},
		{Spec{Min: 1, Max: 4, CPU: 70, Window: 2 * time.Hour}, "--window 2h0m0s"},
		{Spec{Min: 1, Max: 4, CPU: 70, Window: time.Minute, Queue: -1}, "--queue -1"},
	} {
		err := c.s.Validate(64)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error saying %q", c.s, err, c.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	if lo, hi, err := ParseRange("0-8"); err != nil || lo != 0 || hi != 8 {
		t.Errorf("ParseRange(0-8) = %d, %d, %v", lo, hi, err)
	}
	for _, bad := range []string{"", "4", "-", "1-", "-4", "a-b", "1-4-5", "+1-4", "1 -4", "1-99999999"} {
		if _, _, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) succeeded, want an error", bad)
		}
	}
}
