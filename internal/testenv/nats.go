package testenv

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is a NATS server embedded in the test process, on a random loopback
// port. Stop and Start simulate an outage: the server comes back on the
// same port.
type NATS struct {
	// URL is the server's client URL: nats://127.0.0.1:port.
	URL string

	mu   sync.Mutex
	port int
	srv  *server.Server
}

// StartNATS starts a NATS server and shuts it down when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{port: -1}
	n.Start(t)
	t.Cleanup(func() { n.Stop(t) })
	return n
}

// Start starts the server, again after Stop on the same port, and returns
// when it accepts connections.
func (n *NATS) Start(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		t.Fatalf("testenv: NATS on %s is already running", n.URL)
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: n.port,
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("testenv: NATS server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatalf("testenv: NATS server on port %d not ready", n.port)
	}
	n.srv = srv
	n.port = srv.Addr().(*net.TCPAddr).Port
	n.URL = srv.ClientURL()
}

// Stop shuts the server down and waits until it is gone. Stopping a
// stopped server does nothing.
func (n *NATS) Stop(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Restart stops and starts the server.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.Stop(t)
	n.Start(t)
}
