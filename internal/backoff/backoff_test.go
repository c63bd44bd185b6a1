package backoff

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDelayGrowsToTheCap(t *testing.T) {
	p := Default()
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for failures, d := range want {
		if got := p.Delay(failures); got != d {
			t.Errorf("Delay(%d) = %s, want %s", failures, got, d)
		}
	}
	for _, failures := range []int{11, 12, 50, 1 << 20} {
		if got := p.Delay(failures); got != p.Max {
			t.Errorf("Delay(%d) = %s, want the cap %s", failures, got, p.Max)
		}
	}
	if got := p.Delay(10); got != 25600*time.Millisecond {
		t.Errorf("Delay(10) = %s, want 25.6s", got)
	}
}

// A failure soon after the last attempt goes on counting; a run that lasted
// MinUptime starts the count again.
func TestNextCountsAndResets(t *testing.T) {
	p := Default()
	f := Failure{Result: "exit-code", Code: "exited", Status: "1"}
	now := time.Unix(1000, 0)
	var st *State
	for k := 1; k <= 4; k++ {
		s := p.Next(st, "app@2.service", f, now)
		if s.Failures != k || s.Delay != p.Delay(k) || !s.Next.Equal(now.Add(s.Delay)) {
			t.Fatalf("failure %d: %+v", k, s)
		}
		st = &s
		now = s.Next.Add(50 * time.Millisecond) // fails again right after starting
	}
	s := p.Next(st, "app@2.service", f, st.Next.Add(p.MinUptime))
	if s.Failures != 1 || s.Delay != 0 {
		t.Fatalf("after a run of MinUptime: %+v, want the count reset", s)
	}
	if s.Waiting(s.FailedAt) {
		t.Error("a first failure should not wait")
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{EnvFirst: "250ms", EnvMax: "5s", EnvMinUptime: "1m"}
	p, errs := FromEnv(func(k string) string { return env[k] })
	if len(errs) != 0 || p != (Policy{First: 250 * time.Millisecond, Max: 5 * time.Second, MinUptime: time.Minute}) {
		t.Fatalf("got %+v, %v", p, errs)
	}
	for _, bad := range []map[string]string{
		{EnvFirst: "fast"}, {EnvMax: "-1s"}, {EnvMax: "1h"}, {EnvMinUptime: "10"}, {EnvFirst: "0s"},
	} {
		p, errs := FromEnv(func(k string) string { return bad[k] })
		if len(errs) != 1 || p != Default() {
			t.Errorf("%v: got %+v, %v; want the defaults and one error", bad, p, errs)
		}
		for k := range bad {
			if len(errs) == 1 && !strings.Contains(errs[0].Error(), k) {
				t.Errorf("%v: error %q does not name %s", bad, errs[0], k)
			}
		}
	}
	p, errs = FromEnv(func(k string) string { return map[string]string{EnvFirst: "2s", EnvMax: "1s"}[k] })
	if len(errs) != 1 || p.Max != p.First {
		t.Errorf("max below first: got %+v, %v", p, errs)
	}
}

func TestStore(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "backoff")}
	if st, err := s.Load("app@1.service"); st != nil || err != nil {
		t.Fatalf("empty store: %v, %v", st, err)
	}
	want := Default().Next(nil, "app@1.service", Failure{Result: "signal", Code: "killed", Status: "KILL"}, time.Unix(5, 0).UTC())
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("app@1.service")
	if err != nil || got == nil || *got != want {
		t.Fatalf("loaded %+v, %v; want %+v", got, err, want)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir, "app@1.service.json")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("state file: %v, %v", fi, err)
	}
	if all := s.All(); len(all) != 1 || all["app@1.service"] != want {
		t.Fatalf("All = %v", all)
	}
	if err := s.Remove("app@1.service"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("app@1.service"); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if all := s.All(); len(all) != 0 {
		t.Fatalf("after Remove: %v", all)
	}
}

func TestFailureString(t *testing.T) {
	for f, want := range map[Failure]string{
		{Result: "exit-code", Code: "exited", Status: "1"}: "exit-code, status 1",
		{Result: "signal", Code: "killed", Status: "KILL"}: "signal KILL",
		{Result: "watchdog"}: "watchdog",
	} {
		if got := f.String(); got != want {
			t.Errorf("%+v: %q, want %q", f, got, want)
		}
	}
}
