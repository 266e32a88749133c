// Package atomicfile replaces a file so that a crash at any moment leaves
// either the old content or the new, never a mix, and the new content is
// on disk when Write returns.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write fills a temporary file in path's folder with fill, gives it perm,
// syncs it, renames it over path and syncs the folder. On error path is
// untouched and the temporary file removed.
func Write(path string, perm fs.FileMode, fill func(*os.File) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := fillAndSync(tmp, perm, fill); err != nil {
		tmp.Close()
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("atomicfile: syncing %s: %w", dir, err)
	}
	return nil
}

func fillAndSync(tmp *os.File, perm fs.FileMode, fill func(*os.File) error) error {
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		return err
	}
	return tmp.Sync()
}

// RemoveLeftovers deletes the temporary files of Writes to path that a
// crash interrupted, and returns the first error.
func RemoveLeftovers(path string) error {
	tmps, err := filepath.Glob(filepath.Join(filepath.Dir(path), tempPattern(path)))
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	var first error
	for _, t := range tmps {
		if err := os.Remove(t); err != nil && first == nil {
			first = fmt.Errorf("atomicfile: %w", err)
		}
	}
	return first
}

// tempPattern names Write's temporary files for path: hidden, beside it.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp*" }
