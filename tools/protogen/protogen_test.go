package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedUpToDate fails when proto/ (the .proto sources or the buf
// configuration), the plugin versions go.mod pins, BufVersion or a
// generated file under gen/ changed since `go run ./tools/protogen` last
// ran. It only hashes files, so it is cheap enough for every CI run.
func TestGeneratedUpToDate(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	vers, err := pinnedVersions(root)
	if err != nil {
		t.Fatal(err)
	}
	want, err := computeSum(vers, root, filepath.Join(root, genDir))
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(filepath.Join(root, sumFile))
	if err != nil {
		t.Fatalf("%v: run `go run ./tools/protogen`", err)
	}
	if string(have) == string(want) {
		return
	}
	haveLines := map[string]bool{}
	for _, l := range strings.Split(string(have), "\n") {
		haveLines[l] = true
	}
	wantLines := map[string]bool{}
	for _, l := range strings.Split(string(want), "\n") {
		wantLines[l] = true
	}
	var diff []string
	for _, l := range strings.Split(string(have), "\n") {
		if !wantLines[l] {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range strings.Split(string(want), "\n") {
		if !haveLines[l] {
			diff = append(diff, "+ "+l)
		}
	}
	t.Fatalf("%s is stale (proto sources, tool versions or generated code changed); run `go run ./tools/protogen`:\n%s",
		sumFile, strings.Join(diff, "\n"))
}

// TestSumDetectsChanges checks that the sum changes with each input kind.
func TestSumDetectsChanges(t *testing.T) {
	root := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proto/a/v1/a.proto", "syntax = \"proto3\";")
	write("proto/buf.yaml", "version: v2")
	write("gen/a/v1/a.pb.go", "package a")
	write("gen/a/v1/doc.go", "package a") // not generated: not hashed
	v := Versions{Buf: "v1", ProtocGenGo: "v2", ProtocGenConnectGo: "v3"}
	sum := func(v Versions) string {
		b, err := computeSum(v, root, filepath.Join(root, "gen"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	base := sum(v)
	for _, l := range []string{"in  ", "proto/a/v1/a.proto", "proto/buf.yaml", "out ", "gen/a/v1/a.pb.go", "tool protoc-gen-go v2"} {
		if !strings.Contains(base, l) {
			t.Errorf("sum lacks %q:\n%s", l, base)
		}
	}
	if strings.Contains(base, "doc.go") {
		t.Errorf("sum hashes a hand-written file:\n%s", base)
	}
	cases := []struct {
		name   string
		change func() string
	}{
		{"proto edited", func() string { write("proto/a/v1/a.proto", "syntax = \"proto3\"; // x"); return sum(v) }},
		{"proto added", func() string { write("proto/a/v1/b.proto", "x"); return sum(v) }},
		{"config edited", func() string { write("proto/buf.yaml", "version: v2\n"); return sum(v) }},
		{"output edited", func() string { write("gen/a/v1/a.pb.go", "package a // edited"); return sum(v) }},
		{"plugin bumped", func() string { v2 := v; v2.ProtocGenConnectGo = "v4"; return sum(v2) }},
	}
	prev := base
	for _, c := range cases {
		got := c.change()
		if got == prev {
			t.Errorf("%s: sum unchanged", c.name)
		}
		prev = got
	}
}

func TestWithoutModfile(t *testing.T) {
	got := withoutModfile([]string{"A=1", "GOFLAGS=-buildvcs=false -modfile=/x/go.mod -mod=mod"})
	if got[0] != "A=1" || got[1] != "GOFLAGS=-buildvcs=false -mod=mod" {
		t.Fatalf("got %q", got)
	}
}
