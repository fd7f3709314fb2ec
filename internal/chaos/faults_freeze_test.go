package chaos

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procState returns the state letter of a process (Linux /proc).
func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ...
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

// waitState waits until the process is in one of the states.
func waitState(t *testing.T, pid int, states string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := procState(t, pid)
		if strings.Contains(states, st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d in state %s, want one of %s", pid, st, states)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProcFreeze: Freeze stops the process (SIGSTOP), Thaw resumes it,
// and Stop ends a frozen process without waiting out its grace period.
func TestProcFreeze(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("freezing is implemented on Linux")
	}
	p := &Proc{Name: "sleeper", Bin: "sleep", Args: []string{"60"}, LogPath: filepath.Join(t.TempDir(), "sleeper.log")}
	if err := p.Thaw(); err != nil {
		t.Fatalf("Thaw of a process never started: %v", err)
	}
	if err := p.Freeze(); err == nil {
		t.Fatal("Freeze of a process never started succeeded")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	pid := p.cmd.Process.Pid
	waitState(t, pid, "S")
	if err := p.Freeze(); err != nil {
		t.Fatal(err)
	}
	waitState(t, pid, "T")
	if !p.Running() {
		t.Fatal("a frozen process is not running")
	}
	if err := p.Thaw(); err != nil {
		t.Fatal(err)
	}
	waitState(t, pid, "SR")

	if err := p.Freeze(); err != nil {
		t.Fatal(err)
	}
	waitState(t, pid, "T")
	began := time.Now()
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("Stop of a frozen process took %s: SIGTERM was not acted on", d)
	}
	if exited, err := p.Exited(); !exited || err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Fatalf("after Stop: exited=%v %v, want terminated by SIGTERM", exited, err)
	}
}
