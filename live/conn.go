package live

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// Close codes of PROTOCOL.md.
const (
	statusGoingAway       = websocket.StatusGoingAway
	statusUnsupportedData = websocket.StatusUnsupportedData
	statusPolicyViolation = websocket.StatusPolicyViolation
	statusTryAgainLater   = websocket.StatusTryAgainLater
	statusAuthRequired    = websocket.StatusCode(4003)
)

// A frame is one text message to a client: head then tail. Broadcasts share
// their tail between the subscribers of a scope, and each subscription
// keeps its head, so queueing one costs no allocation per subscriber.
type frame struct {
	head, tail []byte
}

// conn is one client's WebSocket. Its read loop (the goroutine of
// ServeHTTP) decodes frames and subscribes; its write loop owns the socket's
// writes; the hub only ever appends to its queue, never blocking.
type conn struct {
	rt      *Router
	ws      *websocket.Conn
	net     *coalescer
	req     *http.Request
	user    any
	userID  string
	ctx     context.Context // cancelled when the connection ends
	cancel  context.CancelFunc
	limiter *rate.Limiter

	// subs is owned by the read loop.
	subs map[string]*subscription

	mu      sync.Mutex
	queue   []frame
	writing bool           // a write loop runs: it drains queue, then stops
	writers sync.WaitGroup // the write loop, waited for when the connection ends
	closed  bool
}

func serveConn(rt *Router, w http.ResponseWriter, r *http.Request) {
	user, userID := rt.cfg.Authenticate(r)
	// Origins are checked here rather than by websocket.Accept so that a
	// refused page gets the protocol's close code instead of an HTTP 403.
	hw := &hijackWriter{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		rt.cfg.Logger.Info("live: websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	log := rt.cfg.Logger.With("remote", r.RemoteAddr)
	if err := checkOrigin(r, rt.cfg.OriginPatterns); err != nil {
		log.Info("live: connection refused", "reason", err)
		ws.Close(statusPolicyViolation, err.Error())
		return
	}
	if rt.cfg.Private && user == nil {
		log.Info("live: connection refused", "reason", "anonymous")
		ws.Close(statusAuthRequired, "authentication required")
		return
	}
	ws.SetReadLimit(rt.cfg.MaxMessageSize)

	// ServeHTTP returns once the connection is set up, so that net/http's
	// goroutine, its stack and its buffers are freed: an idle connection
	// keeps only its own read loop. The request's context would end then;
	// views get one that lasts as long as the connection.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	c := &conn{
		rt: rt, ws: ws, net: hw.conn, req: r.WithContext(ctx), user: user, userID: userID,
		ctx: ctx, cancel: cancel,
		limiter: rate.NewLimiter(rate.Limit(rt.cfg.MessageRate), rt.cfg.MessageBurst),
		subs:    make(map[string]*subscription),
	}
	if !rt.track(c) {
		ws.Close(statusGoingAway, "server shutting down")
		return
	}
	log.Info("live: connected", "user", userID)
	go c.serve(log)
}

// serve reads the connection's frames until it ends, then releases it.
func (c *conn) serve(log *slog.Logger) {
	start := time.Now()
	err := c.readLoop()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.writers.Wait()
	for _, s := range c.subs {
		c.rt.hub.unsubscribe(s)
	}
	c.ws.CloseNow()
	log.Info("live: disconnected", "user", c.userID, "duration", time.Since(start).Round(time.Millisecond), "reason", closeReason(err))
	c.rt.untrack(c)
}

func closeReason(err error) string {
	if s := websocket.CloseStatus(err); s != -1 {
		return s.String()
	}
	if err == nil || errors.Is(err, context.Canceled) {
		return "closed"
	}
	return err.Error()
}

// checkOrigin allows requests without an Origin header (not from a
// browser), pages of the endpoint's own host, and hosts matching patterns.
func checkOrigin(r *http.Request, patterns []string) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil {
		return errors.New("origin refused: unparsable Origin header")
	}
	if strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok {
			return nil
		}
	}
	return errors.New("origin refused: " + u.Host + " is not an allowed origin")
}

func (c *conn) readLoop() error {
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			c.close(statusUnsupportedData, "binary frames are not supported: send JSON text frames")
			return errors.New("binary frame")
		}
		c.handle(data)
	}
}

