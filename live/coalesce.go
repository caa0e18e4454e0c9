package live

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// coalescer sits between a WebSocket and its network connection so that
// the frames of one batch leave in one write system call: coder/websocket
// flushes its buffer after every message, which on a busy connection costs
// one system call per broadcast.
//
// While held, writes are appended to buf; flush sends them at once. Writes
// made while not held (close frames, pongs) go straight through.
type coalescer struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	buf     []byte
}

func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *coalescer) hold() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// flush writes what was held, within timeout, and stops holding.
func (c *coalescer) flush(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	if len(c.buf) == 0 {
		return nil
	}
	if timeout > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	_, err := c.Conn.Write(c.buf)
	if timeout > 0 {
		c.Conn.SetWriteDeadline(time.Time{})
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: %d bytes not written within %v", errWriteTimeout, len(c.buf), timeout)
	}
	if cap(c.buf) > maxHeldBuffer {
		c.buf = nil // an idle connection keeps no large buffer
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// errWriteTimeout is the error of a flush that the client did not take in
// time: a slow consumer.
var errWriteTimeout = errors.New("write timed out")

// maxHeldBuffer is the largest write buffer a connection keeps between
// batches; the write loop also stops a batch once it holds this much.
const maxHeldBuffer = 64 << 10

// hijackWriter hands websocket.Accept a connection wrapped in a coalescer.
type hijackWriter struct {
	http.ResponseWriter
	conn *coalescer
}

// WriteHeaderNow sends the status the wrapped writer holds back, if it
// is one that does (gin's): websocket.Accept calls it after the 101,
// which has no body to send it with.
func (w *hijackWriter) WriteHeaderNow() {
	if h, ok := w.ResponseWriter.(interface{ WriteHeaderNow() }); ok {
		h.WriteHeaderNow()
	}
}

// Unwrap gives http.ResponseController the wrapped writer.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The server's read and write timeouts, meant for HTTP requests, would
	// cut the WebSocket: its liveness is the router's pings, and its writes
	// have their own deadline.
	if err := nc.SetDeadline(time.Time{}); err != nil {
		nc.Close()
		return nil, nil, err
	}
	w.conn = &coalescer{Conn: nc}
	// Small buffers save an idle connection 7 KiB of net/http's 4 KiB
	// ones: the coalescer buffers what is written, and client frames are
	// small. net/http's reader is kept if the client already sent more
	// than the request.
	r := brw.Reader
	if r.Buffered() == 0 {
		r = bufio.NewReaderSize(nc, 512)
	}
	return w.conn, bufio.NewReadWriter(r, bufio.NewWriterSize(w.conn, 512)), nil
}
