package modroot

import (
	"os"
	"path/filepath"
	"testing"
)

// The test runs in internal/modroot, two levels below the module root.
func TestFindFromPackageDirectory(t *testing.T) {
	got, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Dir(filepath.Dir(wd)); got != want {
		t.Errorf("Find() = %q, want %q", got, want)
	}
}

func TestFindFrom(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "mod", "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "mod", "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, from, want string
		wantErr          bool
	}{
		{"the module directory itself", filepath.Join(root, "mod"), filepath.Join(root, "mod"), false},
		{"two levels below", deep, filepath.Join(root, "mod"), false},
		{"outside any module", root, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantErr {
				if above, err := findFrom(root); err == nil {
					t.Skipf("the temporary directory lies inside the module at %s", above)
				}
			}
			got, err := findFrom(tc.from)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("findFrom(%q) = %q, %v; want %q, error %v", tc.from, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
