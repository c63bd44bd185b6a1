package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
)

// New boots a sandbox for the test and tears it down when the test ends,
// printing the tail of its journal first if the test failed. It skips the
// test when not run as root, and fails it when root lacks a prerequisite.
func New(t testing.TB) *Sandbox {
	t.Helper()
	if err := Prerequisites(); err != nil {
		if strings.HasPrefix(err.Error(), "needs root") {
			t.Skip("sandbox test skipped: " + err.Error() + "; run the tests as root (CI does)")
		}
		t.Fatal(err)
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	s, err := Boot(context.Background(), "uk-"+hex.EncodeToString(b[:]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("journal of sandbox %s (last 150 lines):\n%s", s.Name(), s.Journal("-n", "150"))
		}
		s.Close()
	})
	return s
}

// MustRun runs args inside the sandbox and fails the test if it fails.
func (s *Sandbox) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.Run(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
