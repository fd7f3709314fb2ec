package raftnode_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runAndKill runs the test binary's helper test (a writer that prints
// "ack <id>" for each acknowledged command) with env, hands every acked
// id to onAck (a non-ack line to onLine, if set, which may fail the test),
// and SIGKILLs the process killAfter after the first acknowledgement. It
// fails the test if the helper exits before being killed, or produces no
// acknowledgement within a minute, and returns the number of acks.
func runAndKill(t *testing.T, round int, helper string, env []string, killAfter time.Duration, onAck func(id string), onLine func(line string)) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A failing onAck or onLine must not leave the helper running.
	defer func() { _ = cmd.Process.Kill() }()
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var (
		acks      int
		killTimer <-chan time.Time
		killed    bool
		timeout   = time.After(60 * time.Second)
	)
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			id, found := strings.CutPrefix(l, "ack ")
			if !found {
				if onLine != nil {
					onLine(l)
				}
				continue
			}
			onAck(id)
			acks++
			if killTimer == nil {
				killTimer = time.After(killAfter)
			}
		case <-killTimer:
			killTimer = nil
			if !killed {
				_ = cmd.Process.Kill() // SIGKILL
				killed = true
			}
		case <-timeout:
			_ = cmd.Process.Kill()
			t.Fatalf("round %d: helper produced no kill point in time; stderr:\n%s", round, stderr.String())
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("round %d: helper exited before being killed; stderr:\n%s", round, stderr.String())
	}
	if acks == 0 {
		t.Fatalf("round %d: no acknowledgements", round)
	}
	return acks
}
