package live

import (
	"io"
	"net"
	"testing"
	"time"
)

// countingConn counts the writes that reach the network.
type countingConn struct {
	net.Conn
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes++
	return c.Conn.Write(p)
}

func TestCoalescerBatchesWrites(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	counted := &countingConn{Conn: server}
	c := &coalescer{Conn: counted}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()

	c.hold()
	for _, s := range []string{"one ", "two ", "three "} {
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if counted.writes != 0 {
		t.Fatalf("%d writes reached the network while held", counted.writes)
	}
	if err := c.flush(time.Second); err != nil {
		t.Fatal(err)
	}
	if counted.writes != 1 {
		t.Fatalf("flush made %d writes, want 1", counted.writes)
	}
	if _, err := c.Write([]byte("after")); err != nil { // not held: straight through
		t.Fatal(err)
	}
	if counted.writes != 2 {
		t.Fatalf("an unheld write made %d writes in all, want 2", counted.writes)
	}
	server.Close()
	if b := <-got; string(b) != "one two three after" {
		t.Fatalf("peer read %q", b)
	}
}
