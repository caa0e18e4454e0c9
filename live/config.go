package live

import (
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Config configures a Router. The zero value serves anonymous connections
// from the same origin through a MemoryLayer of the router's own, within
// the limits below.
//
// Every limit bounds what one client can make the server hold or do; a
// negative value removes it. PROTOCOL.md lists the codes a client sees.
type Config struct {
	// Layer delivers the changes captures publish. Defaults to a new
	// MemoryLayer, returned by Router.Layer, which the capture must then
	// publish to.
	Layer Layer
	// History lets subscriptions resume from an offset after a reconnect
	// (capture.History). Defaults to none: a client that asks to resume
	// is sent a whole snapshot instead.
	History History

	// Authenticate returns who makes the upgrade request, which it sees
	// after the application's middleware: the zero Identity for an
	// anonymous request. An error refuses the connection: an *Error with
	// code 401 or 403 (a token that names no one, a revoked session)
	// closes it with 4003 and the error's message; any other error with
	// 1011, unexplained. Defaults to treating every connection as
	// anonymous.
	Authenticate func(r *http.Request) (Identity, error)
	// Private refuses anonymous connections with close code 4003: a
	// shorthand for an Authenticate that refuses them.
	Private bool
	// Reauthenticate is how often Authenticate runs again for an open
	// connection, on its upgrade request: one whose credentials no longer
	// name the same user (a logout, an expired or revoked token) is closed
	// with 4003. Defaults to never; Identity.Expires and
	// Router.Disconnect end connections too.
	Reauthenticate time.Duration
	// OriginPatterns are the host patterns (path.Match syntax, such as
	// "*.example.com" or "localhost:5173") of the cross-origin pages allowed
	// to connect. A page from the endpoint's own host is always allowed;
	// others are closed with 1008, since cookies would otherwise let any
	// site read a user's data. Defaults to none.
	OriginPatterns []string

	// MaxConnections is how many connections the router serves at once;
	// beyond it a connection is closed with 1013. Defaults to 100,000.
	MaxConnections int
	// MaxConnectionsPerAddress is how many connections one client address
	// (see ClientAddress) may hold; beyond it, 1013. Behind a proxy, set
	// ClientAddress, or every client shares the proxy's address. Defaults
	// to 256.
	MaxConnectionsPerAddress int
	// MaxConnectionsPerUser is how many connections one authenticated user
	// may hold; beyond it, 1013. Defaults to 64.
	MaxConnectionsPerUser int
	// ClientAddress returns the address connections are counted by.
	// Defaults to the host of the request's RemoteAddr.
	ClientAddress func(r *http.Request) string

	// MaxSubscriptions is how many subscriptions one connection may hold;
	// beyond it a subscribe is answered 429. Defaults to 1,000.
	MaxSubscriptions int
	// MaxScopes is how many distinct scopes (a group as one request sees
	// it: subscriptions that see the same share one) one connection may
	// hold, and MaxUserScopes all the connections of a user together;
	// beyond them, 429. Defaults to 200 and 1,000.
	MaxScopes, MaxUserScopes int
	// MaxScopeInstances is how many instances one scope may hold. A
	// subscribe to a larger one is answered 413; a scope that grows larger
	// ends its subscriptions with an error 413. Defaults to 10,000.
	MaxScopeInstances int
	// MaxInstances is how many instances the distinct scopes of one
	// connection may hold together, counted when a subscription is made;
	// beyond it, 429. Defaults to 20,000.
	MaxInstances int
	// MaxRequestIDSize bounds a request id, in bytes as the client wrote
	// it (with a string's quotes); a longer one is answered 400. Defaults
	// to 64.
	MaxRequestIDSize int
	// MaxValueSize bounds, in bytes, a subscription's value and each of
	// its arguments and query parameters (name and value); MaxArgs their
	// number. Beyond them, 400. Default to 256 and 32.
	MaxValueSize, MaxArgs int
	// MessageRate is how many frames per second a connection may send on
	// average, with bursts of MessageBurst; beyond it a frame is answered
	// 429, whatever it holds. Defaults to 100 per second with bursts of
	// 200.
	MessageRate  float64
	MessageBurst int
	// MaxMessageSize is the largest frame a client may send, in bytes;
	// a larger one closes the connection with 1009. Defaults to 64 KiB.
	MaxMessageSize int64
	// SendQueue is how many frames, and SendQueueBytes how many bytes of
	// frames, may wait to be written to one connection. A client that
	// lets more pile up is too slow to keep up: it is closed with 1013.
	// Default to 4,096 and 8 MiB.
	SendQueue, SendQueueBytes int
	// WriteTimeout bounds the write of a batch of frames to a connection;
	// a client that takes longer is closed as too slow. Defaults to 10
	// seconds.
	WriteTimeout time.Duration
	// PingInterval is how often each connection is pinged (WebSocket
	// ping control frames, which browsers answer by themselves), and
	// PongTimeout how long the pong may take before the peer is taken for
	// dead and its connection closed. Default to 25 and 15 seconds.
	PingInterval, PongTimeout time.Duration

	// Concurrency is how many scope reads the hub runs at once. Defaults
	// to 8.
	Concurrency int
	// ReadTimeout bounds each database read of the hub (a scope's members,
	// the rows a batch of changes names, a history). A read that takes
	// longer fails: the subscribers it concerns are told to resynchronise.
	// Defaults to 10 seconds.
	ReadTimeout time.Duration
	// Logger receives connection events and errors. Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Observer is told what the router does, for metrics (see package
	// metrics). Defaults to none.
	Observer Observer
}

// An Identity is who makes a connection, as Config.Authenticate found it.
type Identity struct {
	// User is the application's user, which views read from
	// Request.User; nil for an anonymous connection.
	User any
	// ID identifies User: connections with the same ID share scope checks
	// and serialization, count against the same per-user limits, and are
	// closed together by Router.Disconnect. Required when User is set.
	ID string
	// Expires, if set, is when the credentials end: the connection is
	// then authenticated again, and closed with 4003 unless its request
	// still names the same user.
	Expires time.Time
}

func (c *Config) setDefaults() {
	if c.Layer == nil {
		c.Layer = NewMemoryLayer()
	}
	if c.Authenticate == nil {
		c.Authenticate = func(*http.Request) (Identity, error) { return Identity{}, nil }
	}
	if c.ClientAddress == nil {
		c.ClientAddress = remoteHost
	}
	limit := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	limit(&c.MaxConnections, 100_000)
	limit(&c.MaxConnectionsPerAddress, 256)
	limit(&c.MaxConnectionsPerUser, 64)
	limit(&c.MaxSubscriptions, 1000)
	limit(&c.MaxScopes, 200)
	limit(&c.MaxUserScopes, 1000)
	limit(&c.MaxScopeInstances, 10_000)
	limit(&c.MaxInstances, 20_000)
	limit(&c.MaxRequestIDSize, 64)
	limit(&c.MaxValueSize, 256)
	limit(&c.MaxArgs, 32)
	limit(&c.SendQueue, 4096)
	limit(&c.SendQueueBytes, 8<<20)
	limit(&c.Concurrency, 8)
	if c.MessageRate == 0 {
		c.MessageRate = 100
	}
	if c.MessageBurst == 0 {
		c.MessageBurst = max(1, 2*int(c.MessageRate))
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 64 << 10
	}
	duration := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	duration(&c.WriteTimeout, 10*time.Second)
	duration(&c.PingInterval, 25*time.Second)
	duration(&c.PongTimeout, 15*time.Second)
	duration(&c.ReadTimeout, 10*time.Second)
	if c.Concurrency < 0 {
		c.Concurrency = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// within reports whether n is within limit, where a negative limit is
// none.
func within(n, limit int) bool { return limit < 0 || n <= limit }

// remoteHost is the default ClientAddress: the host of RemoteAddr.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
