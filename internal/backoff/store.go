package backoff

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/unitkit/unitkit/internal/atomicfile"
)

// DefaultDir is where the states live: under /run, so a reboot forgets
// them, readable by everyone so that operators' appctl status shows them.
const DefaultDir = "/run/appctl/backoff"

// Store keeps one state file per instance in a directory.
type Store struct{ Dir string }

func (s Store) path(unit string) string { return filepath.Join(s.Dir, unit+".json") }

// Load returns the state of unit, or nil if it has none.
func (s Store) Load(unit string) (*State, error) {
	var st State
	found, err := atomicfile.ReadJSON(s.path(unit), &st)
	if err != nil {
		return nil, fmt.Errorf("read back-off of %s: %w", unit, err)
	}
	if !found {
		return nil, nil
	}
	return &st, nil
}

// Save records st, replacing the file atomically so that readers never
// see half of it.
func (s Store) Save(st State) error {
	if err := atomicfile.WriteJSON(s.path(st.Unit), st); err != nil {
		return fmt.Errorf("record back-off of %s: %w", st.Unit, err)
	}
	return nil
}

// Remove forgets the state of unit.
func (s Store) Remove(unit string) error {
	if err := os.Remove(s.path(unit)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forget back-off of %s: %w", unit, err)
	}
	return nil
}

// All returns every recorded state by unit; unreadable files are skipped.
func (s Store) All() map[string]State { return atomicfile.ReadDirJSON[State](s.Dir) }