func (c *conn) handle(data []byte) {
	m, err := decodeMessage(data)
	if err == nil && !c.limiter.Allow() {
		err = Errorf(429, "too many requests: at most %g per second", c.rt.cfg.MessageRate)
	}
	if err == nil {
		if m.unsubscribe {
			err = c.unsubscribe(m)
		} else {
			err = c.subscribe(m)
		}
	}
	if err != nil {
		code, msg := errorCode(err)
		if code == 500 {
			c.rt.cfg.Logger.Error("live: request failed", "remote", c.req.RemoteAddr, "err", err)
		}
		c.send(frame{head: encodeError(m.dialect, m.id, code, msg)})
	}
}

func (c *conn) subscribe(m *message) error {
	key := string(m.id)
	if _, dup := c.subs[key]; dup {
		return Errorf(400, "%s %s is already an active subscription on this connection", m.dialect.idKey(), m.id)
	}
	if len(c.subs) >= c.rt.cfg.MaxSubscriptions {
		return Errorf(429, "too many subscriptions: at most %d per connection", c.rt.cfg.MaxSubscriptions)
	}
	s, err := c.rt.hub.subscribe(c, m)
	if err != nil {
		return err
	}
	c.subs[key] = s
	if m.ack {
		c.send(frame{head: encodeNotice("subscribed", m.dialect, m.id)})
	}
	return nil
}

func (c *conn) unsubscribe(m *message) error {
	key := string(m.id)
	s, ok := c.subs[key]
	if !ok {
		return Errorf(404, "%s %s is not an active subscription on this connection", m.dialect.idKey(), m.id)
	}
	delete(c.subs, key)
	c.rt.hub.unsubscribe(s)
	if m.ack {
		c.send(frame{head: encodeNotice("unsubscribed", m.dialect, m.id)})
	}
	return nil
}

// send queues f for writing and never blocks. A client whose queue is full
// is too slow to keep up and is closed.
func (c *conn) send(f frame) {
	if c.enqueue(f) {
		go c.writeLoop()
	}
}

// enqueue queues f like send, but leaves the start of the write loop to
// the caller: it reports whether the caller must `go c.writeLoop()`. The
// hub starts them once a whole batch is queued, so that each connection
// writes the batch's frames in one system call.
func (c *conn) enqueue(f frame) (start bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if len(c.queue) >= c.rt.cfg.SendQueue {
		go c.close(statusTryAgainLater, "client too slow to keep up")
		return false
	}
	c.queue = append(c.queue, f)
	if c.writing {
		return false
	}
	// The write loop runs only while there is something to write, so an
	// idle connection costs no goroutine for it.
	c.writing = true
	c.writers.Add(1)
	return true
}

// close closes the connection with code. It may be called from any
// goroutine, more than once.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.queue = nil
	c.mu.Unlock()
	c.ws.Close(code, reason)
	c.cancel()
}

// writeLoop writes the queue until it is empty, taking what piled up
// during each write as the next batch, which leaves in one system call.
func (c *conn) writeLoop() {
	defer c.writers.Done()
	var batch []frame
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.closed {
			c.writing = false
			c.queue = nil // an idle connection keeps no queue
			c.mu.Unlock()
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.mu.Unlock()
		if err := c.write(batch); err != nil {
			c.close(statusGoingAway, "write failed")
			return
		}
		clear(batch) // drop references to shared tails
	}
}

func (c *conn) write(batch []frame) error {
	// Frames go to the coalescer's buffer, which never blocks; only its
	// flush writes to the network, under a deadline. A context that cannot
	// be cancelled spares coder/websocket arming a timer per message.
	ctx := context.Background()
	var msg []byte
	for len(batch) > 0 {
		c.net.hold()
		held := 0
		for len(batch) > 0 && held < maxHeldBuffer {
			f := batch[0]
			batch = batch[1:]
			msg = append(append(msg[:0], f.head...), f.tail...)
			if err := c.ws.Write(ctx, websocket.MessageText, msg); err != nil {
				c.net.flush(c.rt.cfg.WriteTimeout)
				return err
			}
			held += len(msg)
		}
		if err := c.net.flush(c.rt.cfg.WriteTimeout); err != nil {
			return err
		}
	}
	return nil
}
