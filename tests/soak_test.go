package tests

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/unitkit/unitkit/tests/sandbox"
	"github.com/unitkit/unitkit/tests/soak"
)

// The chaos soak: constant-rate load while a seeded schedule of faults
// runs (see package soak), then every invariant checked. About a minute by
// default; make soak sets SOAK_DURATION (e.g. 10m), SOAK_SEED to replay a
// run, and SOAK_REPORT to write the report as Markdown.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs for a minute or more")
	}
	duration, seed, err := soakSettings()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soak seed %d for %s (replay with SOAK_SEED=%d)", seed, duration, seed)
	sb := sandbox.New(t)
	good := [2]string{buildDeb(t, release{"app", "1.0.0", "./cmd/app"}), buildDeb(t, release{"app", "1.1.0", "./cmd/app"})}
	broken := buildDeb(t, release{"app", "1.2.0", "./tests/brokenworker"})
	rep, err := soak.Run(t.Context(), soak.Config{
		Sandbox: sb, Good: good, Broken: broken, Seed: seed, Duration: duration, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	md := rep.Markdown()
	if path := os.Getenv("SOAK_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
			t.Error(err)
		}
	}
	t.Log("\n" + md)
	if len(rep.Violations) > 0 {
		t.Errorf("soak seed %d: %d violations (replay with SOAK_SEED=%d)", seed, len(rep.Violations), seed)
	}
}

// soakSettings reads SOAK_DURATION (default 1m, at least 10s) and
// SOAK_SEED (default: from the clock).
func soakSettings() (time.Duration, uint64, error) {
	duration, seed := time.Minute, uint64(time.Now().UnixNano())
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second {
			return 0, 0, fmt.Errorf("SOAK_DURATION=%q: want a duration of at least 10s, e.g. 10m", v)
		}
		duration = d
	}
	if v := os.Getenv("SOAK_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("SOAK_SEED=%q: want the unsigned number a report printed", v)
		}
		seed = n
	}
	return duration, seed, nil
}
