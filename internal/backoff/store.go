package backoff

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDir is where the states live: under /run, so a reboot forgets
// them, readable by everyone so that operators' appctl status shows them.
const DefaultDir = "/run/appctl/backoff"

// Store keeps one state file per instance in a directory.
type Store struct{ Dir string }

func (s Store) path(unit string) string { return filepath.Join(s.Dir, unit+".json") }

// Load returns the state of unit, or nil if it has none.
func (s Store) Load(unit string) (*State, error) {
	data, err := os.ReadFile(s.path(unit))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read back-off of %s: %w", unit, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read back-off of %s from %s: %w", unit, s.path(unit), err)
	}
	return &st, nil
}

// Save records st, replacing the file atomically so that readers never
// see half of it.
func (s Store) Save(st State) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("record back-off: %w", err)
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("record back-off of %s: %w", st.Unit, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("record back-off of %s: %w", st.Unit, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("record back-off of %s: %w", st.Unit, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("record back-off of %s: %w", st.Unit, err)
	}
	if err := os.Rename(tmp.Name(), s.path(st.Unit)); err != nil {
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
func (s Store) All() map[string]State {
	out := map[string]State{}
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		unit, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if st, err := s.Load(unit); err == nil && st != nil {
			out[unit] = *st
		}
	}
	return out
}
