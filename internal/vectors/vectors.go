// Package vectors loads the official MLS interoperability test vectors
// (mlswg/mls-implementations, format in README-test-vectors.md) for tests.
//
// The vectors are found in the directory named by the environment variable
// MLS_TEST_VECTORS, or by default in ../shared/mls-test-vectors relative to
// the repository root. Without the variable and without the default
// directory, tests that need them skip; with the variable set to a missing
// directory they fail.
package vectors

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// EnvDir names the environment variable that overrides the vector directory.
const EnvDir = "MLS_TEST_VECTORS"

// Hex is a byte string that JSON-decodes from a hex string.
type Hex []byte

// UnmarshalJSON decodes a JSON hex string; null decodes to nil.
func (h *Hex) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("vectors: bad hex %q: %w", s, err)
	}
	*h = d
	return nil
}

// String returns the hex form.
func (h Hex) String() string { return hex.EncodeToString(h) }

// RepoRoot returns the directory holding go.mod, found by walking up from
// the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("vectors: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Dir returns the vector directory, skipping or failing t as the package
// documentation describes.
func Dir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv(EnvDir); d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			t.Fatalf("%s=%q is not a directory: %v", EnvDir, d, err)
		}
		return d
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(root, "..", "shared", "mls-test-vectors")
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		t.Skipf("MLS test vectors not found at %s; set %s to a checkout of mlswg/mls-implementations/test-vectors", d, EnvDir)
	}
	return d
}

// Load decodes the JSON vector file name (for example "tree-math.json")
// into v.
func Load(t testing.TB, name string, v any) {
	t.Helper()
	path := filepath.Join(Dir(t), name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
}

// Tally counts the cases of one vector file and logs the summary line
// "vectors NAME: N passed, M failed, K skipped" when Report is called.
type Tally struct {
	mu                      sync.Mutex
	Prefix, Name            string
	Passed, Failed, Skipped int
}

// NewTally returns a Tally for file name, logging with prefix (for example
// "vectors" or "passive").
func NewTally(prefix, name string) *Tally { return &Tally{Prefix: prefix, Name: name} }

// Run runs one case as a subtest and counts its outcome.
func (c *Tally) Run(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	var skipped, ran bool
	ok := t.Run(name, func(t *testing.T) {
		ran = true
		defer func() { skipped = t.Skipped() }()
		f(t)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !ran:
		// Filtered out by -run: not a case of this run.
	case skipped:
		c.Skipped++
	case ok:
		c.Passed++
	default:
		c.Failed++
	}
}

// Report logs the summary line. Call it once after all cases ran.
func (c *Tally) Report(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Logf("%s %s: %d passed, %d failed, %d skipped", c.Prefix, c.Name, c.Passed, c.Failed, c.Skipped)
	if c.Passed+c.Failed+c.Skipped == 0 && !strings.Contains(testRunFlag(), "/") {
		t.Errorf("%s: no cases ran", c.Name)
	}
}

// testRunFlag returns the -test.run pattern, if any.
func testRunFlag() string {
	if f := flag.Lookup("test.run"); f != nil {
		return f.Value.String()
	}
	return ""
}

// CaseName returns a subtest name for case i of a suite, e.g. "cs1/3".
func CaseName(suite uint16, i int) string {
	return strings.Join([]string{fmt.Sprintf("cs%d", suite), fmt.Sprint(i)}, "/")
}
