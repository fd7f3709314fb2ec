package chaos

import (
	"os"
	"syscall"
)

// sysProcAttr makes the kernel kill a provider subprocess when the harness
// dies, so no daemon outlives a crashed test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// freezeSignals returns the signals that stop and resume a process
// (Proc.Freeze, Proc.Thaw).
func freezeSignals() (stop, cont os.Signal) {
	return syscall.SIGSTOP, syscall.SIGCONT
}
