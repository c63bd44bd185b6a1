package cli

import (
	"strings"
	"testing"
)

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    count
		wantErr string
	}{
		{"4", count{n: 4}, ""},
		{"0", count{n: 0}, ""},
		{"+2", count{n: 2, relative: true}, ""},
		{"-1", count{n: -1, relative: true}, ""},
		{"max", count{max: true}, ""},
		{"", count{}, "whole number"},
		{"+", count{}, "whole number"},
		{"-", count{}, "whole number"},
		{"+0", count{}, "change of zero"},
		{"-0", count{}, "change of zero"},
		{"1.5", count{}, "whole number"},
		{"four", count{}, "whole number"},
		{" 4", count{}, "whole number"},
		{"0x10", count{}, "whole number"},
		{"1e3", count{}, "whole number"},
		{"99999999999999999999", count{}, "too large"},
		{"MAX", count{}, "whole number"},
		{"--2", count{}, "whole number"},
	} {
		got, err := parseCount(tc.in)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) || got != tc.want {
			t.Errorf("parseCount(%q) = %+v, %v; want %+v, error containing %q", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestResolveCount(t *testing.T) {
	for _, tc := range []struct {
		c                    count
		current, cpus, limit int
		want                 int
		wantErr              bool
	}{
		{count{n: 4}, 2, 2, 64, 4, false},
		{count{n: 2, relative: true}, 2, 2, 64, 4, false},
		{count{n: -2, relative: true}, 3, 2, 64, 1, false},
		{count{n: -4, relative: true}, 3, 2, 64, 0, true},
		{count{max: true}, 0, 8, 64, 8, false},
		{count{n: 65}, 0, 2, 64, 0, true},
		{count{max: true}, 0, 128, 64, 0, true},
	} {
		got, err := tc.c.resolve(tc.current, tc.cpus, tc.limit)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%+v.resolve(%d, %d, %d) = %d, %v", tc.c, tc.current, tc.cpus, tc.limit, got, err)
		}
	}
}

func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"4", "+2", "-1", "max", "+0", "1.5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCount(s)
		if err != nil {
			return
		}
		if c.relative && c.n == 0 || !c.relative && !c.max && c.n < 0 || c.n > 1_000_000 || c.n < -1_000_000 {
			t.Fatalf("parseCount(%q) accepted %+v", s, c)
		}
	})
}
