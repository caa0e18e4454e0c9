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
// made while not held (close frames, pongs) go straight through. Every
// write to the network has a deadline (see refresh).
type coalescer struct {
	net.Conn
	timeout time.Duration // WriteTimeout; 0: none

	mu       sync.Mutex
	holding  bool
	buf      *[]byte   // from heldBuffers while holding
	deadline time.Time // the write deadline set last
}

// heldBuffers are the coalescers' buffers: a connection holds one only
// while it writes a batch, so an idle one keeps none.
var heldBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	c.refresh()
	return c.Conn.Write(p)
}

// refresh makes sure a write starting now has at least the timeout to
// finish: it moves the deadline to 1.5 times the timeout from now when
// less than the timeout is left, so that a busy connection sets it once
// in a while rather than twice per batch (setting one costs as much as a
// tenth of the write). A write is cut after between the timeout and 1.5
// times it. Called with mu held.
func (c *coalescer) refresh() {
	if c.timeout <= 0 {
		return
	}
	now := time.Now()
	if c.deadline.Sub(now) >= c.timeout {
		return
	}
	c.deadline = now.Add(c.timeout + c.timeout/2)
	c.Conn.SetWriteDeadline(c.deadline)
}

func (c *coalescer) hold() {
	c.mu.Lock()
	c.holding = true
	if c.buf == nil {
		c.buf = heldBuffers.Get().(*[]byte)
	}
	c.mu.Unlock()
}

// flush writes what was held and stops holding.
func (c *coalescer) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	if c.buf == nil {
		return nil
	}
	buf := *c.buf
	var err error
	if len(buf) > 0 {
		c.refresh()
		_, err = c.Conn.Write(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w: %d bytes not written within %v", errWriteTimeout, len(buf), c.timeout)
		}
	}
	if cap(buf) <= maxHeldBuffer {
		*c.buf = buf[:0]
		heldBuffers.Put(c.buf)
	}
	c.buf = nil
	return err
}

// errWriteTimeout is the error of a flush that the client did not take in
// time: a slow consumer.
var errWriteTimeout = errors.New("write timed out")

// maxHeldBuffer is the largest write buffer kept for another batch; the
// write loop also stops a batch once it holds this much.
const maxHeldBuffer = 64 << 10

// hijackWriter hands websocket.Accept a connection wrapped in a coalescer.
type hijackWriter struct {
	http.ResponseWriter
	timeout time.Duration // of the coalescer's writes
	conn    *coalescer
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
	w.conn = &coalescer{Conn: nc, timeout: w.timeout}
	// Small buffers save an idle connection 7 KiB of net/http's 4 KiB
	// ones: the coalescer buffers what is written, and client frames are
	// small. net/http's reader is kept if the client already sent more
	// than the request.
	r := brw.Reader
	if r.Buffered() == 0 {
		r = bufio.NewReaderSize(nc, 512)
	}
	return w.conn, bufio.NewReadWriter(r, bufio.NewWriterSize(w.conn, hijackWriteBuffer)), nil
}

// hijackWriteBuffer is the size of the writer in front of a WebSocket's
// coalescer, a cost every connection pays for its life. Small is enough:
// coder/websocket writes a frame's header into it and a payload larger
// than what is left straight through, to the coalescer, which buffers the
// batch. (The reader keeps 512 bytes: a client's frame is read whole in
// one call, so one the router refuses as too large is still taken off
// the wire before the close.)
const hijackWriteBuffer = 64
