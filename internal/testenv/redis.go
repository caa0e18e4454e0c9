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

// Redis is a redis-server process of its own for one test, on a free
// loopback port, without persistence: it comes back empty after Stop and
// Start.
type Redis struct {
	*process
	// URL is the server's address for go-redis: redis://127.0.0.1:port/0.
	URL string
}

// StartRedis starts a redis-server, the binary named by
// RESTLIVE_REDIS_SERVER (skipping the test when it is unset, see Need),
// and stops it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := Need(t, "RESTLIVE_REDIS_SERVER")
	port := FreePort(t)
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(),
		"--daemonize", "no", "--protected-mode", "no", "--logfile", "",
	}
	r := &Redis{process: newProcess(t, "redis-server", bin, port, args, pingRedis), URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port)}
	r.Start(t)
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// pingRedis sends PING over a fresh connection and expects +PONG.
func pingRedis(addr string) error {
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
