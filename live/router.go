package live

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config configures a Router. The zero value serves anonymous connections
// from the same origin through a MemoryLayer of the router's own.
type Config struct {
	// Layer delivers the changes captures publish. Defaults to a new
	// MemoryLayer, returned by Router.Layer, which the capture must then
	// publish to.
	Layer Layer
	// Authenticate returns the user the upgrade request is made for, and a
	// string that identifies that user (connections with the same ID share
	// scope checks and serialization), or nil and "" for an anonymous
	// request. It sees the request after the application's middleware.
	// Defaults to treating every connection as anonymous.
	Authenticate func(r *http.Request) (user any, id string)
	// Private refuses anonymous connections with close code 4003.
	Private bool
	// OriginPatterns are the host patterns (path.Match syntax, such as
	// "*.example.com" or "localhost:5173") of the cross-origin pages allowed
	// to connect. A page from the endpoint's own host is always allowed;
	// others are closed with 1008, since cookies would otherwise let any
	// site read a user's data. Defaults to none.
	OriginPatterns []string
	// MaxSubscriptions is how many subscriptions one connection may hold;
	// beyond it a subscribe is answered 429. Defaults to 1,000.
	MaxSubscriptions int
	// MessageRate is how many frames per second a connection may send on
	// average, with bursts of MessageBurst; beyond it a frame is answered
	// 429. Defaults to 100 per second with bursts of 200.
	MessageRate  float64
	MessageBurst int
	// MaxMessageSize is the largest frame a client may send, in bytes;
	// a larger one closes the connection with 1009. Defaults to 64 KiB.
	MaxMessageSize int64
	// SendQueue is how many frames may wait to be written to one
	// connection. A client that lets more pile up is too slow to keep up and
	// is closed with 1013. Defaults to 4,096.
	SendQueue int
	// WriteTimeout bounds the write of a batch of frames to a connection.
	// Defaults to 10 seconds.
	WriteTimeout time.Duration
	// Concurrency is how many scopes the hub checks at once for one batch
	// of changes. Defaults to 8.
	Concurrency int
	// Logger receives connection events and errors. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Layer == nil {
		c.Layer = NewMemoryLayer()
	}
	if c.Authenticate == nil {
		c.Authenticate = func(*http.Request) (any, string) { return nil, "" }
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 1000
	}
	if c.MessageRate <= 0 {
		c.MessageRate = 100
	}
	if c.MessageBurst <= 0 {
		c.MessageBurst = 2 * int(c.MessageRate)
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 64 << 10
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 4096
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// A Router holds the views of the models clients may subscribe to, by
// label, and serves their WebSocket endpoint: it is an http.Handler to
// mount where the application wants it, behind its usual middleware.
//
// Register views before serving. ServeHTTP and Close may be called
// concurrently.
type Router struct {
	cfg   Config
	views map[string]View
	hub   *hub

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	served sync.WaitGroup // the connections' ServeHTTP calls
}

// NewRouter returns a Router with no views.
func NewRouter(cfg Config) *Router {
	cfg.setDefaults()
	rt := &Router{cfg: cfg, views: make(map[string]View), conns: make(map[*conn]struct{})}
	rt.hub = newHub(rt)
	return rt
}

// Register adds views. Like http.ServeMux.Handle, it panics on a definition
// error, which is a programming error to fix before start-up: a view with
// no model label, a label registered twice, or a view whose Check method
// (an optional `Check() error`) fails.
func (rt *Router) Register(views ...View) {
	for _, v := range views {
		if err := rt.register(v); err != nil {
			panic(err)
		}
	}
}

func (rt *Router) register(v View) error {
	if v == nil {
		return errors.New("live: Register: nil view")
	}
	label := v.Model()
	if label == "" {
		return fmt.Errorf("live: Register: view %T has no model label", v)
	}
	if i := strings.IndexByte(label, '.'); i <= 0 || i == len(label)-1 {
		return fmt.Errorf("live: Register: model label %q must have the form app.Model", label)
	}
	if _, dup := rt.views[label]; dup {
		return fmt.Errorf("live: Register: a view for %q is already registered", label)
	}
	if c, ok := v.(interface{ Check() error }); ok {
		if err := c.Check(); err != nil {
			return fmt.Errorf("live: Register %q: %w", label, err)
		}
	}
	rt.views[label] = v
	return nil
}

// Layer returns the layer the router receives changes from.
func (rt *Router) Layer() Layer { return rt.cfg.Layer }

// Close closes every connection with 1001 (going away), waits until their
// ServeHTTP calls have returned, and stops receiving changes. Register it
// with http.Server.RegisterOnShutdown: the server's Shutdown does not close
// hijacked connections such as WebSockets.
func (rt *Router) Close() error {
	rt.mu.Lock()
	rt.closed = true
	conns := make([]*conn, 0, len(rt.conns))
	for c := range rt.conns {
		conns = append(conns, c)
	}
	rt.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.close(statusGoingAway, "server shutting down")
		}()
	}
	wg.Wait()
	rt.served.Wait()
	return rt.hub.close()
}

func (rt *Router) track(c *conn) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return false
	}
	rt.conns[c] = struct{}{}
	rt.served.Add(1)
	return true
}

func (rt *Router) untrack(c *conn) {
	rt.mu.Lock()
	delete(rt.conns, c)
	rt.mu.Unlock()
	rt.served.Done()
}

// ServeHTTP upgrades the request to a WebSocket and serves subscriptions on
// it until the client or the router closes it.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveConn(rt, w, r)
}
