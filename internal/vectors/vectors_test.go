package vectors

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDirHelper is run in a subprocess by TestDirMissing.
func TestDirHelper(t *testing.T) {
	if os.Getenv("VECTORS_DIR_HELPER") == "" {
		t.Skip("helper process only")
	}
	Dir(t)
}

func runHelper(t *testing.T, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDirHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "VECTORS_DIR_HELPER=1")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestDirMissing(t *testing.T) {
	// MLS_TEST_VECTORS naming a missing directory fails.
	out, err := runHelper(t, EnvDir+"="+t.TempDir()+"/nope")
	if err == nil || !strings.Contains(out, "is not a directory") {
		t.Fatalf("missing MLS_TEST_VECTORS: err %v, output:\n%s", err, out)
	}
	// MLS_TEST_VECTORS naming a directory is used as is.
	dir := t.TempDir()
	out, err = runHelper(t, EnvDir+"="+dir)
	if err != nil || !strings.Contains(out, "PASS") {
		t.Fatalf("existing MLS_TEST_VECTORS: err %v, output:\n%s", err, out)
	}
}

func TestDirDefaultMissingSkips(t *testing.T) {
	// With no variable and no default directory, Dir skips with a hint.
	// Run the helper from a temporary module so the default path is absent.
	mod := t.TempDir()
	if err := os.WriteFile(mod+"/go.mod", []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDirHelper$", "-test.v")
	cmd.Dir = mod
	env := []string{"VECTORS_DIR_HELPER=1"}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, EnvDir+"=") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SKIP") || !strings.Contains(string(out), EnvDir) {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}
