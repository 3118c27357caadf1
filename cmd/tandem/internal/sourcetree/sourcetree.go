// Package sourcetree finds Tandem's source tree, for the commands that work on it: `tandem
// chaos` builds the services from it, and the settings generator rewrites files in it.
package sourcetree

import (
	"errors"
	"os"
	"path/filepath"
)

// Root returns the repository's root: the nearest directory from dir up that holds go.work.
func Root(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work in this directory or above: run from Tandem's source tree")
		}
		dir = parent
	}
}
