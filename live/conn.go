package live

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
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
	statusInternalError   = websocket.StatusInternalError
	statusTryAgainLater   = websocket.StatusTryAgainLater
	// statusSessionEnded asks the client to reconnect, authenticating
	// again: its user's sessions were ended (Router.Disconnect).
	statusSessionEnded = websocket.StatusCode(4001)
	statusAuthRequired = websocket.StatusCode(4003)
)

// A frame is one text message to a client: head, mid, then tail. Broadcasts
// share their tail between the subscribers of a scope, and their mid (the
// offset) between those of a round; each subscription keeps its head, so
// queueing one costs no allocation per subscriber. A snapshot frame holds
// items, the instances, written between head and tail with commas: they
// are the group's members' interned bytes, shared too.
type frame struct {
	head, mid, tail []byte
	items           []string
}

func (f *frame) size() int {
	n := len(f.head) + len(f.mid) + len(f.tail)
	for _, it := range f.items {
		n += len(it) + 1
	}
	return n
}

func (f *frame) appendTo(b []byte) []byte {
	b = append(b, f.head...)
	b = append(b, f.mid...)
	for i, it := range f.items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, f.tail...)
}

// conn is one client's WebSocket. Its read loop (the goroutine of serve)
// decodes frames and subscribes; its write loop owns the socket's writes
// and runs only while there is something to write; the hub only ever
// appends to its queue, never blocking.
type conn struct {
	rt      *Router
	ws      *websocket.Conn
	net     *coalescer
	req     *http.Request
	user    any
	userID  string
	addr    string
	ctx     context.Context // cancelled when the connection ends
	cancel  context.CancelFunc
	limiter *rate.Limiter

	subsMu sync.Mutex
	subs   map[string]*subscription // by request id
	scopes map[*group]int           // subscriptions per distinct scope

	mu      sync.Mutex
	queue   []frame
	queued  int            // bytes in queue
	writing bool           // a write loop runs: it drains queue, then stops
	writers sync.WaitGroup // the write loops, waited for when the connection ends
	closed  bool
	reason  CloseReason    // why the server closed it
	detail  string         // and what the log tells of it
	closers sync.WaitGroup // the close handshake under way

	timers sync.Mutex // guards pinger and auther against the end
	pinger *time.Timer
	auther *time.Timer
	ended  bool
}

func serveConn(rt *Router, w http.ResponseWriter, r *http.Request) {
	log := rt.cfg.Logger.With("remote", r.RemoteAddr)
	// Refusals are made after the upgrade, so that a browser sees the
	// protocol's close code and reason rather than a failed handshake.
	hw := &hijackWriter{ResponseWriter: w, timeout: rt.cfg.WriteTimeout}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // origins are checked below, with a close code
		Subprotocols:       []string{Subprotocol},
	})
	if err != nil {
		log.Info("live: websocket upgrade failed", "err", err)
		return
	}
	refuse := func(code websocket.StatusCode, text string, reason CloseReason, detail string) {
		log.Info("live: connection refused", "reason", reason, "detail", detail)
		rt.observe(Event{Kind: EventRefused, Reason: reason})
		ws.Close(code, text)
	}
	if err := checkOrigin(r, rt.cfg.OriginPatterns); err != nil {
		refuse(statusPolicyViolation, err.Error(), ReasonOrigin, err.Error())
		return
	}
	id, err := rt.cfg.Authenticate(r)
	if err != nil {
		if code, msg := errorCode(err); code == 401 || code == 403 {
			refuse(statusAuthRequired, msg, ReasonAuth, msg)
		} else {
			log.Error("live: authenticate", "err", err)
			refuse(statusInternalError, "internal error", ReasonError, "authenticate failed")
		}
		return
	}
	if rt.cfg.Private && id.User == nil {
		refuse(statusAuthRequired, "authentication required", ReasonAuth, "anonymous")
		return
	}
	ws.SetReadLimit(rt.cfg.MaxMessageSize)

	// ServeHTTP returns once the connection is set up, so that net/http's
	// goroutine, its stack and its buffers are freed: an idle connection
	// keeps only its own read loop. The request's context would end then;
	// views get one that lasts as long as the connection.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	c := &conn{
		rt: rt, ws: ws, net: hw.conn, req: r.WithContext(ctx), user: id.User, userID: id.ID,
		addr: rt.cfg.ClientAddress(r), ctx: ctx, cancel: cancel,
		limiter: newLimiter(rt.cfg.MessageRate, rt.cfg.MessageBurst),
		subs:    make(map[string]*subscription), scopes: make(map[*group]int),
	}
	if id.User == nil {
		c.userID = ""
	}
	if err := rt.admit(c); err != nil {
		code, reason := statusTryAgainLater, ReasonLimit
		if errors.Is(err, errShuttingDown) {
			code, reason = statusGoingAway, ReasonShutdown
		}
		cancel()
		refuse(code, err.Error(), reason, err.Error())
		return
	}
	if c.userID != "" {
		// Router.Disconnect of this user in any process reaches here.
		recv, err := rt.hub.receiver(ctx)
		if err == nil {
			err = recv.Join(ctx, sessionTopic(c.userID))
		}
		if err != nil {
			log.Warn("live: join the user's session topic", "user", c.userID, "err", err)
		}
	}
	log.Info("live: connected", "user", c.userID)
	rt.observe(Event{Kind: EventConnected})
	c.arm(id.Expires)
	go c.serve()
}

