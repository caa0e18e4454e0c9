package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// fanout is the ceiling the live server is measured against: a bare
// WebSocket server, in the same process and on the same library, that
// writes the same bytes to every client. No views, no database, no
// per-subscriber queue: each write (POST /write, the number in the body)
// appends one pre-serialized frame, shaped as the live server's
// broadcasts, and a few goroutines, each owning a share of the
// connections, write every new frame to each of theirs. Like the live
// server it sends the frames that piled up for a connection in one system
// call.
type fanout struct {
	addrs []string
	srv   *http.Server
	ln    *multiListener
	ctx   context.Context
	stop  context.CancelFunc

	mu     sync.Mutex
	frames [][]byte

	shards   []*shard
	next     atomic.Uint64 // the shard of the next connection
	shardsWG sync.WaitGroup
	connsWG  sync.WaitGroup
}

type shard struct {
	wake  chan struct{}
	mu    sync.Mutex
	conns []*fanConn
	sent  int // frames written to every connection; the shard's own
}

type fanConn struct {
	ws   *websocket.Conn
	net  *holdConn
	dead atomic.Bool
}

func startFanout(nAddrs int) (*fanout, error) {
	ln, err := listenLoopback(nAddrs)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	f := &fanout{ln: ln, ctx: ctx, stop: stop}
	for _, l := range ln.lns {
		f.addrs = append(f.addrs, l.Addr().String())
	}
	for range 2 * runtime.GOMAXPROCS(0) {
		sh := &shard{wake: make(chan struct{}, 1)}
		f.shards = append(f.shards, sh)
		f.shardsWG.Add(1)
		go f.run(sh)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", f.serveWS)
	mux.HandleFunc("POST /write", f.serveWrite)
	f.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go f.srv.Serve(ln)
	return f, nil
}

func (f *fanout) close() error {
	f.stop()
	err := f.srv.Close() // closes the listener; WebSockets are hijacked
	for _, sh := range f.shards {
		sh.mu.Lock()
		for _, c := range sh.conns {
			c.ws.CloseNow()
		}
		sh.mu.Unlock()
	}
	f.connsWG.Wait()
	f.shardsWG.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// serveWS acknowledges the client's one subscribe frame, then holds the
// connection in a shard until it closes.
func (f *fanout) serveWS(w http.ResponseWriter, r *http.Request) {
	f.connsWG.Add(1)
	defer f.connsWG.Done()
	hw := &holdWriter{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	_, msg, err := ws.Read(f.ctx)
	if err != nil {
		return
	}
	// Joined before the ack, so that every frame of a write made after
	// the ack reaches it.
	c := &fanConn{ws: ws, net: hw.conn}
	sh := f.shards[f.next.Add(1)%uint64(len(f.shards))]
	sh.mu.Lock()
	sh.conns = append(sh.conns, c)
	sh.mu.Unlock()
	rid, _ := intAfter(msg, keyRequestID)
	ack := []byte(`{"type":"subscribed","request_id":` + strconv.Itoa(rid) + `}`)
	if err := ws.Write(f.ctx, websocket.MessageText, ack); err != nil {
		c.dead.Store(true)
		return
	}
	for {
		if _, _, err := ws.Read(f.ctx); err != nil {
			c.dead.Store(true)
			return
		}
	}
}

func (f *fanout) serveWrite(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64))
	seq, ok := intAfter(append([]byte("#"), body...), []byte("#"))
	if err != nil || !ok {
		http.Error(w, "the body must be a number", http.StatusBadRequest)
		return
	}
	frame := []byte(`{"type":"broadcast","request_id":1,"model":"todolist.Task","action":"UPDATED","instance":{"id":1,"text":"#` +
		strconv.Itoa(seq) + `","done":false,"list":1}}`)
	f.mu.Lock()
	f.frames = append(f.frames, frame)
	f.mu.Unlock()
	for _, sh := range f.shards {
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// run writes the frames that are new since its last round to each
// connection of sh, until the server closes.
func (f *fanout) run(sh *shard) {
	defer f.shardsWG.Done()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-sh.wake:
		}
		f.mu.Lock()
		frames := f.frames[sh.sent:]
		f.mu.Unlock()
		sh.mu.Lock()
		conns := sh.conns
		sh.mu.Unlock()
		for _, c := range conns {
			if c.dead.Load() {
				continue
			}
			c.net.hold()
			for _, fr := range frames {
				if err := c.ws.Write(f.ctx, websocket.MessageText, fr); err != nil {
					c.dead.Store(true)
					break
				}
			}
			if err := c.net.flush(); err != nil {
				c.dead.Store(true)
			}
		}
		sh.sent += len(frames)
	}
}

// holdConn lets the frames written between hold and flush leave in one
// system call: the WebSocket library flushes after each message.
type holdConn struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	buf     []byte
}

func (c *holdConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *holdConn) hold() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

func (c *holdConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// holdWriter hands websocket.Accept the hijacked connection wrapped in a
// holdConn.
type holdWriter struct {
	http.ResponseWriter
	conn *holdConn
}

func (w *holdWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &holdConn{Conn: nc}
	return w.conn, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(w.conn, 4096)), nil
}
