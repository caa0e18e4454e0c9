// Package livetest helps test applications that serve live.Router
// endpoints: a Communicator connects a WebSocket client to an http.Handler
// in the same process (no port), sends and receives JSON with deadlines, and
// asserts that nothing arrives. It is the Go counterpart of
// django-rest-live's rest_live.testing.
package livetest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Options configure a Communicator. A nil *Options means the defaults.
type Options struct {
	// Header is sent with the upgrade request: authentication headers and
	// cookies (see TokenHeader and CookieHeader). Defaults to none.
	Header http.Header
	// Path is the request path of an in-process connection. Defaults to
	// "/ws/subscribe/".
	Path string
	// Timeout is how long Receive waits. Defaults to 3 seconds.
	Timeout time.Duration
	// Quiet is how long ReceiveNothing listens. Defaults to 100
	// milliseconds.
	Quiet time.Duration
}

// A Communicator is one WebSocket client of a test. Its methods report
// failures through the test's t and must be called from the test's
// goroutine.
type Communicator struct {
	t    testing.TB
	ws   *websocket.Conn
	opts Options
	stop func()

	mu       sync.Mutex
	inbox    []json.RawMessage
	arrived  chan struct{} // signalled when inbox grows or the reader stops
	readErr  error
	finished bool
}

// Connect opens a WebSocket to h in the same process and closes it when
// the test ends. It fails the test if the upgrade fails.
func Connect(t testing.TB, h http.Handler, opts *Options) *Communicator {
	t.Helper()
	o := opts.withDefaults()
	ln := newPipeListener()
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	client := &http.Client{Transport: &http.Transport{DialContext: ln.dial}}
	c := dial(t, "ws://livetest"+o.Path, client, o)
	c.stop = func() { srv.Close(); ln.Close() }
	return c
}

// ConnectURL opens a WebSocket to a real server's ws:// URL and closes it
// when the test ends.
func ConnectURL(t testing.TB, url string, opts *Options) *Communicator {
	t.Helper()
	return dial(t, url, nil, opts.withDefaults())
}

func (o *Options) withDefaults() Options {
	var d Options
	if o != nil {
		d = *o
	}
	if d.Path == "" {
		d.Path = "/ws/subscribe/"
	}
	if d.Timeout <= 0 {
		d.Timeout = 3 * time.Second
	}
	if d.Quiet <= 0 {
		d.Quiet = 100 * time.Millisecond
	}
	return d
}

func dial(t testing.TB, url string, client *http.Client, o Options) *Communicator {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client, HTTPHeader: o.Header})
	if err != nil {
		status := ""
		if resp != nil {
			status = " (HTTP " + resp.Status + ")"
		}
		t.Fatalf("livetest: connect to %s%s: %v", url, status, err)
	}
	ws.SetReadLimit(-1)
	c := &Communicator{t: t, ws: ws, opts: o, arrived: make(chan struct{}, 1), stop: func() {}}
	go c.read()
	t.Cleanup(c.Close)
	return c
}

func (c *Communicator) read() {
	for {
		_, data, err := c.ws.Read(context.Background())
		c.mu.Lock()
		if err != nil {
			c.readErr, c.finished = err, true
		} else {
			c.inbox = append(c.inbox, data)
		}
		c.mu.Unlock()
		select {
		case c.arrived <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// Send sends v as a JSON text frame. A string or []byte is sent as is, so
// tests can send malformed frames.
func (c *Communicator) Send(v any) {
	c.t.Helper()
	var data []byte
	switch v := v.(type) {
	case string:
		data = []byte(v)
	case []byte:
		data = v
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			c.t.Fatalf("livetest: encode %v: %v", v, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
		c.t.Fatalf("livetest: send %s: %v", data, err)
	}
}

// SendBinary sends a binary frame, which the protocol refuses.
func (c *Communicator) SendBinary(data []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, data); err != nil {
		c.t.Fatalf("livetest: send binary: %v", err)
	}
}

// Receive returns the next frame, decoded into a map, failing the test if
// none arrives within the timeout (Options.Timeout).
func (c *Communicator) Receive() map[string]any {
	c.t.Helper()
	var m map[string]any
	c.ReceiveInto(&m)
	return m
}

// ReceiveInto decodes the next frame into v, failing the test if none
// arrives within the timeout.
func (c *Communicator) ReceiveInto(v any) {
	c.t.Helper()
	data, err := c.next(c.opts.Timeout)
	if err != nil {
		c.t.Fatalf("livetest: receive: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		c.t.Fatalf("livetest: decode %s: %v", data, err)
	}
}

// ReceiveNothing fails the test if a frame arrives within Options.Quiet.
func (c *Communicator) ReceiveNothing() {
	c.t.Helper()
	if data, err := c.next(c.opts.Quiet); err == nil {
		c.t.Fatalf("livetest: expected nothing, received %s", data)
	}
}

var errTimeout = errors.New("nothing arrived in time")

func (c *Communicator) next(wait time.Duration) (json.RawMessage, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if len(c.inbox) > 0 {
			data := c.inbox[0]
			c.inbox = c.inbox[1:]
			c.mu.Unlock()
			return data, nil
		}
		finished, err := c.finished, c.readErr
		c.mu.Unlock()
		if finished {
			return nil, err
		}
		select {
		case <-c.arrived:
		case <-deadline.C:
			return nil, errTimeout
		}
	}
}

// CloseStatus waits until the server closes the connection and returns
// the close code it sent (-1 if it sent none), failing the test if the
// connection stays open for the timeout.
func (c *Communicator) CloseStatus() int {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.Timeout)
	for {
		_, err := c.next(time.Until(deadline))
		if errors.Is(err, errTimeout) {
			c.t.Fatalf("livetest: connection still open after %v", c.opts.Timeout)
		}
		if err != nil {
			return int(websocket.CloseStatus(err))
		}
	}
}

// Close disconnects. It is called when the test ends, and may be called
// before.
func (c *Communicator) Close() {
	c.ws.Close(websocket.StatusNormalClosure, "")
	c.stop()
}

// TokenHeader returns the header a token-authenticated user sends:
// "Authorization: <scheme> <token>" (scheme such as "Token" or "Bearer").
func TokenHeader(scheme, token string) http.Header {
	return http.Header{"Authorization": {scheme + " " + token}}
}

// CookieHeader returns the header that carries cookies, such as the
// session cookie a login response set.
func CookieHeader(cookies ...*http.Cookie) http.Header {
	parts := make([]string, len(cookies))
	for i, ck := range cookies {
		parts[i] = (&http.Cookie{Name: ck.Name, Value: ck.Value}).String()
	}
	return http.Header{"Cookie": {strings.Join(parts, "; ")}}
}

// LoginHeader runs a login request against h (the application's handler)
// and returns the headers that make later requests, and WebSocket
// upgrades, act as the user it logged in: the cookies the response set.
// It fails the test unless the response status is 2xx.
func LoginHeader(t testing.TB, h http.Handler, login *http.Request) http.Header {
	t.Helper()
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, login)
	if rec.status != 0 && (rec.status < 200 || rec.status > 299) {
		t.Fatalf("livetest: login %s %s: status %d", login.Method, login.URL, rec.status)
	}
	resp := http.Response{Header: rec.header}
	return CookieHeader(resp.Cookies()...)
}

type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(status int)      { r.status = status }

// pipeListener is a net.Listener whose connections are in-memory pipes,
// so a test server needs no port.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "livetest" }