// logger returns the router's logger naming the connection's peer. It is
// made for each message, which are few, rather than kept: a logger made
// With an attribute costs every connection 0.14 KiB.
func (c *conn) logger() *slog.Logger {
	return c.rt.cfg.Logger.With("remote", c.req.RemoteAddr)
}

// newLimiter returns the limiter of a connection's frames; a negative rate
// is no limit.
func newLimiter(r float64, burst int) *rate.Limiter {
	if r < 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(r), burst)
}

// Subprotocol is the WebSocket subprotocol the router selects when a
// client offers it. A browser cannot set an Authorization header on a
// WebSocket, so a client with a token offers "restlive" and
// "restlive.token.<token>"; TokenFromRequest reads it for Authenticate.
const Subprotocol = "restlive"

// TokenFromRequest returns the token a client offered as the subprotocol
// "restlive.token.<token>" of a WebSocket upgrade request, or "".
func TokenFromRequest(r *http.Request) string {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(p), Subprotocol+".token."); ok {
				return t
			}
		}
	}
	return ""
}

// serve reads the connection's frames until it ends, then releases it.
func (c *conn) serve() {
	start := time.Now()
	err := c.readLoop()
	c.mu.Lock()
	c.closed = true
	reason, detail := c.reason, c.detail
	c.mu.Unlock()
	c.disarm()
	c.closers.Wait() // the close frame leaves before the socket closes
	c.cancel()
	c.writers.Wait()
	c.subsMu.Lock()
	subs := make([]*subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	clear(c.subs)
	c.subsMu.Unlock()
	for _, s := range subs {
		c.rt.hub.unsubscribe(s)
	}
	if c.userID != "" {
		c.rt.hub.leave([]Topic{sessionTopic(c.userID)})
	}
	c.ws.CloseNow()
	if reason == "" {
		reason, detail = closeReason(err)
	}
	c.logger().Info("live: disconnected", "user", c.userID, "duration", time.Since(start).Round(time.Millisecond), "reason", reason, "detail", detail)
	c.rt.observe(Event{Kind: EventDisconnected, Reason: reason})
	c.rt.release(c)
}

// closeReason tells why a connection the server did not close ended.
func closeReason(err error) (CloseReason, string) {
	switch s := websocket.CloseStatus(err); {
	case s == websocket.StatusMessageTooBig:
		return ReasonProtocol, "frame too large"
	case s != -1:
		return ReasonClient, s.String()
	case err == nil || errors.Is(err, context.Canceled):
		return ReasonClient, "closed"
	}
	return ReasonClient, err.Error()
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

// readLoop reads frames until the connection ends, and hands each to a
// goroutine of its own to handle, waiting for it: frames are handled one
// at a time, in order. The read loop lives as long as the connection, and
// a goroutine's stack does not shrink while it uses more than a quarter
// of it: a subscription's read of its scope (the driver, the view, JSON)
// would grow it to 8 KiB or more and leave it so while the connection
// idles in Read, which needs far less.
//
// Read gets a context that is never cancelled: the connection ends by
// closing its socket, which ends Read, and coder/websocket registers a
// context.AfterFunc per Read on a context that can be (0.4 KiB that an
// idle connection would keep).
func (c *conn) readLoop() error {
	done := make(chan struct{})
	ctx := context.WithoutCancel(c.ctx)
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			c.close(statusUnsupportedData, "binary frames are not supported: send JSON text frames", ReasonProtocol, "binary frame")
			return errors.New("binary frame")
		}
		go func() {
			c.handle(data)
			done <- struct{}{}
		}()
		<-done
	}
}

