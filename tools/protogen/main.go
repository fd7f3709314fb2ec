// Command protogen regenerates the protobuf and Connect RPC code under gen/
// from the sources under proto/, reproducibly, with one command run from
// anywhere inside the module:
//
//	go run ./tools/protogen          # regenerate gen/ and gen/protogen.sum
//	go run ./tools/protogen -check   # regenerate into a temp dir and diff
//
// Every tool version is pinned: buf is BufVersion (built from the Go module
// proxy with `go install ...@BufVersion`), and the two local buf plugins,
// protoc-gen-go (google.golang.org/protobuf/cmd/protoc-gen-go) and
// protoc-gen-connect-go (connectrpc.com/connect/cmd/protoc-gen-connect-go),
// are built with `go build` inside this module, so they are exactly the
// versions go.mod requires (and go.sum authenticates). They are built into
// a temporary directory that is put first on PATH for buf, which reads
// proto/buf.gen.yaml. Generation runs in a scratch copy of proto/, and
// the results replace every generated file under gen/ (stale ones are
// removed).
//
// It also writes gen/protogen.sum: the tool versions and the SHA-256 of
// every input (proto/) and output (generated .go) file. The test of this
// package recomputes it, so `go test ./tools/protogen/` fails when a
// .proto file, the buf configuration, a pinned plugin version in go.mod or
// a generated file changed without regenerating — without running buf.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BufVersion is the pinned version of github.com/bufbuild/buf.
const BufVersion = "v1.75.0"

// Module paths of the pinned tools and plugins.
const (
	bufPackage          = "github.com/bufbuild/buf/cmd/buf"
	protobufModule      = "google.golang.org/protobuf"
	protocGenGoPackage  = "google.golang.org/protobuf/cmd/protoc-gen-go"
	connectModule       = "connectrpc.com/connect"
	protocGenConnectPkg = "connectrpc.com/connect/cmd/protoc-gen-connect-go"
)

// Layout, relative to the module root.
const (
	protoDir = "proto"
	genDir   = "gen"
	sumFile  = "gen/protogen.sum"
	template = "proto/buf.gen.yaml"
)

func main() {
	check := flag.Bool("check", false, "regenerate into a temporary directory and report differences from gen/ instead of writing")
	verbose := flag.Bool("v", false, "print the commands run")
	flag.Parse()
	if err := run(*check, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
}

func run(check, verbose bool) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	vers, err := pinnedVersions(root)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "protogen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	if err := buildTools(root, bin, verbose); err != nil {
		return err
	}
	out, err := generate(root, tmp, bin, verbose)
	if err != nil {
		return err
	}
	sum, err := computeSum(vers, root, out)
	if err != nil {
		return err
	}
	if check {
		return compare(root, out, sum)
	}
	return install(root, out, sum)
}

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: run from the repository")
	}
	return filepath.Dir(gomod), nil
}

// Versions are the pinned tool versions recorded in protogen.sum.
type Versions struct {
	Buf, ProtocGenGo, ProtocGenConnectGo string
}

// pinnedVersions reads the plugin versions from the module's go.mod.
func pinnedVersions(root string) (Versions, error) {
	v := Versions{Buf: BufVersion}
	for _, m := range []struct {
		mod string
		dst *string
	}{{protobufModule, &v.ProtocGenGo}, {connectModule, &v.ProtocGenConnectGo}} {
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", m.mod)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			return v, fmt.Errorf("go list -m %s (is it required in go.mod?): %w: %s", m.mod, err, strings.TrimSpace(stderr.String()))
		}
		*m.dst = strings.TrimSpace(string(b))
	}
	return v, nil
}

func runCmd(cmd *exec.Cmd, verbose bool) error {
	if verbose {
		fmt.Fprintf(os.Stderr, "+ (cd %s && %s)\n", cmd.Dir, strings.Join(cmd.Args, " "))
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
	if verbose && out.Len() > 0 {
		os.Stderr.Write(out.Bytes())
	}
	return nil
}

// withoutModfile returns env with any -modfile flag removed from GOFLAGS
// (`go install pkg@version` ignores the current module and refuses it).
func withoutModfile(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "GOFLAGS="); ok {
			var keep []string
			for _, f := range strings.Fields(v) {
				if !strings.HasPrefix(f, "-modfile") {
					keep = append(keep, f)
				}
			}
			e = "GOFLAGS=" + strings.Join(keep, " ")
		}
		out = append(out, e)
	}
	return out
}

