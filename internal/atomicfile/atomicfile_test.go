package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteThenRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "r.json")
	type rec struct{ N int }
	var got rec
	if found, err := ReadJSON(path, &got); found || err != nil {
		t.Fatalf("Read of a missing file = %v, %v; want false, nil", found, err)
	}
	for n := 1; n <= 2; n++ {
		if err := WriteJSON(path, rec{n}); err != nil {
			t.Fatal(err)
		}
	}
	if found, err := ReadJSON(path, &got); !found || err != nil || got.N != 2 {
		t.Fatalf("Read = %v, %v, %+v; want the last record", found, err, got)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v; want 0644 so that every user's appctl reads it", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJSON(path, &got); err == nil {
		t.Fatal("Read of a damaged file succeeded")
	}
}