func (c *conn) limits() limits {
	cfg := &c.rt.cfg
	lim := limits{maxID: cfg.MaxRequestIDSize, maxValue: cfg.MaxValueSize, maxArgs: cfg.MaxArgs}
	for _, v := range []*int{&lim.maxID, &lim.maxValue, &lim.maxArgs} {
		if *v < 0 {
			*v = 1 << 30
		}
	}
	return lim
}

func (c *conn) handle(data []byte) {
	c.rt.observe(Event{Kind: EventFrame})
	// Every frame counts against the rate, malformed ones too: answering
	// them costs as much.
	allowed := c.limiter.Allow()
	m, err := decodeMessage(data, c.limits())
	if !allowed {
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
			c.logger().Error("live: request failed", "model", m.model, "err", err)
		}
		c.rt.observe(Event{Kind: EventFrameRefused, Code: code})
		c.send(frame{head: encodeError(m.dialect, m.id, code, msg)})
	}
}

func (c *conn) subscribe(m *message) error {
	key := string(m.id)
	s := &subscription{conn: c, msg: m}
	c.subsMu.Lock()
	_, dup := c.subs[key]
	n := len(c.subs)
	if !dup && within(n+1, c.rt.cfg.MaxSubscriptions) {
		c.subs[key] = s // reserved: the hub may end s before subscribe returns
	}
	c.subsMu.Unlock()
	if dup {
		return Errorf(400, "%s %s is already an active subscription on this connection", m.dialect.idKey(), m.id)
	}
	if !within(n+1, c.rt.cfg.MaxSubscriptions) {
		return Errorf(429, "too many subscriptions: at most %d per connection", c.rt.cfg.MaxSubscriptions)
	}
	if err := c.rt.hub.subscribe(c, s); err != nil {
		c.forget(s)
		return err
	}
	return nil
}

func (c *conn) unsubscribe(m *message) error {
	key := string(m.id)
	c.subsMu.Lock()
	s, ok := c.subs[key]
	delete(c.subs, key)
	c.subsMu.Unlock()
	if !ok {
		return Errorf(404, "%s %s is not an active subscription on this connection", m.dialect.idKey(), m.id)
	}
	c.rt.hub.unsubscribe(s)
	if m.ack {
		c.send(frame{head: encodeNotice("unsubscribed", m.dialect, m.id)})
	}
	return nil
}

// forget removes s from the connection's subscriptions, if it is there.
func (c *conn) forget(s *subscription) {
	key := string(s.msg.id)
	c.subsMu.Lock()
	if c.subs[key] == s {
		delete(c.subs, key)
	}
	c.subsMu.Unlock()
}

