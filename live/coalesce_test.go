package live

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// countingConn counts the writes that reach the network, and the write
// deadlines set.
type countingConn struct {
	net.Conn
	writes, deadlines int
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.deadlines++
	return c.Conn.SetWriteDeadline(t)
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes++
	return c.Conn.Write(p)
}

func TestCoalescerBatchesWrites(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	counted := &countingConn{Conn: server}
	c := &coalescer{Conn: counted, timeout: time.Minute}
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
	if err := c.flush(); err != nil {
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

// TestCoalescerDeadline: a busy connection sets its write deadline once,
// not per batch, and a peer that stops reading fails a flush with
// errWriteTimeout.
func TestCoalescerDeadline(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	defer server.Close()
	counted := &countingConn{Conn: server}
	c := &coalescer{Conn: counted, timeout: time.Minute}
	go io.Copy(io.Discard, client)
	for range 10 {
		c.hold()
		if _, err := c.Write([]byte("frame")); err != nil {
			t.Fatal(err)
		}
		if err := c.flush(); err != nil {
			t.Fatal(err)
		}
	}
	if counted.deadlines != 1 {
		t.Fatalf("10 batches set the deadline %d times, want 1", counted.deadlines)
	}

	stuck, peer := net.Pipe() // a peer that never reads
	defer stuck.Close()
	defer peer.Close()
	c = &coalescer{Conn: stuck, timeout: 50 * time.Millisecond}
	c.hold()
	if _, err := c.Write([]byte("frame")); err != nil {
		t.Fatal(err)
	}
	if err := c.flush(); !errors.Is(err, errWriteTimeout) {
		t.Fatalf("flush to a peer that does not read: %v, want errWriteTimeout", err)
	}
}
