package chaos

import "syscall"

// sysProcAttr makes the kernel kill a provider subprocess when the harness
// dies, so no daemon outlives a crashed test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