// takeScope counts a subscription to g against the connection's limits
// on distinct scopes and the instances they hold. Called with g.mu held.
func (c *conn) takeScope(g *group) error {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	cfg := &c.rt.cfg
	if c.scopes[g] == 0 {
		if !within(len(c.scopes)+1, cfg.MaxScopes) {
			return Errorf(429, "too many distinct scopes: at most %d per connection", cfg.MaxScopes)
		}
		total := g.size.Load()
		for other := range c.scopes {
			total += other.size.Load()
		}
		if !within(int(total), cfg.MaxInstances) {
			return Errorf(429, "the connection's scopes would hold %d instances: at most %d", total, cfg.MaxInstances)
		}
	}
	c.scopes[g]++
	return nil
}

// releaseScope undoes takeScope.
func (c *conn) releaseScope(g *group) {
	c.subsMu.Lock()
	if c.scopes[g]--; c.scopes[g] <= 0 {
		delete(c.scopes, g)
	}
	c.subsMu.Unlock()
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
// hub starts them once a whole round is queued, so that each connection
// writes the round's frames in one system call.
func (c *conn) enqueue(f frame) (start bool) {
	size := f.size()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	cfg := &c.rt.cfg
	if !within(len(c.queue)+1, cfg.SendQueue) || !within(c.queued+size, cfg.SendQueueBytes) {
		c.closeLocked(statusTryAgainLater, "client too slow to keep up", ReasonSlowConsumer, "send queue full")
		return false
	}
	if c.queue == nil {
		c.queue = *frameQueues.Get().(*[]frame)
	}
	c.queue = append(c.queue, f)
	c.queued += size
	if c.writing {
		return false
	}
	// The write loop runs only while there is something to write, so an
	// idle connection costs no goroutine for it.
	c.writing = true
	c.writers.Add(1)
	return true
}

// close closes the connection with code and text, for reason (and
// detail, for the log). It never blocks: the close handshake runs on its
// own goroutine, after the frame the write loop may be writing. It may be
// called from any goroutine, more than once.
func (c *conn) close(code websocket.StatusCode, text string, reason CloseReason, detail string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, text, reason, detail)
}

func (c *conn) closeLocked(code websocket.StatusCode, text string, reason CloseReason, detail string) {
	if c.closed {
		return
	}
	c.closed, c.reason, c.detail = true, reason, detail
	clear(c.queue) // drop references to shared bytes
	c.queue, c.queued = nil, 0
	c.closers.Add(1)
	go func() {
		defer c.closers.Done()
		// coder/websocket waits up to 10s for a peer that does not read;
		// a server with many clients gives them a second, then drops.
		t := time.AfterFunc(closeTimeout, func() { c.net.Conn.Close() })
		c.ws.Close(code, text)
		t.Stop()
		c.cancel()
	}()
}

// closeTimeout bounds a close handshake the server starts.
const closeTimeout = time.Second

// drop ends the connection at once, without a close handshake: the peer
// is gone or cannot take a frame.
func (c *conn) drop(reason CloseReason, detail string) {
	c.mu.Lock()
	if !c.closed {
		c.closed, c.reason, c.detail = true, reason, detail
		clear(c.queue)
		c.queue, c.queued = nil, 0
	}
	c.mu.Unlock()
	// The network connection first: a close handshake under way would
	// keep CloseNow from closing it.
	c.net.Conn.Close()
	c.ws.CloseNow()
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
			// An idle connection keeps no queue: both go back to the pool.
			putQueue(c.queue)
			putQueue(batch)
			c.queue = nil
			c.mu.Unlock()
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.queued = 0
		c.mu.Unlock()
		if err := c.write(batch); err != nil {
			reason := ReasonError
			if errors.Is(err, errWriteTimeout) {
				reason = ReasonSlowConsumer
			}
			c.drop(reason, "write: "+err.Error())
			return
		}
		clear(batch) // drop references to shared bytes
	}
}

// frameQueues are the connections' queues and batches: a connection
// holds them only while it writes, so an idle one keeps none.
var frameQueues = sync.Pool{New: func() any { q := make([]frame, 0, 16); return &q }}

