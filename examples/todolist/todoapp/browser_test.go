package todoapp

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/restlive/restlive/internal/testenv"
)

// TestBrowser runs the page in real headless Chromium (browsertest/test.mjs,
// driven by playwright-core): two pages of one user open the same list; a
// task added and ticked in one appears ticked in the other without a
// reload; an anonymous page on a public list loses its WebSocket, says so,
// reconnects by itself and catches up.
//
// It needs RESTLIVE_CHROMIUM (the browser binary, as ./test.sh sets it)
// and node; it installs playwright-core with npm when it is missing. Set
// SCREENSHOT=/path.png to keep a picture of the page.
func TestBrowser(t *testing.T) {
	t.Parallel()
	// The script reads the browser's path from the same variable.
	testenv.Need(t, "RESTLIVE_CHROMIUM")
	node := need(t, "node")
	dir, err := filepath.Abs(filepath.Join("..", "browsertest"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		npm := need(t, "npm")
		runCommand(t, 5*time.Minute, dir, npm, "install", "--no-audit", "--no-fund")
	}
	s := startSQLite(t)
	out, code := runCommand(t, 3*time.Minute, dir, node, "test.mjs", s.url)
	switch code {
	case 0:
		t.Logf("browser test passed:\n%s", out)
	case 2:
		t.Fatalf("browser test could not run (exit 2):\n%s", out)
	default:
		t.Fatalf("browser test failed (exit %d):\n%s", code, out)
	}
}

// need returns the path of the command name, skipping the test when it is
// missing (failing it under CI, where ./test.sh installs it).
func need(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: run the tests with ./test.sh", name)
		}
		t.Skipf("%s is not installed: run the tests with ./test.sh for this one", name)
	}
	return path
}

// runCommand runs a command in dir for at most timeout, and returns its combined
// output and exit code. On timeout it is sent SIGTERM, then killed if it
// has not exited 10 seconds later. It fails the test if the command
// cannot start.
func runCommand(t *testing.T, timeout time.Duration, dir, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	// SIGTERM lets the script close its browser; WaitDelay bounds how long
	// it may take, and how long its children may hold the output open.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	b, err := cmd.CombinedOutput()
	out := strings.TrimSpace(string(b))
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case ctx.Err() != nil:
		t.Fatalf("%s %s: stopped after %v:\n%s", name, strings.Join(args, " "), timeout, out)
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return out, exit.ExitCode()
	}
	t.Fatalf("%s %s: %v:\n%s", name, strings.Join(args, " "), err, out)
	return "", 0
}
