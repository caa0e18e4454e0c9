//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing here: a child whose parent died finds its
// stdin closed, and exits.
func dieWithParent(*exec.Cmd) {}
