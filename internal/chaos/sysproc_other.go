//go:build !linux

package chaos

import (
	"os"
	"syscall"
)

// sysProcAttr: no parent-death signal outside Linux.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// freezeSignals: freezing is only implemented on Linux (nil, nil).
func freezeSignals() (stop, cont os.Signal) { return nil, nil }