// putQueue gives q, emptied, back to frameQueues, unless it is too large
// to keep.
func putQueue(q []frame) {
	if q == nil || cap(q) > 1024 {
		return
	}
	clear(q[:cap(q)]) // no reference to shared bytes stays in the pool
	q = q[:0]
	frameQueues.Put(&q)
}

func (c *conn) write(batch []frame) error {
	// Frames go to the coalescer's buffer, which never blocks; only its
	// flush writes to the network, under a deadline. A context that cannot
	// be cancelled spares coder/websocket arming a timer per message.
	ctx := context.Background()
	var msg []byte
	for len(batch) > 0 {
		c.net.hold()
		held, frames := 0, 0
		for len(batch) > 0 && held < maxHeldBuffer {
			msg = batch[0].appendTo(msg[:0])
			batch = batch[1:]
			if err := c.ws.Write(ctx, websocket.MessageText, msg); err != nil {
				c.net.flush()
				return err
			}
			held += len(msg)
			frames++
		}
		if err := c.net.flush(); err != nil {
			return err
		}
		c.rt.observe(Event{Kind: EventWrite, N: held, Frames: frames})
	}
	return nil
}

// arm starts the connection's timers: the ping, at a random point of the
// first interval so that connections opened together are not pinged
// together, and the authentication again when Reauthenticate or expires
// says.
func (c *conn) arm(expires time.Time) {
	c.timers.Lock()
	defer c.timers.Unlock()
	if d := c.rt.cfg.PingInterval; d > 0 {
		c.pinger = time.AfterFunc(rand.N(d)+d/10, c.ping)
	}
	c.armAuth(expires)
}

// armAuth schedules the next authentication. Called with timers held.
func (c *conn) armAuth(expires time.Time) {
	var d time.Duration
	if re := c.rt.cfg.Reauthenticate; re > 0 {
		d = re
	}
	if !expires.IsZero() {
		if until := time.Until(expires); d == 0 || until < d {
			d = max(until, time.Millisecond)
		}
	}
	if d > 0 {
		c.auther = time.AfterFunc(d, c.reauthenticate)
	}
}

// disarm stops the timers for good.
func (c *conn) disarm() {
	c.timers.Lock()
	defer c.timers.Unlock()
	c.ended = true
	for _, t := range []*time.Timer{c.pinger, c.auther} {
		if t != nil {
			t.Stop()
		}
	}
}

// ping pings the peer and waits for its pong; a peer that does not answer
// in time is taken for dead.
func (c *conn) ping() {
	ctx, cancel := context.WithTimeout(c.ctx, c.rt.cfg.PongTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if c.ctx.Err() != nil {
		return
	}
	if err != nil {
		c.drop(ReasonPingTimeout, "no pong within "+c.rt.cfg.PongTimeout.String())
		return
	}
	c.timers.Lock()
	if !c.ended {
		c.pinger.Reset(c.rt.cfg.PingInterval)
	}
	c.timers.Unlock()
}

// reauthenticate runs Authenticate again on the upgrade request: a
// connection whose credentials no longer name its user is closed.
func (c *conn) reauthenticate() {
	id, err := c.rt.cfg.Authenticate(c.req)
	if c.ctx.Err() != nil {
		return
	}
	if err != nil {
		if code, _ := errorCode(err); code != 401 && code != 403 {
			c.logger().Error("live: authenticate again", "user", c.userID, "err", err)
		}
		c.close(statusAuthRequired, "authentication required", ReasonAuth, "credentials no longer valid")
		return
	}
	if id.User == nil {
		id.ID = ""
	}
	if id.ID != c.userID {
		c.close(statusAuthRequired, "authentication required", ReasonAuth, "credentials now name another user")
		return
	}
	c.timers.Lock()
	if !c.ended {
		c.armAuth(id.Expires)
	}
	c.timers.Unlock()
}
