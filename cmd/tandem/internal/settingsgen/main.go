// Command settingsgen writes what is generated from the services' flags (see package
// settingsdoc): pkg/platform/variables.go and the README's settings table. Run it with
// `go generate ./internal/settingsgen` in cmd/tandem.
package main

//go:generate go run .

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/tandem-sync/tandem/cmd/tandem/internal/settingsdoc"

	"github.com/tandem-sync/tandem/cmd/tandem/internal/sourcetree"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "settingsgen:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := sourcetree.Root(".")
	if err != nil {
		return err
	}
	files, err := settingsdoc.Generate(root)
	if err != nil {
		return err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		full := filepath.Join(root, p)
		old, err := os.ReadFile(filepath.Clean(full))
		if err == nil && string(old) == string(files[p]) {
			continue
		}
		if err := os.WriteFile(full, files[p], 0o644); err != nil { //nolint:gosec // a source file, readable like the rest of the tree
			return err
		}
		fmt.Println("settingsgen: wrote", p)
	}
	return nil
}
