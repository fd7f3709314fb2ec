package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openmimi/mimi/internal/daemon"
)

// TestServeDevSubprocess builds mimid, runs `serve -dev` as a
// subprocess, waits for /readyz, sends SIGTERM and expects exit status 0.
func TestServeDevSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "mimid")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(tmp, "data", "a")
	cmd := exec.Command(bin, "serve", "-dev", "-domain", "a.example", "-data", data,
		"-listen", "127.0.0.1:0", "-metrics-listen", "127.0.0.1:0", "-log-format", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	}()
	go func() { exited <- cmd.Wait() }()

	// Read the startup summary.
	var metrics, caPath, directory string
	timeout := time.After(60 * time.Second)
	for metrics == "" || caPath == "" || directory == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stdout closed before the startup summary")
			}
			f := strings.Fields(l)
			if len(f) >= 2 {
				switch f[0] {
				case "metrics":
					metrics = strings.TrimSuffix(strings.TrimPrefix(f[1], "http://"), "/metrics")
				case "dev":
					caPath = f[2]
				case "directory":
					directory = f[1]
				}
			}
		case <-timeout:
			t.Fatal("no startup summary")
		}
	}
	if directory != "https://a.example/.well-known/mimi-protocol-directory" {
		t.Fatalf("directory URL %q", directory)
	}
	if _, err := os.Stat(caPath); err != nil || !strings.HasPrefix(caPath, data) {
		t.Fatalf("CA path %q: %v", caPath, err)
	}

	// Wait for readiness.
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get("http://" + metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := drain(lines, "is ready", 10*time.Second); len(got) == 0 || !strings.Contains(got[len(got)-1], "a.example is ready") {
		t.Fatalf("no readiness line on stdout: %q", got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit status %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(stderr.String(), `"msg":"shut down"`) {
		t.Fatalf("no clean shutdown in the logs:\n%s", stderr.String())
	}
}

// drain reads lines until one contains want (or timeout), returning the
// lines read.
func drain(lines <-chan string, want string, timeout time.Duration) []string {
	var got []string
	t := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return got
			}
			got = append(got, l)
			if strings.Contains(l, want) {
				return got
			}
		case <-t:
			return got
		}
	}
}

// TestServeInProcess runs serve in-process until the context ends.
func TestServeInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-dev", "-domain", "b.example", "-data", t.TempDir(),
			"-listen", "127.0.0.1:0", "-metrics-listen", "", "-log-level", "warn"}, pw, &stderr)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "b.example is ready") {
			break
		}
	}
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
}

func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, exitUsage, ""},
		{[]string{"frobnicate"}, exitUsage, ""},
		{[]string{"version"}, exitOK, "mimid "},
		{[]string{"help"}, exitOK, "mimid serve"},
		{[]string{"serve", "-h"}, exitOK, ""},
		{[]string{"serve"}, exitUsage, ""},
		{[]string{"serve", "-domain", "a.example"}, exitUsage, ""},
		{[]string{"serve", "-bogus"}, exitUsage, ""},
		{[]string{"serve", "-domain", "a.example", "-data", "x", "extra"}, exitUsage, ""},
		{[]string{"serve", "-domain", "a.example", "-data", "x", "-log-format", "xml"}, exitUsage, ""},
		{[]string{"serve", "-domain", "a.example", "-data", "x", "-peer", "nonsense"}, exitUsage, ""},
		{[]string{"serve", "-domain", "a.example", "-data", t.TempDir()}, exitUsage, ""}, // no TLS outside dev
		{[]string{"serve", "-config", "/nonexistent/mimid.json"}, exitUsage, ""},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errOut); code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q", tc.args, code, out.String(), errOut.String())
		}
	}
}

// TestConfigPrecedence checks defaults < -config file < flags, and that
// the example configuration parses.
func TestConfigPrecedence(t *testing.T) {
	c, err := parseServe([]string{"-config", "example-config.json"}, io.Discard)
	if err != nil {
		t.Fatalf("example-config.json: %v", err)
	}
	if c.Domain != "hub.example" || c.Raft.NodeID != "hub-1" || len(c.Raft.Peers) != 2 || c.Admin.Listen != "127.0.0.1:7443" ||
		time.Duration(c.ShutdownTimeout) != 15*time.Second || c.LogFormat != "json" || c.Resolve["peer.example"] != "10.0.0.7:8443" ||
		time.Duration(c.Fanout.BackoffCap) != 2*time.Minute || c.Fanout.MaxBatchMessages != 64 {
		t.Fatalf("example: %+v", c)
	}

	c, err = parseServe([]string{
		"-config", "example-config.json",
		"-domain", "other.example", "-metrics-listen", "",
		"-ca", "x.pem", "-ca", "y.pem",
		"-peer", "b.example=127.0.0.1:1",
		"-raft-peer", "n9=10.9.9.9:7400",
		"-system-roots", "-shutdown-timeout", "3s", "-hub-suite", "0x0002",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Domain != "other.example" || c.MetricsListen != "" || c.DataDir != "/var/lib/mimid" {
		t.Fatalf("override: %+v", c)
	}
	if strings.Join(c.TLS.CAFiles, ",") != "x.pem,y.pem" || !c.TLS.SystemRoots {
		t.Fatalf("lists: %v %v", c.TLS.CAFiles, c.TLS.SystemRoots)
	}
	if len(c.Resolve) != 1 || c.Resolve["b.example"] != "127.0.0.1:1" {
		t.Fatalf("resolve: %v", c.Resolve)
	}
	if len(c.Raft.Peers) != 1 || (c.Raft.Peers[0] != daemon.RaftPeer{ID: "n9", Addr: "10.9.9.9:7400"}) {
		t.Fatalf("raft peers: %v", c.Raft.Peers)
	}
	if time.Duration(c.ShutdownTimeout) != 3*time.Second || c.HubCipherSuite != 2 {
		t.Fatalf("timeout/suite: %v %d", c.ShutdownTimeout, c.HubCipherSuite)
	}

	c, err = parseServe([]string{"-dev", "-domain", "a.example", "-data", "d"}, io.Discard)
	if err != nil || c.MetricsListen != DefaultMetricsListen || !c.Dev {
		t.Fatalf("defaults: %v %+v", err, c)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"domain": "a.example", "unknown_field": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseServe([]string{"-config", bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "unknown_field") {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := parseServe([]string{"-shutdown-timeout", "soon"}, io.Discard); err == nil {
		t.Fatal("bad duration accepted")
	}
	if _, err := parseServe([]string{"-h"}, io.Discard); !errors.Is(err, errHelp) {
		t.Fatalf("-h: %v", err)
	}
}
