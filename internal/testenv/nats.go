package testenv

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NATS is a nats-server process of its own for one test, on a free
// loopback port. The binary is built from the server's Go module by
// ./test.sh (go install github.com/nats-io/nats-server/v2), so that the
// server is no requirement of this module: an application that uses the
// NATS layer never has it in its module graph.
type NATS struct {
	*process
	// URL is the server's client URL: nats://127.0.0.1:port.
	URL string
}

// StartNATS starts a nats-server, the binary named by
// RESTLIVE_NATS_SERVER (skipping the test when it is unset, see Need),
// and stops it when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	bin := Need(t, "RESTLIVE_NATS_SERVER")
	port := FreePort(t)
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
	n := &NATS{process: newProcess(t, "nats-server", bin, port, args, infoNATS), URL: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	n.Start(t)
	t.Cleanup(func() { n.Stop(t) })
	return n
}

// infoNATS expects the INFO line a NATS server greets a client with.
func infoNATS(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "INFO ") {
		return fmt.Errorf("greeted with %q", strings.TrimSpace(line))
	}
	return nil
}
