package memrestart

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStoreCounts(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "memory")}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= 3; i++ {
		r, err := s.Add("app@2.service", t0.Add(time.Duration(i)*time.Minute))
		if err != nil || r.Count != i {
			t.Fatalf("Add #%d = %+v, %v", i, r, err)
		}
	}
	if _, err := s.Add("app@1.service", t0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "app@9.service.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	all := s.All()
	if len(all) != 2 || all["app@2.service"].Count != 3 || !all["app@2.service"].Last.Equal(t0.Add(3*time.Minute)) || all["app@1.service"].Count != 1 {
		t.Fatalf("All() = %+v", all)
	}
	// A damaged record starts again rather than blocking the count.
	if r, err := s.Add("app@9.service", t0); err != nil || r.Count != 1 {
		t.Fatalf("Add over a damaged record = %+v, %v", r, err)
	}
}

func TestAllOfNoDirectory(t *testing.T) {
	if all := (Store{Dir: filepath.Join(t.TempDir(), "none")}).All(); len(all) != 0 {
		t.Fatalf("All() = %v, want empty", all)
	}
}