// buildTools builds buf (pinned by BufVersion) and the two plugins (pinned
// by go.mod) into bin.
func buildTools(root, bin string, verbose bool) error {
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	for _, pkg := range []string{protocGenGoPackage, protocGenConnectPkg} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, filepath.Base(pkg)+exe()), pkg)
		cmd.Dir = root
		if err := runCmd(cmd, verbose); err != nil {
			return err
		}
	}
	cmd := exec.Command("go", "install", bufPackage+"@"+BufVersion)
	cmd.Dir = bin
	cmd.Env = append(withoutModfile(os.Environ()), "GOBIN="+bin)
	if err := runCmd(cmd, verbose); err != nil {
		return err
	}
	// Belt and braces: the binary must report the pinned version.
	b, err := exec.Command(filepath.Join(bin, "buf"+exe()), "--version").Output()
	if err != nil {
		return fmt.Errorf("buf --version: %w", err)
	}
	if got := "v" + strings.TrimSpace(string(b)); got != BufVersion {
		return fmt.Errorf("built buf reports %s, want %s", got, BufVersion)
	}
	return nil
}

func exe() string {
	if os.PathSeparator == '\\' {
		return ".exe"
	}
	return ""
}

// generate runs buf in a scratch workspace holding a copy of proto/ and
// returns the directory the generated gen/ tree was written to.
func generate(root, tmp, bin string, verbose bool) (string, error) {
	ws := filepath.Join(tmp, "ws")
	if err := copyTree(filepath.Join(root, protoDir), filepath.Join(ws, protoDir)); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(ws, genDir), 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(bin, "buf"+exe()), "generate", protoDir, "--template", template)
	cmd.Dir = ws
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PATH=") {
			env = append(env, e)
		}
	}
	// Keep buf's cache out of the user's home: nothing is fetched, and
	// a fresh cache makes the run independent of earlier ones.
	cmd.Env = append(env, "BUF_CACHE_DIR="+filepath.Join(tmp, "bufcache"))
	if err := runCmd(cmd, verbose); err != nil {
		return "", err
	}
	return filepath.Join(ws, genDir), nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		t := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(t, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(t, b, 0o644)
	})
}

// install replaces the generated files under root/gen with those in out
// and writes the sum file.
func install(root, out string, sum []byte) error {
	old, err := generatedFiles(filepath.Join(root, genDir))
	if err != nil {
		return err
	}
	for _, rel := range old {
		if err := os.Remove(filepath.Join(root, genDir, rel)); err != nil {
			return err
		}
	}
	fresh, err := generatedFiles(out)
	if err != nil {
		return err
	}
	if len(fresh) == 0 {
		return errors.New("buf generated no files")
	}
	for _, rel := range fresh {
		b, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			return err
		}
		t := filepath.Join(root, genDir, rel)
		if err := os.MkdirAll(filepath.Dir(t), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(t, b, 0o644); err != nil {
			return err
		}
	}
	removeEmptyDirs(filepath.Join(root, genDir))
	return os.WriteFile(filepath.Join(root, sumFile), sum, 0o644)
}

// removeEmptyDirs removes directories under dir left empty by install.
func removeEmptyDirs(dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != dir {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i]) // fails, harmlessly, unless empty
	}
}

// compare reports every difference between out and root/gen.
func compare(root, out string, sum []byte) error {
	want, err := generatedFiles(out)
	if err != nil {
		return err
	}
	have, err := generatedFiles(filepath.Join(root, genDir))
	if err != nil {
		return err
	}
	var diffs []string
	inWant := map[string]bool{}
	for _, rel := range want {
		inWant[rel] = true
		a, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(root, genDir, rel))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			diffs = append(diffs, "missing "+filepath.ToSlash(filepath.Join(genDir, rel)))
		case err != nil:
			return err
		case !bytes.Equal(a, b):
			diffs = append(diffs, "differs "+filepath.ToSlash(filepath.Join(genDir, rel)))
		}
	}
	for _, rel := range have {
		if !inWant[rel] {
			diffs = append(diffs, "stale   "+filepath.ToSlash(filepath.Join(genDir, rel)))
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, sumFile)); err != nil || !bytes.Equal(b, sum) {
		diffs = append(diffs, "differs "+sumFile)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("gen/ is out of date; run `go run ./tools/protogen`:\n  %s", strings.Join(diffs, "\n  "))
	}
	fmt.Println("protogen: gen/ is up to date")
	return nil
}
