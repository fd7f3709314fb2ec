package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BuildMimid builds the mimid binary (cmd/mimid) of the module containing
// the working directory into dir and returns its path.
func BuildMimid(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("chaos: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("chaos: not inside the module (go env GOMOD is empty)")
	}
	bin := filepath.Join(dir, "mimid")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/mimid")
	cmd.Dir = filepath.Dir(mod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("chaos: go build ./cmd/mimid: %w\n%s", err, stderr.String())
	}
	return bin, nil
}

// Proc is one `mimid serve` subprocess, restartable with the same
// arguments (and so the same data directory and addresses). Its output is
// appended to LogPath.
type Proc struct {
	Name    string
	Bin     string
	Args    []string
	LogPath string
	// Metrics is its /healthz, /readyz and /metrics address.
	Metrics string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	starts  int
	// frozen: stopped by Freeze and not resumed yet.
	frozen bool
}

// Start starts the process; it must not be running.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("chaos: %s is already running", p.Name)
	}
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("chaos: %s log: %w", p.Name, err)
	}
	p.starts++
	fmt.Fprintf(f, "==== chaos: start #%d of %s at %s\n", p.starts, p.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("chaos: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.frozen = cmd, done, false
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.waitErr = err
		if p.cmd == cmd {
			p.cmd, p.frozen = nil, false
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Running reports whether the process is running.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() error {
	return p.signal(syscall.SIGKILL, 0)
}

// Freeze stops the running process with SIGSTOP: it keeps its sockets
// open, so its peers' connections stay established, but it answers
// nothing (no Raft heartbeat, no HTTP response) until Thaw.
func (p *Proc) Freeze() error {
	return p.setFrozen(true)
}

// Thaw resumes a frozen process with SIGCONT; it does nothing if the
// process is not frozen.
func (p *Proc) Thaw() error {
	return p.setFrozen(false)
}

func (p *Proc) setFrozen(frozen bool) error {
	stop, cont := freezeSignals()
	if stop == nil {
		return errors.New("chaos: freezing a process is not supported on this system")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.cmd == nil && frozen:
		return fmt.Errorf("chaos: %s is not running", p.Name)
	case p.cmd == nil || p.frozen == frozen:
		return nil
	}
	sig := cont
	if frozen {
		sig = stop
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("chaos: signal %s: %w", p.Name, err)
	}
	p.frozen = frozen
	return nil
}

// Stop sends SIGTERM (a graceful shutdown) and waits up to grace before
// killing.
func (p *Proc) Stop(grace time.Duration) error {
	return p.signal(syscall.SIGTERM, grace)
}

func (p *Proc) signal(sig syscall.Signal, grace time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("chaos: signal %s: %w", p.Name, err)
	}
	// A frozen process acts on SIGTERM only once resumed.
	if err := p.Thaw(); err != nil {
		return err
	}
	if grace > 0 {
		select {
		case <-done:
			return nil
		case <-time.After(grace):
			_ = cmd.Process.Kill()
		}
	}
	<-done
	return nil
}

// Exited reports whether the process was started and is no longer
// running, with the error of its last wait (for example "signal: killed").
func (p *Proc) Exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd == nil && p.starts > 0, p.waitErr
}

// Ready reports whether the process answers 200 on /readyz.
func Ready(ctx context.Context, metricsAddr string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady waits until the process answers /readyz with 200, fails if it
// exits first.
func (p *Proc) WaitReady(ctx context.Context) error {
	for {
		if Ready(ctx, p.Metrics) {
			return nil
		}
		if !p.Running() {
			_, err := p.Exited()
			return fmt.Errorf("chaos: %s exited before becoming ready: %v (log %s)", p.Name, err, p.LogPath)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: %s not ready: %w (log %s)", p.Name, ctx.Err(), p.LogPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// LogTail returns the last n bytes of the process log.
func (p *Proc) LogTail(n int64) string {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	_, _ = f.ReadAt(b, off)
	return string(b)
}

// portsMu guards portsTaken.
var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{}
)

// freeAddr returns a loopback address that was free a moment ago. Its port
// is drawn below the kernel's ephemeral range (ip_local_port_range), so
// that neither outgoing connections nor other programs' ":0" listeners
// take it while a killed node is down: a restarted node must get its
// addresses back.
func freeAddr() (string, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo > 12000 {
			low = lo
		}
	}
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		port := 10000 + mathrand.IntN(low-10000)
		if portsTaken[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		portsTaken[port] = true
		return ln.Addr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
