package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd when the benchmark dies, however
// it dies, so that no child outlives it.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
