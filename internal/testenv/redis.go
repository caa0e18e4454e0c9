package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server process of its own for one test, on a free
// loopback port, without persistence. Stop and Start simulate an outage:
// the server comes back on the same port, empty.
type Redis struct {
	// URL is the server's address for go-redis: redis://127.0.0.1:port/0.
	URL string
	// Addr is host:port.
	Addr string

	bin, dir string
	port     int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	output *bytes.Buffer
}

// StartRedis starts a redis-server, the binary named by
// RESTLIVE_REDIS_SERVER (skipping the test when it is unset, see Need),
// and stops it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := Need(t, "RESTLIVE_REDIS_SERVER")
	port := FreePort(t)
	r := &Redis{
		URL:  fmt.Sprintf("redis://127.0.0.1:%d/0", port),
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		bin:  bin, dir: t.TempDir(), port: port,
	}
	r.Start(t)
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Start starts the server again after Stop, on the same port, and returns
// when it answers PING.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		t.Fatalf("testenv: redis-server on %s is already running", r.Addr)
	}
	out := new(bytes.Buffer)
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir,
		"--daemonize", "no", "--protected-mode", "no", "--logfile", "")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", r.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	r.cmd, r.exited, r.output = cmd, exited, out
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(r.Addr); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("testenv: redis-server on %s does not answer: %v\n%s", r.Addr, err, out)
		}
		select {
		case <-exited:
			r.cmd = nil
			t.Fatalf("testenv: redis-server on %s exited at start:\n%s", r.Addr, out)
		case <-time.After(20 * time.Millisecond):
			// Polling is how one learns that another process listens.
		}
	}
}

// Stop kills the server, as a crash would, and waits until it is gone.
// Stopping a stopped server does nothing.
func (r *Redis) Stop(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill() // also ends a paused server
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("testenv: redis-server on %s does not exit", r.Addr)
	}
	r.cmd = nil
}

// Pause stops the server process without closing its connections
// (SIGSTOP): to its clients it falls silent, as behind a network
// partition. Resume continues it.
func (r *Redis) Pause(t testing.TB) { r.signal(t, syscall.SIGSTOP) }

// Resume continues a paused server.
func (r *Redis) Resume(t testing.TB) { r.signal(t, syscall.SIGCONT) }

func (r *Redis) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		t.Fatalf("testenv: redis-server on %s is not running", r.Addr)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("testenv: signal redis-server: %v", err)
	}
}

// Restart stops and starts the server.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop(t)
	r.Start(t)
}

// ping sends PING over a fresh connection and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
