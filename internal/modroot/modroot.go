// Package modroot finds the module's root directory, where the Makefile
// installs test dependencies under .deps/.
package modroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Find walks up from the working directory, which go test sets to the
// package directory, to the nearest directory holding go.mod.
func Find() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	return findFrom(dir)
}

func findFrom(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
