package backoff

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzFromEnv holds RESTART_BACKOFF_FIRST, RESTART_BACKOFF_MAX and
// RESTART_MIN_UPTIME to their grammar: a Go duration within its bounds is
// taken as it reads; anything else keeps the default and is reported with
// the variable's name, so that a typo never turns the back-off off. The
// cap is never below the first wait.
func FuzzFromEnv(f *testing.F) {
	for _, s := range [][3]string{{"250ms", "5s", "1m"}, {"fast", "-1s", "10"}, {"2s", "1s", ""}, {"1ms ", "+5s", "24h0m0.000000001s"}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, first, max, uptime string) {
		env := map[string]string{EnvFirst: first, EnvMax: max, EnvMinUptime: uptime}
		p, errs := FromEnv(func(k string) string { return env[k] })
		want, bad := Default(), 0
		for _, v := range []struct {
			name, value string
			to          *time.Duration
			lo, hi      time.Duration
		}{
			{EnvFirst, first, &want.First, time.Millisecond, time.Minute},
			{EnvMax, max, &want.Max, time.Millisecond, 10 * time.Minute},
			{EnvMinUptime, uptime, &want.MinUptime, 0, 24 * time.Hour},
		} {
			if v.value == "" {
				continue
			}
			d, err := time.ParseDuration(v.value)
			if err != nil || d < v.lo || d > v.hi {
				if bad >= len(errs) || !strings.Contains(errs[bad].Error(), fmt.Sprintf("%s=%q", v.name, v.value)) {
					t.Fatalf("%s=%q: errors %v do not name it", v.name, v.value, errs)
				}
				bad++
				continue
			}
			*v.to = d
		}
		if want.Max < want.First {
			want.Max, bad = want.First, bad+1
		}
		if p != want || len(errs) != bad {
			t.Fatalf("%q: got %+v, %v; want %+v and %d errors", env, p, errs, want, bad)
		}
	})
}
