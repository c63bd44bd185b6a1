// Package atomicfile replaces small files so that no reader ever sees half
// of one: systemd reading a drop-in appctl import writes, or an operator's
// appctl status reading a JSON record that appctl's root helpers keep
// under /run.
package atomicfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// WriteFile replaces path with data, mode 0644, creating its directory if
// needed: a temporary file in the same directory (named .tmp-*, which
// systemd ignores in a drop-in directory), synced, then renamed over path.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteJSON encodes v into path with WriteFile.
func WriteJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteFile(path, data)
}

// ReadJSON decodes path into v. It reports false, and no error, if the
// file does not exist.
func ReadJSON(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return true, nil
}

// ReadDirJSON decodes every NAME.json in dir and returns the records by
// NAME; temporary files (.tmp-*) and files it cannot read or decode are
// skipped, and a missing dir gives an empty map.
func ReadDirJSON[T any](dir string) map[string]T {
	out := map[string]T{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		var v T
		if found, err := ReadJSON(filepath.Join(dir, e.Name()), &v); err == nil && found {
			out[name] = v
		}
	}
	return out
}
