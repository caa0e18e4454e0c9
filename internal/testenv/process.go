package testenv

import (
	"bytes"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is a server process of one test on a loopback port: Stop and
// Start simulate an outage, the server coming back on the same port;
// Pause and Resume a network partition.
type process struct {
	name string // for messages: "redis-server"
	// Addr is host:port.
	Addr string

	bin   string
	args  []string
	ready func(addr string) error // nil once the server answers

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	output *bytes.Buffer
}

func newProcess(t testing.TB, name, bin string, port int, args []string, ready func(string) error) *process {
	return &process{
		name: name, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		bin: bin, args: args, ready: ready,
	}
}

// Start starts the server again after Stop, on the same port, and returns
// when it answers.
func (p *process) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		t.Fatalf("testenv: %s on %s is already running", p.name, p.Addr)
	}
	out := new(bytes.Buffer)
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", p.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited, p.output = cmd, exited, out
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := p.ready(p.Addr); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("testenv: %s on %s does not answer: %v\n%s", p.name, p.Addr, err, out)
		}
		select {
		case <-exited:
			p.cmd = nil
			t.Fatalf("testenv: %s on %s exited at start:\n%s", p.name, p.Addr, out)
		case <-time.After(20 * time.Millisecond):
			// Polling is how one learns that another process listens.
		}
	}
}

// Stop kills the server, as a crash would, and waits until it is gone.
// Stopping a stopped server does nothing.
func (p *process) Stop(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill() // also ends a paused server
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("testenv: %s on %s does not exit", p.name, p.Addr)
	}
	p.cmd = nil
}

// Restart stops and starts the server.
func (p *process) Restart(t testing.TB) {
	t.Helper()
	p.Stop(t)
	p.Start(t)
}

// Pause stops the server process without closing its connections
// (SIGSTOP): to its clients it falls silent, as behind a network
// partition. Resume continues it.
func (p *process) Pause(t testing.TB) { p.signal(t, syscall.SIGSTOP) }

// Resume continues a paused server.
func (p *process) Resume(t testing.TB) { p.signal(t, syscall.SIGCONT) }

func (p *process) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		t.Fatalf("testenv: %s on %s is not running", p.name, p.Addr)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("testenv: signal %s: %v", p.name, err)
	}
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
